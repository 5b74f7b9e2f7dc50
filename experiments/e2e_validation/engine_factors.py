"""Recompute the engine-kernel constants of servesim/specs/engines.py from NVIDIA's
aiconfigurator kernel timings (../shared/data/measured/aiconfigurator).

    python experiments/e2e_validation/engine_factors.py [--data DIR]

Prints (1) attention factors: median latency ratio of each engine's attention kernel to vLLM's on
the same shapes (rows over 20 us), per system and KV format; (2) the custom all-reduce fit per
engine on H100 CUDA-graph rows, and its error held out on A100/B300/GB300; (3) MoE kernel
factors: median measured fused-MoE latency over servesim's routed-expert operators (permute, grouped
GEMMs, activation, un-permute) at >= 8 routed rows per expert, on the shipped profiles with each
engine's overlay (H100 and B300, balanced, TP1/EP1). Reads ~25 MB of gzip'd CSV; about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from servesim.cost import roofline  # noqa: E402
from servesim.specs.dtypes import DTypes  # noqa: E402
from servesim.specs.hardware import load_hardware  # noqa: E402

LINK = {"h100_sxm": 450e9, "b300_sxm": 900e9, "gb300": 900e9, "a100_sxm": 300e9}


def attention(root: Path) -> None:
    cols = {"generation_attention": "kv_len", "context_attention": "isl"}
    for fam, length in cols.items():
        d = pd.read_csv(root / f"{fam}.csv.gz")
        keys = ["num_heads", "num_kv_heads", "head_dim", "window_size", "batch_size", length]
        for system in ("h100_sxm", "b300_sxm"):
            for kv, x in d[d.system == system].groupby("kv_cache_dtype"):
                x = x[x.latency_ms > 0.02]
                g = x.groupby([*keys, "backend"]).latency_ms.median().unstack("backend")
                if "vllm" not in g:
                    continue
                out = {b: (g[b] / g["vllm"]).dropna().median() for b in g if b != "vllm"}
                print(fam, system, kv, {b: round(v, 3) for b, v in out.items()})


def _ar_model(p, s, n, bw):
    base, peer, eff = p
    one = base + (n - 1) * peer + (n - 1) * s / (bw * eff)
    two = 2 * base + 2 * (n - 1) * peer + 2 * (n - 1) / n * s / (bw * eff)
    return np.minimum(one, two)


def allreduce(root: Path) -> None:
    ar = pd.read_csv(root / "custom_allreduce.csv.gz")
    for eng, impl in (("vllm", "vllm_graph"), ("sglang", "sglang_graph"), ("trtllm", "trtllm")):
        sel = ar[(ar.impl == impl) & (ar.message_bytes <= 64 << 20)]
        h = sel[sel.system == "h100_sxm"].groupby(["num_gpus", "message_bytes"])
        h = h.latency_ms.median().reset_index()
        s, n, y = h.message_bytes.values, h.num_gpus.values, h.latency_ms.values * 1e-3

        def resid(p, s=s, n=n, y=y):
            return np.log(_ar_model(np.abs(p), s, n, LINK["h100_sxm"])) - np.log(y)

        p = np.abs(least_squares(resid, [3e-6, 2e-7, 0.5]).x)
        err = np.abs(_ar_model(p, s, n, LINK["h100_sxm"]) / y - 1).mean()
        line = f"{eng}: base {p[0] * 1e6:.2f} us, peer {p[1] * 1e6:.3f} us, eff {p[2]:.3f}; "
        line += f"H100 MAPE {err:.1%}"
        for system in ("a100_sxm", "b300_sxm", "gb300"):
            e = sel[sel.system == system].groupby(["num_gpus", "message_bytes"])
            e = e.latency_ms.median().reset_index()
            if len(e):
                pe = _ar_model(p, e.message_bytes.values, e.num_gpus.values, LINK[system])
                line += f"; held out {system} MAPE {np.abs(pe / (e.latency_ms.values * 1e-3) - 1).mean():.1%}"
        print(line)


# aiconfigurator system -> servesim profile whose fitted GEMM efficiencies the factors are
# relative to (B200/GB200 profiles are derived from the B300/GB300 fits, same generation)
MOE_SYSTEMS = {"h100_sxm": "h100-sxm", "b300_sxm": "b300"}
MOE_FORMATS = {
    "bfloat16": DTypes("bf16", "bf16", "bf16"),
    "fp8": DTypes("fp8", "fp8", "fp8"),
    "fp8_block": DTypes("fp8", "fp8", "fp8"),
    "w4a16_mxfp4": DTypes("fp4", "bf16", "bf16"),
    "nvfp4": DTypes("fp4", "fp4", "fp4"),
    "w4a8_mxfp4_mxfp8": DTypes("fp4", "fp8", "fp8"),
}


def moe_model_s(hw, r) -> float:
    """servesim's routed-expert operators for one aiconfigurator MoE row (TP1/EP1, balanced):
    permute, gate/up and down grouped GEMMs, activation, un-permute (servesim/cost/ops.py
    _ffn_ops), on ``hw`` = the profile with the engine's overlay."""
    dt = MOE_FORMATS[r.moe_dtype]
    rows = r.num_tokens * r.topk
    ex = r.num_experts * (1 - (1 - r.topk / r.num_experts) ** r.num_tokens)
    h, i = r.hidden_size, r.inter_size
    a = {"bf16": 2.0, "fp8": 1.0, "fp4": 0.5}[dt.activations]
    t = roofline.grouped_gemm_time(hw, rows, ex, 2 * i, h, dt).seconds
    t += roofline.grouped_gemm_time(hw, rows, ex, h, i, dt).seconds
    for row_bytes in (2 * i * 2 + i * a, 2 * h * a, h * 2 * (1 + 1 / r.topk)):
        t += roofline.elementwise_time(hw, rows * row_bytes).seconds
    return t


