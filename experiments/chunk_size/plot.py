"""Figure of the chunk-size study: TTFT p99 and TPOT p99 against the chunk size, one line per load.

    python experiments/chunk_size/plot.py experiments/chunk_size/chunk_size_results [-o chunk_size.png]

Reads the sweep table (mean and spread over seeds) and writes a PNG beside it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from servesim.sweep import load_table  # noqa: E402

CHUNK = "deployment.pools.0.scheduler.max_num_batched_tokens"
RATE = "workload.arrivals.rate"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, help="the sweep's output directory")
    ap.add_argument("-o", "--out", type=Path, default=None)
    args = ap.parse_args()
    table, _ = load_table(args.results)
    table = table[table["error"].isna()]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric, label in (
        (axes[0], "ttft_ms_p99", "TTFT p99 (ms)"),
        (axes[1], "tpot_ms_p99", "TPOT p99 (ms)"),
    ):
        for rate, g in table.groupby(RATE):
            s = g.groupby(CHUNK)[metric].agg(["mean", "min", "max"]).sort_index()
            ax.errorbar(
                s.index,
                s["mean"],
                yerr=[s["mean"] - s["min"], s["max"] - s["mean"]],
                marker="o",
                capsize=3,
                label=f"{rate:g} req/s",
            )
        ax.set_xscale("log", base=2)
        if metric.startswith("ttft"):
            ax.set_yscale("log")  # queueing at small budgets spans orders of magnitude
        ax.set_xlabel("chunk size (max_num_batched_tokens)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Llama-3.1-8B, 1 x H100, azure-conv lengths: chunked-prefill budget")
    fig.tight_layout()
    out = args.out or args.results / "chunk_size.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
