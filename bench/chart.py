#!/usr/bin/env python3
"""Draw the throughput ratios of a bench run (the JSON lines report.py appends) as a PNG.

Usage: chart.py SUMMARY.jsonl OUT.png

One horizontal bar per case that is not its group's reference: throughput relative to the
reference of its group (100% = as fast), with the min..max over the repeated runs as a whisker.
"""
import json
import sys

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    rows = [r for r in rows if r["case"] != r["reference"]]
    labels = [f'{r["group"].split(":")[0]}: {r["case"]} vs {r["reference"]}' for r in rows]
    ratios = [r["ratio"] * 100 for r in rows]
    low = [(r["ratio"] - r["min"]) * 100 for r in rows]
    high = [(r["max"] - r["ratio"]) * 100 for r in rows]
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(rows) + 1.4))
    y = list(range(len(rows)))[::-1]
    colors = ["#2b8a3e" if "pg_tenancy" in r["case"] or r["case"].startswith(("verify", "authenticate", "log_request", "rls", "pre_request", "token"))
              else "#868e96" for r in rows]
    ax.barh(y, ratios, xerr=[low, high], color=colors, capsize=3)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(min(r["min"] for r in rows) * 100 * 0.6, 160)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}%"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.axvline(100, color="black", linewidth=0.8)
    ax.set_xlabel("throughput relative to the group's reference, % (log scale; whiskers: min..max of runs)")
    for yi, v in zip(y, ratios):
        ax.text(v * 1.03, yi, f"{v:.1f}%" if v >= 1 else f"{v:.3f}%", va="center", fontsize=7)
    ax.set_title("pg_tenancy benchmarks (green: pg_tenancy, grey: alternatives)", fontsize=10)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
