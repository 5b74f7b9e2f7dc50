"""Recompute the engine-kernel constants of servesim/specs/engines.py from NVIDIA's
aiconfigurator kernel timings (../shared/data/measured/aiconfigurator).

    python experiments/e2e_validation/engine_factors.py [--data DIR]

Prints (1) attention factors: median latency ratio of each engine's attention kernel to vLLM's on
the same shapes (rows over 20 us), per system and KV format; (2) the custom all-reduce fit per
engine on H100 CUDA-graph rows, and its error held out on A100/B300/GB300; (3) MoE kernel
factors: median measured fused-MoE latency over servesim's grouped-GEMM time at >= 8 routed rows
per expert (H100, balanced, TP1/EP1). Reads ~25 MB of gzip'd CSV; about a minute on 2 cores.
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


def moe(root: Path) -> None:
    hw = load_hardware("h100-sxm")
    fmt = {
        "bfloat16": DTypes("bf16", "bf16", "bf16"),
        "fp8": DTypes("fp8", "fp8", "fp8"),
        "fp8_block": DTypes("fp8", "fp8", "fp8"),
        "w4a16_mxfp4": DTypes("fp4", "bf16", "bf16"),
    }
    d = pd.read_csv(root / "moe.csv.gz")
    d = d[(d.system == "h100_sxm") & (d.distribution == "balanced") & (d.moe_tp_size == 1)]
    d = d[(d.moe_ep_size == 1) & d.moe_dtype.isin(fmt)]
    keys = ["backend", "moe_dtype", "hidden_size", "inter_size", "num_experts", "topk"]
    d = d.groupby([*keys, "num_tokens"]).latency_ms.median().reset_index()
    d = d[d.num_tokens * d.topk / d.num_experts >= 8]

    def sim(r) -> float:
        dt = fmt[r.moe_dtype]
        rows = r.num_tokens * r.topk
        ex = r.num_experts * (1 - (1 - r.topk / r.num_experts) ** r.num_tokens)
        h, i = r.hidden_size, r.inter_size
        t = roofline.grouped_gemm_time(hw, rows, ex, 2 * i, h, dt).seconds
        t += roofline.grouped_gemm_time(hw, rows, ex, h, i, dt).seconds
        act = 2 if dt.activations == "bf16" else 1
        return t + roofline.elementwise_time(hw, rows * (4 * i + i * act)).seconds

    d["ratio"] = d.latency_ms * 1e-3 / [sim(r) for r in d.itertuples()]
    print(d.groupby(["backend", "moe_dtype"]).ratio.median().round(2).to_string())


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
