"""aiconfigurator's per-kernel timings as calibration rows (../shared/data/measured/aiconfigurator).

NVIDIA's aiconfigurator times the kernels TensorRT-LLM, vLLM and SGLang run today (GEMMs in
bf16/fp8/fp8-block/nvfp4, context and generation attention, MLA, fused MoE, custom all-reduce,
NCCL) on A100, H100, L40S, B300, GB300 and RTX PRO 6000, as CUDA-graph replays (no host launch
cost). Each row is mapped to the operator call the simulator makes for the same shape
(roofline.py, comm.py; the same formulas as ops.py/step.py), so fitted efficiencies are exactly
what the simulator runs with.

Families are ``<op>.<format>``: gemm.bf16|fp8|fp8_block|fp4, moe.<same> (balanced routing),
moe_powerlaw.<same> (power-law routing: the busiest rank), attn_prefill.bf16|fp8,
attn_decode.bf16|fp8 (fp8 = FP8 KV cache), mla_prefill.bf16, mla_decode.bf16|fp8,
allreduce.custom|nccl. A row's ``device`` is ``<system>/<engine>``; its ``group`` is the shape
held out together (GEMM weight shape, attention head layout, MoE model shape).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from servesim.cost import comm, roofline
from servesim.cost.calibrate import Sample
from servesim.cost.ops import expected_distinct_experts, hidden_bytes
from servesim.specs.common import SpecError
from servesim.specs.dtypes import DTYPE_BYTES, DTypes
from servesim.specs.hardware import HardwareSpec

# The aiconfigurator system ids and the servesim profiles of the same device.
SYSTEM_PROFILES: dict[str, str] = {
    "a100_sxm": "a100-sxm",
    "h100_sxm": "h100-sxm",
    "l40s": "l40s",
    "b300_sxm": "b300",
    "gb300": "gb300",
    "rtx_pro_6000_server": "rtx-pro-6000",
}
ENGINES = ("trtllm", "vllm", "sglang")
UPSTREAM = "ai-dynamo/aiconfigurator@095f58a"  # commit of the tables (their README)
FILES: dict[str, str] = {
    "gemm": "gemm.csv.gz",
    "attn_prefill": "context_attention.csv.gz",
    "attn_decode": "generation_attention.csv.gz",
    "mla_prefill": "context_mla.csv.gz",
    "mla_decode": "generation_mla.csv.gz",
    "moe": "moe.csv.gz",
    "allreduce.custom": "custom_allreduce.csv.gz",
    "allreduce.nccl": "nccl.csv.gz",
}
# The columns that say a CSV is in aiconfigurator's format (with latency_ms and system).
SIGNATURES: dict[str, tuple[str, ...]] = {
    "gemm": ("gemm_dtype", "m", "n", "k"),
    "mla_prefill": ("mla_dtype", "num_heads", "isl", "kv_len", "tp_size"),
    "attn_prefill": ("attn_dtype", "num_heads", "num_kv_heads", "head_dim", "isl", "kv_len"),
    "moe": ("moe_dtype", "hidden_size", "inter_size", "num_experts", "topk", "num_tokens"),
    "allreduce.custom": ("impl", "cuda_graph", "num_gpus", "message_bytes"),
    "allreduce.nccl": ("op", "num_gpus", "message_bytes"),
}
_FORMATS = {"bfloat16": "bf16", "fp8": "fp8", "fp8_block": "fp8_block", "nvfp4": "fp4"}
_DT = {
    "bf16": DTypes("bf16", "bf16", "bf16"),
    "fp8": DTypes("fp8", "fp8", "bf16"),
    "fp8_block": DTypes("fp8", "fp8", "bf16"),
    "fp4": DTypes("fp4", "fp4", "bf16"),
}
# DeepSeek-V3 MLA geometry (the only one aiconfigurator times): kv_lora_rank, rope, nope, v.
_MLA = (512, 64, 128, 128)


def _kind(columns: Iterable[str], path: str) -> str:
    cols = set(columns)
    if not {"system", "backend", "latency_ms"} <= cols:
        raise SpecError(path, "columns", "system, backend, latency_ms", "missing (aiconfigurator)")
    for kind, need in SIGNATURES.items():
        if set(need) <= cols:
            return kind
    raise SpecError(path, "columns", ", ".join(sorted(cols)), "not an aiconfigurator kernel table")


def is_aic_table(columns: Iterable[str]) -> bool:
    cols = set(columns)
    return {"system", "backend", "latency_ms", "sm_version"} <= cols


def read_table(path: str | Path, systems: Sequence[str] | None = None) -> tuple[str, Any]:
    """(kind, frame) of one aiconfigurator CSV, first repeat of each key only."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise SpecError(str(p), "", str(p), "file not found")
    df = pd.read_csv(p)
    kind = _kind(df.columns, str(p))
    if "repeat_idx" in df.columns:
        df = df[df["repeat_idx"] == 0]
    if systems:
        df = df[df["system"].isin(list(systems))]
    if (
        kind in ("attn_prefill", "mla_prefill")
        and "generation" in p.name
        or kind in ("attn_prefill", "mla_prefill")
        and (df["isl"] == 1).all()
        and len(df)
    ):
        kind = kind.replace("prefill", "decode")
    if kind == "allreduce.nccl":
        df = df[df["op"] == "all_reduce"]
    if (pd.to_numeric(df["latency_ms"], errors="coerce").fillna(-1) <= 0).any():
        raise SpecError(str(p), "latency_ms", "<= 0 or not a number", "must be positive (ms)")
    return kind, df


