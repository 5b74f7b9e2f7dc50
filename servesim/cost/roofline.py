"""Time of one operator on one device, from its FLOPs and bytes and the hardware's efficiencies.

The formulas of the operators (FLOPs, bytes) live in ops.py; this module turns them into seconds
with the efficiency parameters of the hardware profile (``hw.eff(key)``; keys, defaults and one-line
meanings in ``servesim.specs.hardware.EFFICIENCY_DEFAULTS``). Per device, seconds, SI.

The shape of every formula is a roofline with three corrections that measured kernels show:
- a *smooth* maximum of compute and memory time, ``(c^p + m^p)^(1/p)``: near the ridge point a
  kernel is neither purely compute- nor memory-bound, and the plain ``max`` is too optimistic there
  (p -> infinity gives the plain roofline, p = 1 the sum); for GEMMs p grows with the kernel's
  duration, as long kernels pipeline loads under math better than short ones;
- a fixed cost per kernel (launch, prologue, tail) and, for attention, per sequence;
- quantisation: a GEMM computes whole tiles and runs them in waves over the compute units, so a
  last, partly filled wave costs as much as a full one; decode attention runs one block per
  (sequence, KV head) and quantises the same way. Its strength is a fitted exponent (0 = off), and
  it is off when the profile does not know the unit count (``compute_units`` = 0).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from servesim.specs.dtypes import DTYPE_BYTES, DTypes
from servesim.specs.hardware import EFFICIENCY_DEFAULTS, HardwareSpec


class OpTime(NamedTuple):
    seconds: float
    bound: str  # "compute" | "memory" | "comm" | "overhead"


_ZERO = OpTime(0.0, "overhead")

# Efficiencies of recently used specs as plain dicts: ``hw.eff`` scans a tuple per call, and the
# engine asks for operator times hundreds of thousands of times. Keyed by id with an identity
# check, bounded; a pure memo (same values as hw.eff).
_PARAMS: dict[int, tuple[HardwareSpec, dict[str, float]]] = {}


def params(hw: HardwareSpec) -> dict[str, float]:
    """Every efficiency parameter of ``hw`` (its profile's, else the default), memoised."""
    hit = _PARAMS.get(id(hw))
    if hit is not None and hit[0] is hw:
        return hit[1]
    values = {key: default for key, (default, _) in EFFICIENCY_DEFAULTS.items()}
    values.update(hw.efficiency)
    if len(_PARAMS) >= 256:
        _PARAMS.clear()
    _PARAMS[id(hw)] = (hw, values)
    return values


def _peak(hw: HardwareSpec, e: dict[str, float], dtype: str) -> float:
    key = "peak:" + dtype
    value = e.get(key)
    if value is None:
        value = e[key] = hw.peak_flops(dtype)
    return value


def smooth_max(a: float, b: float, p: float) -> float:
    """(a^p + b^p)^(1/p) for a, b >= 0, computed without overflow; p >= 1."""
    hi, lo = (a, b) if a >= b else (b, a)
    if hi <= 0.0:
        return 0.0
    return hi * (1.0 + (lo / hi) ** p) ** (1.0 / p)


def _timed(compute_s: float, memory_s: float, p: float, fixed_s: float) -> OpTime:
    bound = "compute" if compute_s >= memory_s else "memory"
    return OpTime(smooth_max(compute_s, memory_s, p) + fixed_s, bound)


def _wave_factor(units: float, blocks: float) -> float:
    """Cost of ``blocks`` equal blocks run in waves over ``units``, relative to perfect balance.

    Only when there is at least one full wave: with fewer blocks than units, kernels split the
    work further (split-K, split-KV), so a partial single wave is not a loss.
    """
    if units < 1.0 or blocks < units:
        return 1.0
    waves = math.ceil(blocks / units)
    return waves * units / blocks


def _gemm_quantisation(e: dict[str, float], rows: float, n: int, groups: int = 1) -> float:
    """Tile padding of M plus wave quantisation of the tiles, raised to ``gemm_wave`` (0 = off)."""
    strength = e["gemm_wave"]
    units = e["compute_units"]
    if strength <= 0.0 or units < 1.0:
        return 1.0
    tile_m, tile_n = e["gemm_tile_m"], e["gemm_tile_n"]
    # Small-M GEMMs use narrow tiles (or split-K GEMV kernels): pad M only once it fills a tile.
    m_tiles = math.ceil(rows / tile_m) if rows >= tile_m else 1
    padded = m_tiles * tile_m / rows if rows >= tile_m else 1.0
    blocks = groups * m_tiles * math.ceil(n / tile_n)
    return (padded * _wave_factor(units, blocks)) ** strength


def _gemm_timed(e: dict[str, float], compute_s: float, memory_s: float) -> OpTime:
    """Longer GEMMs overlap loads and math better (more K steps and tiles per unit to pipeline
    over the prologue and epilogue): the smooth-max exponent grows with the kernel's duration."""
    scale = e["gemm_overlap_s"]  # 0: perfect overlap, the plain roofline max
    p = e["gemm_overlap"] + max(compute_s, memory_s) / scale if scale > 0 else math.inf
    return _timed(compute_s, memory_s, p, e["gemm_launch_s"])


def gemm_time(hw: HardwareSpec, m: int, n: int, k: int, dtypes: DTypes) -> OpTime:
    """One [m x k] @ [k x n] GEMM on one device.

    Weights (k*n in ``dtypes.weights``) are read once; activations (m*k in, m*n out, in
    ``dtypes.activations``) per row; m is the token count. FLOPs 2*m*n*k at the peak of the compute
    dtype (the wider of weights and activations).
    """
    if m <= 0 or n <= 0 or k <= 0:
        return _ZERO
    e = params(hw)
    flops = 2.0 * m * n * k
    bytes_ = k * n * DTYPE_BYTES[dtypes.weights] + m * (k + n) * DTYPE_BYTES[dtypes.activations]
    peak = _peak(hw, e, dtypes.compute)
    compute_s = flops / (peak * e["gemm_compute"]) * _gemm_quantisation(e, m, n)
    memory_s = bytes_ / (hw.memory_bw * e["gemm_memory"])
    return _gemm_timed(e, compute_s, memory_s)


def grouped_gemm_time(
    hw: HardwareSpec, tokens: int, experts: int, n: int, k: int, dtypes: DTypes
) -> OpTime:
    """``experts`` distinct [k x n] matrices touched by ``tokens`` routed rows in total (MoE).

    Weights of every touched expert are read once; the rows are spread evenly over the experts
    (one grouped kernel, so one launch).
    """
    if tokens <= 0 or experts <= 0 or n <= 0 or k <= 0:
        return _ZERO
    e = params(hw)
    experts = min(experts, tokens)  # a row goes to one matrix: no more matrices than rows
    flops = 2.0 * tokens * n * k
    bytes_ = (
        experts * k * n * DTYPE_BYTES[dtypes.weights]
        + tokens * (k + n) * DTYPE_BYTES[dtypes.activations]
    )
    peak = _peak(hw, e, dtypes.compute)
    rows = tokens / experts
    quant = _gemm_quantisation(e, rows, n, groups=experts)
    compute_s = flops / (peak * e["gemm_compute"]) * quant
    memory_s = bytes_ / (hw.memory_bw * e["gemm_memory"])
    return _gemm_timed(e, compute_s, memory_s)


def attention_time(
    hw: HardwareSpec,
    flops: float,
    bytes_: float,
    phase: str,
    *,
    seqs: int,
    q_heads: int,
    kv_heads: int,
    head_dim: int,
    tokens: int = 0,
    dtype: str = "bf16",
) -> OpTime:
    """One attention kernel (one layer, one device; heads already divided by TP).

    ``phase`` "prefill": ``seqs`` chunks with ``tokens`` new tokens in total; the causal part of
    the FLOPs (new x new tokens, about 4 * q_heads * head_dim * tokens^2 / (2 * seqs) for equal
    chunks) runs at ``attn_causal``, the part over cached context at ``attn_compute`` (masked
    diagonal tiles and short key loops make the causal part slower). Without ``tokens`` all
    FLOPs count as context. ``phase`` "decode": ``seqs`` sequences, one query token each; bound
    by streaming the KV cache, with one block per (sequence, KV head) run in waves.
    ``dtype``: the format the kernel computes in (for the peak FLOP/s).
    """
    if seqs <= 0 or (flops <= 0 and bytes_ <= 0):
        return _ZERO
    e = params(hw)
    peak = _peak(hw, e, dtype)
    memory_s = bytes_ / (hw.memory_bw * e["attn_memory"])
    if phase == "prefill":
        causal = 0.0
        if tokens > 0:
            causal = min(flops, 4.0 * q_heads * head_dim * tokens * tokens / (2.0 * seqs))
        # Per query row work that does not depend on the keys (load Q, normalise, write O), as
        # a number of key positions' worth of FLOPs.
        rows = 4.0 * q_heads * head_dim * tokens * e["attn_row_keys"]
        compute_s = (flops - causal + rows) / (peak * e["attn_compute"]) + causal / (
            peak * e["attn_causal"]
        )
    elif phase == "decode":
        compute_s = flops / (peak * e["attn_compute"])
        strength = e["attn_wave"]
        if strength > 0.0:
            memory_s *= _wave_factor(e["compute_units"], seqs * max(kv_heads, 1)) ** strength
    else:
        raise ValueError(f"attention phase must be 'prefill' or 'decode', not {phase!r}")
    launch = e["attn_prefill_launch_s" if phase == "prefill" else "attn_launch_s"]
    fixed_s = launch + seqs * e["attn_seq_s"]
    return _timed(compute_s, memory_s, e["attn_overlap"], fixed_s)


def elementwise_time(hw: HardwareSpec, bytes_: float) -> OpTime:
    """Norms, activations, residual adds, rotary, embedding gathers: bytes read and written once."""
    if bytes_ <= 0:
        return _ZERO
    e = params(hw)
    seconds = bytes_ / (hw.memory_bw * e["elementwise_memory"]) + e["kernel_launch_s"]
    return OpTime(seconds, "memory")
