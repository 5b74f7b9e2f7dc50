"""Hardware co-design study: the value of HBM bandwidth vs compute vs capacity for decode-heavy
DeepSeek-V3 serving, and where an on-chip-SRAM machine wins.

Part A runs sweep.yaml (18 devices derived from the H200 by bandwidth x compute units x capacity,
DeepSeek-V3 FP8 on one 8-device DP8/EP8 instance, 256 and 1,024 closed-loop clients, 1,000-token prompts and
2,000-token outputs) and reads output tokens/s, tokens/s per watt and $ per million output tokens,
every device priced bottom-up at cost (servesim/accounting/hwcost.py, gross_margin 0).

Part B serves Llama-3.1-8B in FP8 with short requests (256 in, 512 out) at 1 to 128 clients on:
the Groq LPU (230 MB SRAM per chip, 256 chips as TP8 x PP32), a hypothetical SRAM chip derived from
it (N3, 1 GB SRAM, 1.8 GHz: 64 chips as TP8 x PP8), an H100 (TP1 and TP8) and an H100 with twice
the HBM bandwidth (TP8), all priced bottom-up at cost; it reads TPOT against $ per million tokens.

    python experiments/codesign/run.py [-j 2]

Writes results_grid.csv, results_sram.csv and codesign.png next to this file (about 2 minutes on
two cores).
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
AT_COST = {"gross_margin": 0.0}
SRAM_N3 = {
    "base": "groq-lpu", "name": "sram-n3", "price": AT_COST,
    "die": {"node": "n3", "area_mm2": 700},  # hypothetical: the 14 nm design shrunk, SRAM grown
    "memory": {"capacity_GB": 1.0, "bandwidth_GBps": 160000},
    "clock": {"frequency_GHz": 1.8},
    "power": {"tdp_W": 400},  # given: V^2 f from the 14 nm base would ignore the node's lower C
}  # fmt: skip
H100 = {"base": "h100-sxm", "price": {"purchase_usd": None, "hour_usd": None, **AT_COST}}
H100_2BW = {**H100, "memory": {"bandwidth_GBps": 6700}}
DEVICES = {  # label -> (hardware, parallelism, max_num_batched_tokens)
    "Groq LPU (256 chips)": ({"base": "groq-lpu", "price": AT_COST}, {"tp": 8, "pp": 32}, 256),
    "SRAM N3, hypothetical (64 chips)": (SRAM_N3, {"tp": 8, "pp": 8}, 256),
    "H100 TP1": (H100, {"tp": 1}, 8192),
    "H100 TP8": (H100, {"tp": 8}, 8192),
    "H100 2x HBM bandwidth TP8": (H100_2BW, {"tp": 8}, 8192),
}
CLIENTS = (1, 4, 16, 64, 128)


def sram_config(label: str, clients: int) -> dict:
    hw, par, mbt = DEVICES[label]
    sched = {"policy": "sarathi", "max_num_seqs": None, "max_num_batched_tokens": mbt}
    return {
        "model": "llama-3.1-8b",
        "dtype": "fp8",
        "deployment": {"pools": [{"role": "colocated", "hardware": hw, "instances": 1,
                                  "parallelism": par, "scheduler": sched}]},
        "workload": {
            "clients": {"concurrency": clients},
            "lengths": {"input": {"dist": "fixed", "mean": 256}, "output": {"dist": "fixed", "mean": 512}},
            "num_requests": max(2 * clients, 8),
        },
        "cost": {"pricing": "tco"},
        "seed": 0,
    }  # fmt: skip


def one(args: tuple[str, int]) -> dict:
    import servesim

    label, clients = args
    s = servesim.simulate(sram_config(label, clients)).summary
    hw, par, _ = DEVICES[label]
    return {"device": label, "clients": clients, "output_throughput": s["output_throughput"],
            "tpot_ms_median": s["tpot_ms_median"], "power_avg_W": s["power_avg_W"],
            "usd_per_mtok_output": s["usd_per_mtok_output"]}  # fmt: skip


def main() -> None:
    sys.path.insert(0, str(HERE.parents[1]))
    import pandas as pd
    from servesim.sweep import sweep

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-j", "--jobs", type=int, default=2)
    jobs = ap.parse_args().jobs
    grid = sweep(HERE / "sweep.yaml", jobs=jobs)
    grid = grid.rename(
        columns=lambda c: c.rsplit(".", 1)[-1] if c.startswith(("deployment.", "workload.")) else c
    )
    grid["tok_s_per_W"] = grid["output_throughput"] / grid["power_avg_W"]
    grid.to_csv(HERE / "results_grid.csv", index=False)
    todo = [(label, c) for label in DEVICES for c in CLIENTS]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        sram = pd.DataFrame(list(pool.map(one, todo)))
    sram["tok_s_per_W"] = sram["output_throughput"] / sram["power_avg_W"]
    sram.to_csv(HERE / "results_sram.csv", index=False)
    plot(grid, sram)


def plot(grid, sram) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    grid = grid[grid["concurrency"] == 1024]
    for (units, cap), g in grid.groupby(["compute_units", "capacity_GB"]):
        style = "-" if cap < 200 else "--"
        label = f"{units / 132:g}x compute, {cap:.0f} GB"
        g = g.sort_values("bandwidth_GBps")
        axes[0].plot(g["bandwidth_GBps"], g["usd_per_mtok_output"], style, marker="o", label=label)
        axes[1].plot(g["bandwidth_GBps"], g["tok_s_per_W"], style, marker="o", label=label)
    axes[0].set(xlabel="HBM bandwidth per device (GB/s)", ylabel="$ per million output tokens (at cost)",
                title="DeepSeek-V3 FP8, 1k in / 2k out, 1,024 clients: cost")  # fmt: skip
    axes[1].set(xlabel="HBM bandwidth per device (GB/s)", ylabel="output tokens/s per W",
                title="... energy efficiency")  # fmt: skip
    axes[0].legend(fontsize=7)
    for label, g in sram.groupby("device", sort=False):
        g = g.sort_values("clients")
        axes[2].plot(g["tpot_ms_median"], g["usd_per_mtok_output"], marker="o", label=label)
    axes[2].set(xlabel="TPOT median (ms)", ylabel="$ per million output tokens (at cost)", yscale="log",
                title="Llama-3.1-8B FP8, 256 in / 512 out, 1-128 clients")  # fmt: skip
    axes[2].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(HERE / "codesign.png", dpi=110)


if __name__ == "__main__":
    main()
