"""Does servesim's "busiest EP rank" charge reproduce measured MoE latency under skewed routing?

    python experiments/e2e_validation/moe_skew.py [--data DIR] [--system h100_sxm]

aiconfigurator times each fused-MoE shape with balanced routing and with per-expert loads drawn
from a power law (alpha 1.01 and 1.2, its collector's ``power_law_logits_v3``: loads sampled
between 1 and 0.8 x tokens, scaled to tokens x topk, the hottest EP group of experts timed on
the measured rank, five samples averaged). Here the same sampling (seeded) gives the hottest
rank's load over the mean, I, for every row; servesim charges the rank I x the mean routed rows
over its experts (cost/step.py ``_experts``). Printed per EP size and alpha: the median measured
power-law / balanced latency ratio, the model's, and the median error of the model's ratio.
TensorRT-LLM CUTLASS kernels (bf16, FP8), TP1, >= 64 tokens. Runs in ~20 s.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_factors import MOE_FORMATS, MOE_SYSTEMS  # noqa: E402

from servesim.cost import roofline  # noqa: E402
from servesim.specs.hardware import load_hardware  # noqa: E402


def hottest_rank_factor(tokens: int, experts: int, topk: int, ep: int, alpha: float,
                        rng: np.random.Generator, samples: int = 5) -> float:  # fmt: skip
    """Mean over ``samples`` draws of the hottest EP group's routed rows / the mean group's."""
    out = []
    for _ in range(samples):
        u = rng.random(experts)
        lo, hi = (1.0, tokens * 0.8) if tokens * topk > experts else (0.01, 2.0)
        x = ((hi ** (1 - alpha) - lo ** (1 - alpha)) * u + lo ** (1 - alpha)) ** (1 / (1 - alpha))
        load = np.round(x / x.sum() * tokens * topk)
        out.append(load.reshape(ep, -1).sum(1).max() / (tokens * topk / ep))
    return float(np.mean(out))


def rank_time(hw, r, rows: float) -> float:
    """servesim's routed-expert time on one EP rank holding num_experts / ep experts."""
    dt = MOE_FORMATS[r.moe_dtype]
    per_rank = r.num_experts / r.moe_ep_size
    touched = per_rank * (1 - (1 - r.topk / r.num_experts) ** r.num_tokens)
    h, i = r.hidden_size, r.inter_size
    a = {"bf16": 2.0, "fp8": 1.0, "fp4": 0.5}[dt.activations]
    t = roofline.grouped_gemm_time(hw, rows, touched, 2 * i, h, dt).seconds
    t += roofline.grouped_gemm_time(hw, rows, touched, h, i, dt).seconds
    for row_bytes in (2 * i * 2 + i * a, 2 * h * a, h * 2 * (1 + 1 / r.topk)):
        t += roofline.elementwise_time(hw, rows * row_bytes).seconds
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = os.environ.get("SERVESIM_SHARED_DATA") or str(REPO.parent / "shared" / "data")
    ap.add_argument("--data", default=default)
    ap.add_argument("--system", default="h100_sxm", choices=sorted(MOE_SYSTEMS))
    args = ap.parse_args()
    d = pd.read_csv(Path(args.data) / "measured" / "aiconfigurator" / "moe.csv.gz")
    d = d[(d.system == args.system) & (d.backend == "trtllm") & (d.moe_tp_size == 1)]
    d = d[d.moe_dtype.isin(["bfloat16", "fp8"]) & (d.kernel_source == "moe_torch_flow_cutlass")]
    d = d[(d.moe_ep_size > 1) & (d.num_tokens >= 64)]
    keys = ["moe_dtype", "hidden_size", "inter_size", "num_experts", "topk", "moe_ep_size",
            "num_tokens"]  # fmt: skip
    t = d.groupby([*keys, "distribution"]).latency_ms.median().unstack("distribution").dropna()
    t = t.reset_index()
    hw = load_hardware(MOE_SYSTEMS[args.system]).for_engine("trtllm")
    rng = np.random.default_rng(0)
    rows = []
    for rec in t.to_dict("records"):
        r = SimpleNamespace(**rec)
        mean = r.num_tokens * r.topk / r.moe_ep_size
        base = rank_time(hw, r, mean)
        for alpha, col in ((1.01, "power_law_1.01"), (1.2, "power_law_1.2")):
            f = hottest_rank_factor(r.num_tokens, r.num_experts, r.topk, r.moe_ep_size, alpha, rng)
            rows.append(dict(ep=r.moe_ep_size, alpha=alpha, factor=f, tokens=r.num_tokens,
                             measured=rec[col] / r.balanced,
                             model=rank_time(hw, r, mean * f) / base))  # fmt: skip
    x = pd.DataFrame(rows)
    x["err"] = x.model / x.measured - 1
    g = x.groupby(["ep", "alpha"]).agg(rows=("err", "size"), imbalance=("factor", "median"),
                                       measured=("measured", "median"),
                                       model=("model", "median"), err=("err", "median"),
                                       abs_err=("err", lambda e: e.abs().median()))  # fmt: skip
    print(g.round(2).to_string())
    x["tokens"] = pd.cut(x.tokens, [0, 512, 4096, np.inf], labels=["<=512", "513-4096", ">4096"])
    print(x.pivot_table(index="ep", columns="tokens", values=["measured", "model"],
                        aggfunc="median", observed=False).round(2).to_string())  # fmt: skip
    print(f"all: median error {x.err.median():+.1%}, median |error| {x.err.abs().median():.1%}")


if __name__ == "__main__":
    main()
