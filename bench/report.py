#!/usr/bin/env python3
"""Turn pgbench per-transaction logs into a ratio table.

Usage: report.py GROUP BASELINE_SCRIPT_INDEX NAMES SECONDS RUN_DIR [RUN_DIR ...]

Each RUN_DIR holds the `-l` logs of one pgbench process that ran every script of GROUP mixed
together (several -f).  For each run and script: the 10%-trimmed mean latency.  Ratios are taken
within a run (same process, same minute), then the median and min/max over runs are reported.
TPS is the script's transactions over the run's SECONDS (a script's share of one pgbench process).
With $PGT_BENCH_SUMMARY set, each case is also appended to that file as a JSON line (chart.py).
"""
import glob
import json
import os
import statistics
import sys


def trimmed_mean(values, cut=0.10):
    values = sorted(values)
    k = int(len(values) * cut)
    kept = values[k:len(values) - k] or values
    return sum(kept) / len(kept)


def run_latencies(run_dir, n_scripts):
    per_script = [[] for _ in range(n_scripts)]
    for path in glob.glob(f"{run_dir}/log*"):
        with open(path) as f:
            for line in f:
                parts = line.split()
                # client_id transaction_no time script_no time_epoch time_us ...
                if len(parts) >= 6 and parts[2].isdigit():
                    per_script[int(parts[3])].append(int(parts[2]))
    return per_script


def main():
    group, base, names = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
    seconds, runs = float(sys.argv[4]), sys.argv[5:]
    results = []  # per run: list of (trimmed mean µs, count)
    for run in runs:
        lats = run_latencies(run, len(names))
        results.append([(trimmed_mean(l) if l else float("nan"), len(l)) for l in lats])
    print(f"\n#### {group}\n")
    print("| case | mean latency (µs, trimmed, median of runs) | TPS (median of runs) | throughput vs "
          f"`{names[base]}` (median) | min .. max over {len(runs)} runs |")
    print("|---|---:|---:|---:|---:|")
    summary = os.environ.get("PGT_BENCH_SUMMARY")
    for i, name in enumerate(names):
        lat = statistics.median(r[i][0] for r in results)
        tps = statistics.median(r[i][1] / seconds for r in results)
        ratios = [r[base][0] / r[i][0] for r in results]
        print(f"| `{name}` | {lat:.1f} | {tps:.0f} | {statistics.median(ratios) * 100:.1f}% "
              f"| {min(ratios) * 100:.1f}% .. {max(ratios) * 100:.1f}% |")
        if summary:
            with open(summary, "a") as out:
                out.write(json.dumps({"group": group, "case": name, "reference": names[base],
                                      "latency_us": lat, "tps": tps, "ratio": statistics.median(ratios),
                                      "min": min(ratios), "max": max(ratios)}) + "\n")
    if group.startswith("updated_at"):
        print("\nOverhead over no trigger (extra latency per UPDATE, median of runs):\n")
        for i, name in enumerate(names):
            if i == base:
                continue
            extra = [r[i][0] - r[base][0] for r in results]
            rel = [(r[i][0] - r[base][0]) / r[base][0] * 100 for r in results]
            print(f"- `{name}`: +{statistics.median(extra):.1f} µs (+{statistics.median(rel):.1f}%, "
                  f"runs: {', '.join(f'{x:+.1f}%' for x in rel)})")


if __name__ == "__main__":
    main()
