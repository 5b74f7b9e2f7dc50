"""TPOT and throughput vs load with and without speculative decoding, and the crossover point.

    python experiments/speculative/study.py      # ~1-2 min on 2 shared cores

Llama-3.1-70B on 4 x H100 (TP4, bf16) and DeepSeek-V3 on 8 x H200 (TP8 x EP8, fp8), closed-loop
clients at rising concurrency (512 prompt / 256 output tokens, 2 x concurrency requests per
point). Configurations: no speculation, EAGLE-3 k=3 (acceptance length 2.79: vLLM issue #20780,
Llama-3.1-8B on MT-bench; estimate: the same for both targets), MTP k=1 and k=2 (per-token
acceptance 0.875: DeepSeek-V3 report, 85-90% second-token acceptance; on Llama, whose checkpoints
ship no MTP module, the MTP rows are hypothetical: one extra decoder layer of the target as head).
Writes study.csv, study.png and study.md (crossover: the lowest concurrency at which a
configuration's throughput falls below no speculation).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

import pandas as pd  # noqa: E402
from compare import config, spec_of, summary  # noqa: E402

DEPLOYMENTS = {
    "Llama-3.1-70B, 4xH100 TP4": {"model": "llama-3.1-70b", "hw": "h100-sxm", "tp": 4, "ep": 1,
                                  "dtype": "bf16"},
    "DeepSeek-V3, 8xH200 EP8": {"model": "deepseek-v3", "hw": "h200-sxm", "tp": 8, "ep": 8,
                                "dtype": "fp8"},
}  # fmt: skip
CONFIGS = {
    "none": None,
    "EAGLE-3 k=3": ("eagle3", 3, 2.79),
    "MTP k=1": ("mtp", 1, 1.875),
    "MTP k=2": ("mtp", 2, 1 + 0.875 + 0.875**2),
}
LOADS = (1, 4, 16, 64, 256, 512)


def run() -> pd.DataFrame:
    rows = []
    for dname, d in DEPLOYMENTS.items():
        for cname, c in CONFIGS.items():
            spec = spec_of(*c) if c else None
            for conc in LOADS:
                cfg = config(d["model"], d["hw"], conc, max(2 * conc, 8), tp=d["tp"], ep=d["ep"],
                             spec=spec, isl=512, osl=256, dtype=d["dtype"], seqs=512)  # fmt: skip
                s = summary(cfg)
                rows.append({"deployment": dname, "config": cname, "concurrency": conc,
                             "tpot_ms": s["tpot_ms_mean"], "throughput": s["output_throughput"],
                             "acceptance_length": s.get("spec.acceptance_length")})  # fmt: skip
                print(dname, cname, conc, round(s["tpot_ms_mean"], 2),
                      round(s["output_throughput"]), flush=True)  # fmt: skip
    return pd.DataFrame(rows)


def crossovers(df: pd.DataFrame) -> list[str]:
    """Throughput with speculation / without, per load, and the first load where it is < 1."""
    head = " | ".join(str(c) for c in LOADS)
    out = [
        f"| deployment | config | {head} | crossover |",
        "|---|---|" + "---|" * len(LOADS) + "---|",
    ]
    for dname, g in df.groupby("deployment", sort=False):
        base = g[g.config == "none"].set_index("concurrency")
        for cname, h in g[g.config != "none"].groupby("config", sort=False):
            h = h.set_index("concurrency")
            ratio = h["throughput"] / base["throughput"]
            worse = ratio[ratio < 1.0]
            where = f"{int(worse.index[0])}" if len(worse) else f"> {LOADS[-1]}"
            cells = " | ".join(f"{r:.2f}" for r in ratio)
            out.append(f"| {dname} | {cname} | {cells} | {where} |")
    return out


def plot(df: pd.DataFrame) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for row, (dname, g) in enumerate(df.groupby("deployment", sort=False)):
        for cname, h in g.groupby("config", sort=False):
            axes[row, 0].plot(h.concurrency, h.tpot_ms, marker="o", label=cname)
            axes[row, 1].plot(h.concurrency, h.throughput, marker="o", label=cname)
        axes[row, 0].set_ylabel(f"{dname}\nmean TPOT (ms)")
        axes[row, 1].set_ylabel("output tokens/s")
        for ax in axes[row]:
            ax.set_xscale("log", base=2)
            ax.set_xlabel("concurrent requests")
            ax.grid(alpha=0.3)
    axes[0, 1].legend()
    fig.suptitle("Speculative decoding vs load (servesim)")
    fig.tight_layout()
    fig.savefig(HERE / "study.png", dpi=110)


def main() -> None:
    df = run()
    df.to_csv(HERE / "study.csv", index=False)
    plot(df)
    lines = ["# Speculative decoding vs load", "", "![study](study.png)", "",
             "Output throughput with speculation / without, by concurrency:", "",
             *crossovers(df), ""]  # fmt: skip
    (HERE / "study.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