def stratified(df: Any, strata: Sequence[str], size_col: str, per: int, seed: int = 0) -> Any:
    """At most ``per`` rows per stratum x octave of ``size_col`` (fixed seed): every shape class
    and size keeps rows, so a fit on a subsample sees the whole range."""
    if per <= 0 or df.empty:
        return df
    octave = np.floor(np.log2(np.maximum(df[size_col].to_numpy(dtype=float), 1.0)))
    keyed = df.assign(_octave=octave).sample(frac=1.0, random_state=seed)
    picked = keyed.groupby([*strata, "_octave"], sort=False).head(per)
    return picked.drop(columns="_octave").sort_index()


# ------------------------------------------------------------------------------------ mapping


def samples(kind: str, df: Any) -> list[Sample]:
    """The rows of one table as calibration Samples (see the module doc for the families)."""
    rows = df.to_dict("records")
    return [s for r in rows if (s := _MAP[kind](r)) is not None]


def _dev(r: dict) -> str:
    return f"{r['system']}/{r['backend']}"


def _gemm(r: dict) -> Sample | None:
    fmt = _FORMATS.get(r["gemm_dtype"])
    if fmt is None:  # A100 weight-only int4/int8 and SmoothQuant plugins: not modelled
        return None
    m, n, k = int(r["m"]), int(r["n"]), int(r["k"])
    group = f"{n}x{k}"
    return Sample(f"gemm.{fmt}", group, (n, k), _dev(r), r["latency_ms"] * 1e-3, (m, n, k, fmt))


def _window_pairs(isl: int, window: int) -> float:
    """Causal (query, key) pairs of one chunk of ``isl`` new tokens under a sliding window."""
    if window <= 0 or isl <= window:
        return isl * (isl + 1) / 2.0
    return window * (window + 1) / 2.0 + (isl - window) * window


def _attn(r: dict, phase: str) -> Sample:
    h, kvh, hd = int(r["num_heads"]), int(r["num_kv_heads"]), int(r["head_dim"])
    b, isl, kv_len, w = int(r["batch_size"]), int(r["isl"]), int(r["kv_len"]), int(r["window_size"])
    kv_fmt = "fp8" if r["kv_cache_dtype"] == "fp8" else "bf16"
    kvb = 1.0 if kv_fmt == "fp8" else 2.0
    kv_tok, qo_tok = 2 * kvh * hd * kvb, 2 * h * hd * 2.0
    if phase == "prefill":
        fmt = "fp8" if r["attn_dtype"] == "fp8" else "bf16"
        pairs = b * _window_pairs(isl, w)
        call = (phase, fmt, b, h, kvh, hd, b * isl, pairs, pairs, 4.0 * h * hd * pairs,
                b * isl * (kv_tok + qo_tok))  # fmt: skip
        family = f"attn_prefill.{fmt}"
    else:
        ctx = min(kv_len, w) if w > 0 else kv_len
        pairs = b * ctx
        call = (phase, "bf16", b, h, kvh, hd, b, pairs, 0.0, 4.0 * h * hd * pairs,
                pairs * kv_tok + b * qo_tok)  # fmt: skip
        family = f"attn_decode.{kv_fmt}"
    group = f"h{h}/kv{kvh}/d{hd}/w{w}"
    return Sample(family, group, (hd, h, kvh, w), _dev(r), r["latency_ms"] * 1e-3, call)