def moe(root: Path) -> None:
    """Median measured fused-MoE latency / servesim's routed-expert time, per system, engine,
    weight format and kernel, at >= 8 routed rows per expert (balanced, TP1/EP1): the factors
    of specs/engines.py _MOE. Also by rows per expert, to show whether the grouped-GEMM tile
    model's dependence on rows per expert holds."""
    d = pd.read_csv(root / "moe.csv.gz")
    d = d[d.system.isin(MOE_SYSTEMS) & (d.distribution == "balanced") & (d.moe_tp_size == 1)]
    d = d[(d.moe_ep_size == 1) & d.moe_dtype.isin(MOE_FORMATS)]
    keys = ["system", "backend", "kernel_source", "moe_dtype", "hidden_size", "inter_size"]
    d = d.groupby([*keys, "num_experts", "topk", "num_tokens"]).latency_ms.median().reset_index()
    parts = []
    for (system, backend), g in d.groupby(["system", "backend"]):
        hw = load_hardware(MOE_SYSTEMS[system]).for_engine(backend)
        g = g.assign(model_ms=[moe_model_s(hw, r) * 1e3 for r in g.itertuples()])
        parts.append(g)
    d = pd.concat(parts)
    d["ratio"] = d.latency_ms / d.model_ms
    d["rows_per_expert"] = pd.cut(d.num_tokens * d.topk / d.num_experts,
                                  [0, 1, 8, 64, 512, np.inf], right=False)  # fmt: skip
    d["kernel"] = d.kernel_source.str[:36]
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        big = d[d.num_tokens * d.topk / d.num_experts >= 8]
        print(big.groupby(["system", "backend", "moe_dtype", "kernel"]).ratio.agg(
            ["median", "count"]).round(2).to_string())  # fmt: skip
        print(d.pivot_table(index=["system", "backend", "moe_dtype", "kernel"],
                            columns="rows_per_expert", values="ratio", aggfunc="median",
                            observed=False).round(2).to_string())  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = os.environ.get("SERVESIM_SHARED_DATA") or str(REPO.parent / "shared" / "data")
    ap.add_argument("--data", default=default)
    root = Path(ap.parse_args().data) / "measured" / "aiconfigurator"
    attention(root)
    allreduce(root)
    moe(root)


if __name__ == "__main__":
    main()
