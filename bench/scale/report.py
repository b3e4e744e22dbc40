#!/usr/bin/env python3
"""The scaling benchmark's table (scripts/citus.sh scale): latency as tenants grow.

Usage: report.py N,MEMBERSHIPS,SINGLE_RUN_DIR,CITUS_RUN_DIR [...]

Each run directory holds the `-l` logs of one pgbench process with two scripts, pre_request and
verify_api_key, run at the same time as the other side's.  Per size and script: the 10%-trimmed
mean latency on one node and on the cluster, and each against the first size's.
"""
import sys
import os

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from report import run_latencies, trimmed_mean  # noqa: E402

SCRIPTS = ["pre_request", "verify_api_key"]


def main():
    rows = []
    for arg in sys.argv[1:]:
        n, members, single, citus = arg.split(",")
        s = [trimmed_mean(x) for x in run_latencies(single, len(SCRIPTS))]
        c = [trimmed_mean(x) for x in run_latencies(citus, len(SCRIPTS))]
        rows.append((int(n), int(members), s, c))
    base = rows[0]
    print("| tenants | memberships | script | one node (µs) | × first size | three nodes (µs) | × first size |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for n, members, s, c in rows:
        for i, name in enumerate(SCRIPTS):
            print(f"| {n:,} | {members:,} | `{name}` | {s[i]:.0f} | {s[i] / base[2][i]:.2f}× "
                  f"| {c[i]:.0f} | {c[i] / base[3][i]:.2f}× |")


if __name__ == "__main__":
    main()