def _mla(r: dict, phase: str) -> Sample:
    rank, rope, nope, v = _MLA
    h, b, isl, kv_len = int(r["num_heads"]), int(r["batch_size"]), int(r["isl"]), int(r["kv_len"])
    kv_fmt = "fp8" if r["kv_cache_dtype"] == "fp8" else "bf16"
    kvb = 1.0 if kv_fmt == "fp8" else 2.0
    if phase == "prefill":  # not absorbed: MHA with 192-dim Q/K and 128-dim V (ops.py)
        qk = nope + rope
        pairs = b * isl * (isl + 1) / 2.0
        tok = h * (qk + v) * 2.0
        call = (phase, "bf16", b, h, h, qk, b * isl, pairs, pairs, 2.0 * h * (qk + v) * pairs,
                b * isl * 2 * tok)  # fmt: skip
        family = "mla_prefill.bf16"
    else:  # absorbed: MQA over the 576-dim latent
        pairs = b * kv_len
        call = (phase, "bf16", b, h, 1, rank + rope, b, pairs, 0.0,
                2.0 * h * (2 * rank + rope) * pairs,
                pairs * (rank + rope) * kvb + b * h * (2 * rank + rope) * 2.0)  # fmt: skip
        family = f"mla_decode.{kv_fmt}"
    return Sample(family, f"h{h}", (h,), _dev(r), r["latency_ms"] * 1e-3, call)


