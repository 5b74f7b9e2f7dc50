"""PD vs colocated: goodput per GPU at 90% SLO attainment (DistServe-style).

Llama-3.1-70B (BF16) on H100 SXM, every instance TP 4, Sarathi scheduler (vLLM V1 defaults),
the Azure conversation trace replayed at increasing rates (trace speedup). For each deployment
and rate: SLO attainment = the fraction of requests with TTFT <= TTFT_S and TPOT <= TPOT_S
(``goodput_fraction``). Goodput = the highest rate whose attainment is >= 90%, interpolated
linearly between the two rates around the crossing (as DistServe does); per GPU = / GPUs.

    python experiments/pd_vs_colocated/run.py [-j 4] [--requests 1000] [--trace PATH]

Writes results.csv (one row per run), goodput.csv (one row per deployment) and
pd_vs_colocated.png next to this file.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRACE = HERE.parents[1] / "traces" / "azure_conv_sample.csv"
BASE_RATE = 5.57  # req/s of the bundled Azure conv sample (2,000 requests in 359 s)
SPEEDUPS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0)
TTFT_S, TPOT_S = 1.0, 0.05  # per-request SLO thresholds (a chat service; user choice)
ATTAINMENT = 0.9
TP = 4
# DGX H100 datasheet: one 400 Gb/s ConnectX-7 per GPU = 50 GB/s per direction; 5 us is an
# estimate of one InfiniBand switch hop (the h100-sxm profile's scale-out numbers)
KV_LINK = {"bandwidth_GBps": 50.0, "latency_us": 5.0}
SCHED = {"policy": "sarathi", "max_num_seqs": 256, "max_num_batched_tokens": 8192}
# name -> (prefill instances, decode instances); (0, n) = n colocated instances
DEPLOYMENTS = {
    "colocated x2": (0, 2),
    "colocated x3": (0, 3),
    "PD 1:1": (1, 1),
    "PD 1:2": (1, 2),
    "PD 2:1": (2, 1),
    "PD 3:1": (3, 1),
    "PD 3:2": (3, 2),
}


def pool(role: str, n: int) -> dict:
    return {
        "role": role,
        "hardware": "h100-sxm",
        "instances": n,
        "parallelism": {"tp": TP},
        "scheduler": dict(SCHED),
    }


def config(name: str, speedup: float, requests: int, trace: str) -> dict:
    p, d = DEPLOYMENTS[name]
    if p == 0:
        dep = {"pools": [pool("colocated", d)]}
    else:
        dep = {"pools": [pool("prefill", p), pool("decode", d)], "kv_link": dict(KV_LINK)}
    return {
        "model": "llama-3.1-70b",
        "dtype": "bf16",
        "deployment": dep,
        "workload": {
            "trace": {"format": "azure", "path": trace, "speedup": speedup},
            "num_requests": requests,
        },
        "slo": {"ttft_ms": {"p90": TTFT_S * 1e3}, "tpot_ms": {"p90": TPOT_S * 1e3}},
        "seed": 0,
    }


def gpus(name: str) -> int:
    p, d = DEPLOYMENTS[name]
    return (p + d) * TP


def one(args: tuple) -> dict:
    import servesim

    name, speedup, requests, trace = args
    s = servesim.simulate(config(name, speedup, requests, trace)).summary
    keys = ("goodput_fraction", "ttft_ms_p90", "tpot_ms_p90", "request_throughput",
            "kv_transfer_ms_mean", "decode_queue_ms_mean")  # fmt: skip
    row = {"deployment": name, "gpus": gpus(name), "speedup": speedup}
    row["rate"] = BASE_RATE * speedup
    row.update({k: s.get(k) for k in keys})
    for pool_name in ("prefill", "decode", "colocated"):
        row[f"{pool_name}_util"] = s.get(f"pool.{pool_name}.utilisation")
    return row


def goodput_rate(rows: list[dict]) -> float:
    """Highest rate with attainment >= ATTAINMENT, linear between the grid points around it."""
    rows = sorted(rows, key=lambda r: r["rate"])
    best = 0.0
    for lo, hi in zip([None, *rows], rows):
        a = hi["goodput_fraction"] or 0.0
        if a >= ATTAINMENT:
            best = hi["rate"]
            continue
        if lo is not None and (lo["goodput_fraction"] or 0.0) >= ATTAINMENT:
            a0 = lo["goodput_fraction"]
            best = lo["rate"] + (hi["rate"] - lo["rate"]) * (a0 - ATTAINMENT) / (a0 - a)
        break
    return best


def plot(df, good, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, g in df.groupby("deployment", sort=False):
        g = g.sort_values("rate")
        ax1.plot(g["rate"] / g["gpus"], g["goodput_fraction"], marker="o", label=name)
    ax1.axhline(ATTAINMENT, color="grey", ls="--", lw=1)
    ax1.set_xlabel("request rate per GPU (req/s/GPU)")
    ax1.set_ylabel(f"SLO attainment (TTFT<={TTFT_S:g}s, TPOT<={TPOT_S * 1e3:g}ms)")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.bar(good["deployment"], good["goodput_per_gpu"], color="tab:blue")
    ax2.set_ylabel("goodput per GPU at 90% attainment (req/s/GPU)")
    for i, v in enumerate(good["goodput_per_gpu"]):
        ax2.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    ax2.tick_params(axis="x", rotation=20)
    fig.suptitle("Llama-3.1-70B BF16 on H100 (TP4 instances), Azure conv trace")
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main(argv: list[str] | None = None) -> None:
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-j", type=int, default=2, help="worker processes")
    ap.add_argument("--requests", type=int, default=1000, help="requests per run")
    ap.add_argument("--trace", default=str(TRACE), help="Azure conv CSV (default: bundled)")
    ap.add_argument("--out", default=str(HERE), help="output folder")
    a = ap.parse_args(argv)
    jobs = [(n, s, a.requests, a.trace) for n in DEPLOYMENTS for s in SPEEDUPS]
    with ProcessPoolExecutor(a.j) as ex:
        rows = list(ex.map(one, jobs))
    out = Path(a.out)
    df = pd.DataFrame(rows)
    df.to_csv(out / "results.csv", index=False, float_format="%.6g")
    good = []
    for name in DEPLOYMENTS:
        rate = goodput_rate([r for r in rows if r["deployment"] == name])
        good.append({"deployment": name, "gpus": gpus(name), "goodput_rps": rate,
                     "goodput_per_gpu": rate / gpus(name)})  # fmt: skip
    good = pd.DataFrame(good)
    good.to_csv(out / "goodput.csv", index=False, float_format="%.4g")
    plot(df, good, out / "pd_vs_colocated.png")
    print(good.to_string(index=False), file=sys.stderr)


if __name__ == "__main__":
    main()
