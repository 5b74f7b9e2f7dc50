"""TP scaling of a dense decode step, kernel by kernel: servesim's step against the sum of the
kernels NVIDIA's aiconfigurator measured for the same shapes (../shared/data/measured/aiconfigurator).

    python experiments/e2e_validation/tp_scaling.py [--model llama-3.1-70b] [--engine trtllm]

Per TP degree (2, 4, 8) and decode batch (1, 8, 64; context 2,048; bf16, H100): the four GEMMs of
a layer at their tensor-parallel shapes, decode attention with heads / TP, and the two custom
all-reduces of batch x hidden x 2 bytes, times the layer count. Measured latencies are
interpolated log-log between the table's grid points (GEMM n and k, all-reduce message size);
norms, activations, RoPE and the LM head are left out of both sides (no kernel rows). This checks
how the cost model's step shrinks with TP, without the engine's host time or end-to-end effects.
About 20 s (reads three tables).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "measured" / "aiconfigurator"
if not DATA.is_dir():
    DATA = Path("/work/shared/data/measured/aiconfigurator")
OPS = ("qkv_proj", "o_proj", "mlp_gate_up", "mlp_down", "attn_decode", "tp_allreduce")


def _interp(xs: np.ndarray, ys: np.ndarray, x: float) -> float:
    """Log-log interpolation (and end-segment extrapolation) of y(x)."""
    order = np.argsort(xs)
    lx, ly = np.log(xs[order]), np.log(ys[order])
    i = int(np.clip(np.searchsorted(lx, math.log(x)), 1, len(lx) - 1))
    t = (math.log(x) - lx[i - 1]) / (lx[i] - lx[i - 1])
    return float(math.exp(ly[i - 1] + t * (ly[i] - ly[i - 1])))


def gemm_s(g: pd.DataFrame, m: int, n: int, k: int) -> float:
    """Measured GEMM seconds at (m, n, k), interpolated over n then k on the m row."""
    rows = g[g.m == m]
    per_k = {}
    for kk, sub in rows.groupby("k"):
        if sub.n.nunique() >= 2:
            per_k[kk] = _interp(sub.n.to_numpy(float), sub.latency_ms.to_numpy(float), n)
    ks = np.array(sorted(per_k), float)
    return _interp(ks, np.array([per_k[x] for x in sorted(per_k)]), k) * 1e-3


def measured_step(tables, model, tp: int, batch: int, ctx: int) -> dict[str, float]:
    gemm, attn, ar = tables
    h, layers = model.hidden_size, model.num_layers
    q, kv, d = model.num_heads, model.num_kv_heads, model.head_dim
    out = {
        "qkv_proj": gemm_s(gemm, batch, (q + 2 * kv) * d // tp, h),
        "o_proj": gemm_s(gemm, batch, h, q * d // tp),
        "mlp_gate_up": gemm_s(gemm, batch, 2 * model.intermediate_size // tp, h),
        "mlp_down": gemm_s(gemm, batch, h, model.intermediate_size // tp),
    }
    a = attn[(attn.num_heads == q // tp) & (attn.num_kv_heads == kv // tp) & (attn.head_dim == d)
             & (attn.batch_size == batch)]  # fmt: skip
    out["attn_decode"] = _interp(a.kv_len.to_numpy(float), a.latency_ms.to_numpy(float), ctx) * 1e-3
    r = ar[ar.num_gpus == tp] if tp > 1 else None
    out["tp_allreduce"] = (
        2 * _interp(r.message_bytes.to_numpy(float), r.latency_ms.to_numpy(float), batch * h * 2) * 1e-3
        if r is not None else 0.0
    )  # fmt: skip
    return {k: v * layers for k, v in out.items()}


def simulated_step(model_name: str, engine: str, tp: int, batch: int, ctx: int) -> dict[str, float]:
    from servesim.analysis import batch_aggregates
    from servesim.cost.step import CostContext, breakdown
    from servesim.specs.config import Parallelism
    from servesim.specs.dtypes import DTypes
    from servesim.specs.engines import engine_kernels
    from servesim.specs.hardware import load_hardware
    from servesim.specs.model import load_model

    hw = load_hardware("h100-sxm").for_engine(engine)
    ctx_ = CostContext(load_model(model_name), hw, Parallelism(tp=tp), DTypes(), 0.0, 1.0,
                       engine_kernels(engine, hw, 2.0))  # fmt: skip
    ops = breakdown(ctx_, "colocated", batch_aggregates((), [(batch, ctx)]))
    return {o.name: o.seconds * o.count for o in ops if o.name in OPS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="llama-3.1-70b")
    ap.add_argument("--engine", default="trtllm", choices=("trtllm", "vllm", "sglang"))
    ap.add_argument("--context", type=int, default=2048)
    a = ap.parse_args()
    from servesim.specs.model import load_model

    model = load_model(a.model)
    sel = dict(system="h100_sxm", backend=a.engine)
    g = pd.read_csv(DATA / "gemm.csv.gz", usecols=["system", "backend", "gemm_dtype", "m", "n",
                                                   "k", "latency_ms"])  # fmt: skip
    g = g[(g.system == sel["system"]) & (g.backend == a.engine) & (g.gemm_dtype == "bfloat16")]
    g = g.groupby(["m", "n", "k"], as_index=False).latency_ms.median()
    at = pd.read_csv(DATA / "generation_attention.csv.gz")
    at = at[(at.system == sel["system"]) & (at.backend == a.engine)
            & (at.attn_dtype == "bfloat16") & (at.kv_cache_dtype == "bfloat16")]  # fmt: skip
    at = at.groupby(["num_heads", "num_kv_heads", "head_dim", "batch_size", "kv_len"],
                    as_index=False).latency_ms.median()  # fmt: skip
    ar = pd.read_csv(DATA / "custom_allreduce.csv.gz")
    ar = ar[(ar.system == sel["system"]) & (ar.backend == a.engine) & ar.cuda_graph]
    ar = ar.groupby(["num_gpus", "message_bytes"], as_index=False).latency_ms.median()
    print(f"{a.model}, bf16, H100, {a.engine}, context {a.context}: decode step without norms, "
          "activations, RoPE, LM head (ms)\n")  # fmt: skip
    print("| batch | TP | measured kernels | simulated | sim / measured | measured vs TP2 | "
          "simulated vs TP2 | largest gap |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for batch in (1, 8, 64):
        base = None
        for tp in (2, 4, 8):
            m = measured_step((g, at, ar), model, tp, batch, a.context)
            s = simulated_step(a.model, a.engine, tp, batch, a.context)
            mt, st = sum(m.values()), sum(s.values())
            base = base or (mt, st)
            gap = max(OPS, key=lambda o: abs(s.get(o, 0.0) - m[o]))
            print(f"| {batch} | {tp} | {mt * 1e3:.2f} | {st * 1e3:.2f} | {st / mt:.2f} | "
                  f"{mt / base[0]:.2f} | {st / base[1]:.2f} | {gap} "
                  f"{(s.get(gap, 0.0) - m[gap]) * 1e3:+.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