def _moe(r: dict) -> Sample | None:
    fmt = _FORMATS.get(r["moe_dtype"])
    if fmt is None:  # int4 / mxfp4 weight-only variants: no format of their own in the model
        return None
    hidden, inter, e, topk = (
        int(r[c]) for c in ("hidden_size", "inter_size", "num_experts", "topk")
    )
    tp, ep, t = int(r["moe_tp_size"]), int(r["moe_ep_size"]), int(r["num_tokens"])
    gated = "nongated" not in str(r["kernel_source"])
    alpha = float(r["power_law_alpha"])
    group = f"{hidden}/{inter}/{e}/{topk}"
    call = (fmt, t, hidden, inter // tp, e, topk, ep, alpha, gated)
    # balanced rows fit the kernel; power-law rows also test the busiest-rank model
    family = f"moe.{fmt}" if alpha == 0.0 else f"moe_powerlaw.{fmt}"
    return Sample(family, group, (hidden, inter, e, topk), _dev(r), r["latency_ms"] * 1e-3, call,
                  alpha == 0.0)  # fmt: skip


def _allreduce(r: dict, impl: str) -> Sample:
    graph = impl == "custom" and (str(r["cuda_graph"]) == "True" or r.get("impl") == "trtllm")
    n, size = int(r["num_gpus"]), float(r["message_bytes"])
    return Sample(f"allreduce.{impl}", f"{impl}/{n}", (n,), _dev(r), r["latency_ms"] * 1e-3,
                  (size, n, graph), size >= (1 << 20))  # fmt: skip


_MAP = {
    "gemm": _gemm,
    "attn_prefill": lambda r: _attn(r, "prefill"),
    "attn_decode": lambda r: _attn(r, "decode"),
    "mla_prefill": lambda r: _mla(r, "prefill"),
    "mla_decode": lambda r: _mla(r, "decode"),
    "moe": _moe,
    "allreduce.custom": lambda r: _allreduce(r, "custom"),
    "allreduce.nccl": lambda r: _allreduce(r, "nccl"),
}


# ------------------------------------------------------------------------------------ predicting


@functools.lru_cache(maxsize=4096)
def power_law_imbalance(experts: int, ep: int, topk: int, tokens: int, alpha: float) -> float:
    """Rows of the busiest EP rank over the mean rank's under aiconfigurator's power-law routing.

    As its collector (collector/*/collect_moe.py, power_law_logits_v4): per-expert loads drawn
    from a power law x^-alpha bounded to [1, 0.8 tokens] (to [0.01, 2] when tokens x topk <=
    experts), scaled to tokens x topk, redrawn while an expert would get more than every token;
    experts dealt to ranks in contiguous groups and the most loaded group timed. Mean of 5 draws
    (fixed seeds). Balanced routing (alpha 0) or one rank: 1."""
    if alpha <= 0.0 or ep <= 1 or experts < ep:
        return 1.0
    rng = np.random.default_rng(np.random.SeedSequence([experts, ep, topk, tokens, 7]))
    lo, hi = (1.0, tokens * 0.8) if tokens * topk > experts else (0.01, 2.0)
    if hi <= lo:
        return 1.0
    e = 1.0 - alpha
    per = experts // ep
    worst = []
    for _ in range(5):
        for _attempt in range(20):
            x = ((hi**e - lo**e) * rng.random(experts) + lo**e) ** (1.0 / e)
            loads = np.round(x / x.sum() * tokens * topk)
            if loads.max() <= tokens:
                break
        loads = np.minimum(loads, tokens)
        total = loads[: per * ep].sum()
        if total <= 0:
            return 1.0
        worst.append(loads[: per * ep].reshape(ep, per).sum(axis=1).max() / (total / ep))
    return float(np.mean(worst))


def moe_time(hw: HardwareSpec, call: tuple) -> float:
    """One rank's fused MoE (routing, permute, up GEMM, activation, down GEMM, combine) as
    step.py charges it: grouped GEMMs over the experts touched, rows of the busiest rank."""
    fmt, tokens, hidden, inter, experts, topk, ep, alpha, gated = call
    dt = _DT[fmt]
    touched = expected_distinct_experts(experts, topk, tokens) / ep
    mean = tokens * topk / ep
    slow = math.ceil(mean * power_law_imbalance(experts, ep, topk, tokens, alpha))
    up = roofline.grouped_gemm_time(hw, slow, touched, (2 if gated else 1) * inter, hidden, dt)
    down = roofline.grouped_gemm_time(hw, slow, touched, hidden, inter, dt)
    # the element-wise kernels around them, with ops.py's bytes (moe_topk over every token;
    # moe_permute, moe_act, moe_unpermute over this rank's rows): the fused op times them all
    act_b, hid_b = DTYPE_BYTES[dt.activations], hidden_bytes(dt)
    up_w = 2 if gated else 1
    side = (roofline.elementwise_time(hw, tokens * (experts * 4 + topk * 8)).seconds
            + roofline.elementwise_time(hw, slow * 2 * hidden * act_b).seconds
            + roofline.elementwise_time(hw, slow * (up_w * inter * hid_b + inter * act_b)).seconds
            + roofline.elementwise_time(hw, slow * hidden * hid_b * (1.0 + 1.0 / topk)).seconds)  # fmt: skip
    other = roofline.moe_other_rows_time(hw, tokens * topk - slow, hidden * hid_b, dt.compute)
    return up.seconds + down.seconds + side + other


def _block_view(hw: HardwareSpec) -> HardwareSpec:
    """``hw`` with its fp8-block keys standing in for the fp8 ones (DTypes has one fp8)."""
    block = {k.replace("@fp8_block", "@fp8"): v for k, v in hw.efficiency if "@fp8_block" in k}
    if not block:
        return hw
    import dataclasses

    merged = {k: v for k, v in hw.efficiency if "@fp8_block" not in k} | block
    return dataclasses.replace(hw, efficiency=tuple(sorted(merged.items())))


_VIEWS: dict[tuple[int, str], tuple[HardwareSpec, HardwareSpec]] = {}


def _tensor_view(hw: HardwareSpec) -> HardwareSpec:
    """``hw`` without its fp8-block MoE keys: a per-tensor fp8 MoE row runs the ``@fp8`` ones
    (the simulator's fp8 MoE prefers the block keys, roofline.moe_format)."""
    drop = [k for k, _ in hw.efficiency if k.startswith("moe_") and k.endswith("@fp8_block")]
    if not drop:
        return hw
    import dataclasses

    kept = tuple((k, v) for k, v in hw.efficiency if k not in drop)
    return dataclasses.replace(hw, efficiency=kept)


def _for_format(hw: HardwareSpec, fmt: str) -> HardwareSpec:
    if fmt not in ("fp8", "fp8_block"):
        return hw
    hit = _VIEWS.get((id(hw), fmt))
    if hit is None or hit[0] is not hw:
        if len(_VIEWS) > 64:
            _VIEWS.clear()
        view = _block_view(hw) if fmt == "fp8_block" else _tensor_view(hw)
        hit = _VIEWS[(id(hw), fmt)] = (hw, view)
    return hit[1]


def predict(hw: HardwareSpec, s: Sample) -> float:
    """Seconds the cost model gives for one aiconfigurator row."""
    op = s.family.partition(".")[0]
    c = s.call
    if op == "gemm":
        m, n, k, fmt = c
        return roofline.gemm_time(_for_format(hw, fmt), m, n, k, _DT[fmt]).seconds
    if op in ("moe", "moe_powerlaw"):
        return moe_time(_for_format(hw, c[0]), c)
    if op in ("attn_prefill", "attn_decode", "mla_prefill", "mla_decode"):
        phase, fmt, seqs, h, kvh, hd, tokens, pairs, causal, flops, bytes_ = c
        return roofline.attention_time(
            hw, flops, bytes_, phase, seqs=seqs, q_heads=h, kv_heads=kvh, head_dim=hd,
            tokens=tokens, pairs=pairs, causal_pairs=causal if phase == "prefill" else None,
            dtype=fmt,
        ).seconds  # fmt: skip
    if op == "allreduce":
        size, n, graph = c
        if s.family == "allreduce.custom":
            return comm.fitted_custom_allreduce_time(hw, size, n, graph)
        return comm.allreduce_time(hw, size, n, graph=graph)
    raise ValueError(f"unknown family {s.family!r}")
