"""DeepSeek-V3 decode on H200: expert-parallel colocated decode vs attention/FFN disaggregation.

Every deployment has the same prefill pool (4 instances of 8 x H200, DP-attention 8 + EP 8) and
hands the KV to its decode side, which is one of:
- EP colocated (the DeepSeek/SGLang layout): decode instances with DP attention and EP experts over
  8 GPUs (one node) or 16 GPUs (two nodes: the all-to-all crosses the NICs);
- attention/FFN: A attention instances (8 GPUs each, DP attention, holding the KV) and one FFN
  instance (16 GPUs, EP 16: 16 experts per GPU) with m ping-pong micro-batches; the activations
  cross the H200 profile's scale-out link (one 400 Gb/s NIC per GPU), each token going once to
  every FFN GPU that holds one of its 8 experts.

Closed-loop clients (fixed 1,000-token prompts and 1,000-token outputs) at increasing concurrency
give one point per run: output tokens/s per decode-side GPU against the median TPOT. Prefill GPUs
are the same for all deployments and are not counted.

    python experiments/deepseek_af/run.py [-j 2] [--zipf S]

Writes results.csv and deepseek_af.png next to this file.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
EP8 = {"tp": 1, "dp_attn": 8, "ep": 8}
EP16 = {"tp": 1, "dp_attn": 16, "ep": 16}
DP8 = {"tp": 1, "dp_attn": 8}
SCHED = {"policy": "sarathi", "max_num_seqs": None, "max_num_batched_tokens": 8192}
LOAD = (32, 64, 128, 256, 512, 1024, 2048)  # concurrent clients per 8 decode-side GPUs
INPUT, OUTPUT = 1000, 1000
PREFILL = 4  # prefill instances (8 GPUs each), enough that the decode side sets the pace


def pool(role: str, n: int, par: dict, m: int = 1) -> dict:
    p = {"role": role, "hardware": "h200-sxm", "instances": n, "parallelism": dict(par),
         "scheduler": dict(SCHED)}  # fmt: skip
    if m > 1:
        p["micro_batches"] = m
    return p


def deployments() -> dict[str, tuple[list, int]]:
    """name -> (decode-side pools, decode-side GPUs)."""
    out = {"EP8 colocated": ([pool("decode", 1, EP8)], 8),
           "EP16 colocated": ([pool("decode", 1, EP16)], 16)}  # fmt: skip
    for a in (1, 2, 4):
        for m in (1, 2, 3):
            pools = [pool("attention", a, DP8, m), pool("ffn", 1, EP16)]
            out[f"AF {a}:1 m={m}"] = (pools, 8 * a + 16)
    return out


def config(name: str, load: int, zipf: float | None) -> dict:
    pools, gpus = deployments()[name]
    conc = load * gpus // 8
    dep = {"pools": [pool("prefill", PREFILL, EP8), *pools]}
    if zipf:
        dep["moe_load"] = {"distribution": "zipf", "zipf_s": zipf}
    return {
        "model": "deepseek-v3",
        "dtype": "fp8",
        "deployment": dep,
        "workload": {
            "clients": {"concurrency": conc},
            "lengths": {
                "input": {"dist": "fixed", "mean": INPUT},
                "output": {"dist": "fixed", "mean": OUTPUT},
            },  # fmt: skip
            "num_requests": 2 * conc,
        },
        "seed": 0,
    }


def one(args: tuple) -> dict:
    import servesim

    name, load, zipf = args
    gpus = deployments()[name][1]
    s = servesim.simulate(config(name, load, zipf)).summary
    row = {"deployment": name, "decode_gpus": gpus, "clients_per_8_gpus": load}
    row["tok_s_per_gpu"] = s["output_throughput"] / gpus
    for k in ("tpot_ms_median", "tpot_ms_p90", "ttft_ms_median", "output_throughput"):
        row[k] = s.get(k)
    for p in ("decode", "attention", "ffn"):
        row[f"{p}_util"] = s.get(f"pool.{p}.utilisation")
        row[f"{p}_batch"] = s.get(f"pool.{p}.batch_size_mean")
    return row


def plot(df, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), sharey=True)
    groups = [("EP colocated", lambda n: "colocated" in n)]
    groups += [(f"AF {a}:1", lambda n, a=a: n.startswith(f"AF {a}:1")) for a in (1, 2, 4)]
    colo = df[df["deployment"].str.contains("colocated")]
    for ax, (title, pick) in zip(axes, groups[1:]):
        for name, g in colo.groupby("deployment", sort=False):
            g = g.sort_values("tpot_ms_median")
            ax.plot(
                g["tpot_ms_median"], g["tok_s_per_gpu"], "k--" if "8" in name else "k:", label=name
            )
        for name, g in df[df["deployment"].map(pick)].groupby("deployment", sort=False):
            g = g.sort_values("tpot_ms_median")
            ax.plot(g["tpot_ms_median"], g["tok_s_per_gpu"], marker="o", label=name)
        ax.set_title(title + " (8-GPU attention : 16-GPU FFN instances)")
        ax.set_xlabel("median TPOT (ms)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("output tokens/s per decode-side GPU")
    fig.suptitle("DeepSeek-V3 FP8 decode on H200: EP colocated vs attention/FFN disaggregation")
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main(argv: list[str] | None = None) -> None:
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-j", type=int, default=2, help="worker processes")
    ap.add_argument("--zipf", type=float, default=None, help="skewed expert load (Zipf s)")
    ap.add_argument("--out", default=str(HERE), help="output folder")
    a = ap.parse_args(argv)
    jobs = [(n, c, a.zipf) for n in deployments() for c in LOAD]
    with ProcessPoolExecutor(a.j) as ex:
        rows = list(ex.map(one, jobs))
    df = pd.DataFrame(rows)
    out = Path(a.out)
    df.to_csv(out / "results.csv", index=False, float_format="%.5g")
    plot(df, out / "deepseek_af.png")
    best = df.loc[df.groupby("deployment", sort=False)["tok_s_per_gpu"].idxmax()]
    print(
        best[["deployment", "tok_s_per_gpu", "tpot_ms_median"]].to_string(index=False),
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
