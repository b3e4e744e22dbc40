#!/usr/bin/env python3
"""The Citus benchmark's table: one node against the three-node cluster, script by script.

Usage: report.py NAMES SINGLE_RUN_DIR,CITUS_RUN_DIR [SINGLE_RUN_DIR,CITUS_RUN_DIR ...]

Each pair of run directories holds the `-l` logs of two pgbench processes that ran at the same
time, with the same scripts, one against one node and one against the Citus coordinator.  Per
run and script: the 10%-trimmed mean latency on each side and their ratio; then the median and
min/max of the ratios over the runs.
"""
import statistics
import sys

sys.path.insert(0, __import__("os").path.join(__import__("os").path.dirname(__file__), ".."))
from report import run_latencies, trimmed_mean  # noqa: E402


def main():
    names = sys.argv[1].split(",")
    pairs = [p.split(",") for p in sys.argv[2:]]
    rows = []
    for i, name in enumerate(names):
        single, citus, ratios = [], [], []
        for s_dir, c_dir in pairs:
            s = trimmed_mean(run_latencies(s_dir, len(names))[i])
            c = trimmed_mean(run_latencies(c_dir, len(names))[i])
            single.append(s)
            citus.append(c)
            ratios.append(c / s)
        rows.append((name, statistics.median(single), statistics.median(citus), statistics.median(ratios),
                     min(ratios), max(ratios)))
    print("| script | one node (µs, trimmed mean) | three nodes (µs) | three / one (median) | min .. max |")
    print("|---|---:|---:|---:|---:|")
    for name, s, c, r, lo, hi in rows:
        print(f"| `{name}` | {s:.0f} | {c:.0f} | {r:.2f}× | {lo:.2f}× .. {hi:.2f}× |")


if __name__ == "__main__":
    main()
