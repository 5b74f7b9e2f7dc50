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
  last, partly filled wave costs as much as a full one, and a grid smaller than one wave leaves
  units idle; decode attention runs split-KV blocks per (sequence, KV head) and quantises the same
  way. Strengths are fitted exponents (0 = off), and the models are off when the profile does not
  know the unit count (``compute_units`` = 0).
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
    for key, value in reversed(hw.efficiency):  # the first of repeated keys wins, as in hw.eff
        values[key] = value
    if not any(key == "compute_units" for key, _ in hw.efficiency) and hw.compute_units:
        # the datasheet unit count switches wave quantisation on for every GPU that states one
        values["compute_units"] = float(hw.compute_units)
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


# Output tile shapes (rows x columns per thread block) that GEMM libraries choose between for
# 16-bit tensor-core kernels: cuBLAS kernel names on A100/H100 carry them (ampere_fp16_s16816gemm_
# fp16_64x128, _128x128, _256x128; sm90_xmma_gemm_..._128x256), and they are CUTLASS's default
# threadblock shapes. Which one a library picks for a shape is a heuristic that cannot be predicted
# from outside (measured times jump from one M to the next), so the model averages the candidates'
# quantisation (geometric mean) instead of betting on one.
_GEMM_TILES = ((64, 128), (128, 128), (128, 256), (256, 128))
_GEMM_ROOT = 1.0 / len(_GEMM_TILES)


def _gemm_quantisation(e: dict[str, float], rows: float, n: int, groups: int = 1) -> float:
    """Time of the tiled kernel over the ideal 2MNK/peak: whole tiles, run in waves over the units.

    Per candidate tile shape, a grid that fills the compute units runs ceil(tiles/units) waves of
    whole tiles (strength ``gemm_wave``); a grid smaller than one wave leaves units idle and takes
    one tile's time however few tiles there are (strength ``gemm_fill_wave``, weaker: libraries
    split K over idle units; capped at ``gemm_wave``). A strength w blends ideal^(1-w) * tiled^w,
    so the time stays non-decreasing in M. ``gemm_wave`` 0 or an unknown unit count
    (``compute_units`` 0) switch the tile model off.
    """
    units = e["compute_units"]
    wave = e["gemm_wave"]
    if wave <= 0.0 or units < 1.0:
        return 1.0
    columns = _N_TILES.get(n)
    if columns is None:
        columns = _n_tiles(n)
    waved = filled = 1.0
    for tile_m, n_tiles, n_padded in columns:
        m_tiles = math.ceil(rows / tile_m)
        tiles = groups * m_tiles * n_tiles
        if tiles < units:
            filled *= m_tiles * tile_m / rows * n_padded * units / tiles
        else:
            waved *= m_tiles * tile_m / rows * n_padded * math.ceil(tiles / units) * units / tiles
    if filled == 1.0:
        return waved ** (wave * _GEMM_ROOT)
    # never stronger than the wave strength, which keeps the time non-decreasing in M
    fill = min(e["gemm_fill_wave"], wave)
    return waved ** (wave * _GEMM_ROOT) * filled ** (fill * _GEMM_ROOT)


# Per N: (tile rows, column tiles, padded N / N) of each candidate tile; few distinct N per model.
_N_TILES: dict[int, tuple[tuple[int, int, float], ...]] = {}


def _n_tiles(n: int) -> tuple[tuple[int, int, float], ...]:
    out = tuple((tm, -(-n // tn), -(-n // tn) * tn / n) for tm, tn in _GEMM_TILES)
    if len(_N_TILES) >= 4096:
        _N_TILES.clear()
    _N_TILES[n] = out
    return out


# Per (device, dtypes): the constants of gemm_time, so the hot path does arithmetic only.
_GEMM_CONSTS: dict[tuple[int, int], tuple] = {}


def by_dtype(e: dict[str, float], key: str, dtype: str) -> float:
    """``key@dtype`` where the profile fits it per format (calibrate: fp8, fp4 kernels), else ``key``."""
    return e.get(f"{key}@{dtype}", e[key])


def _gemm_consts(hw: HardwareSpec, dtypes: DTypes, grouped: bool = False) -> tuple:
    e, dt = params(hw), dtypes.compute
    compute = by_dtype(e, "gemm_compute", dt)
    memory = by_dtype(e, "gemm_memory", dt)
    launch = by_dtype(e, "gemm_launch_s", dt)
    if grouped:  # MoE grouped GEMMs: their own fit where the profile has one (0 = as dense)
        mdt = moe_format(e, dt)
        compute = by_dtype(e, "moe_compute", mdt) or compute
        memory = by_dtype(e, "moe_memory", mdt) or memory
        launch = by_dtype(e, "moe_launch_s", mdt) or launch
    consts = (
        hw, dtypes, e,
        _peak(hw, e, dt) * compute,  # FLOP/s
        DTYPE_BYTES[dtypes.weights], DTYPE_BYTES[dtypes.activations],
        hw.memory_bw * memory,  # bytes/s
        e["gemm_k_s"], e["gemm_overlap"], e["gemm_overlap_s"], launch,
    )  # fmt: skip
    cache = _GROUPED_CONSTS if grouped else _GEMM_CONSTS
    if len(cache) >= 256:
        cache.clear()
    cache[(id(hw), id(dtypes))] = consts
    return consts


_GROUPED_CONSTS: dict[tuple[int, int], tuple] = {}


def moe_format(e: dict[str, float], dtype: str) -> str:
    """The format whose MoE keys an fp8 MoE runs with: block-scaled fp8 (``@fp8_block``) where
    the profile fits it. FP8 MoE checkpoints are block-scaled (128 x 128 weight blocks:
    DeepSeek-V3/R1, Qwen3 FP8, Kimi-K2, GLM-4.5 FP8 model cards), and engines run them with
    block-scale grouped kernels (DeepGEMM, CUTLASS, Triton w8a8 block); per-tensor fp8 MoE
    (``@fp8``) is another, rarer kernel path (on H100 vLLM's is 3.7x TensorRT-LLM's time)."""
    if dtype == "fp8" and "moe_compute@fp8_block" in e:
        return "fp8_block"
    return dtype


def gemm_time(hw: HardwareSpec, m: int, n: int, k: int, dtypes: DTypes) -> OpTime:
    """One [m x k] @ [k x n] GEMM on one device.

    Weights (k*n in ``dtypes.weights``) are read once; activations (m*k in, m*n out, in
    ``dtypes.activations``) per row; m is the token count. FLOPs 2*m*n*k at the peak of the compute
    dtype (the wider of weights and activations). The memory side adds ``gemm_k_s`` per element of
    K: the serial K loop of each thread block, which bandwidth does not hide when few blocks run.
    """
    if m <= 0 or n <= 0 or k <= 0:
        return _ZERO
    c = _GEMM_CONSTS.get((id(hw), id(dtypes)))
    if c is None or c[0] is not hw or c[1] is not dtypes:
        c = _gemm_consts(hw, dtypes)
    _, _, e, flop_rate, w_bytes, a_bytes, byte_rate, k_s, overlap, overlap_s, launch = c
    compute_s = 2.0 * m * n * k / flop_rate * _gemm_quantisation(e, m, n)
    memory_s = (k * n * w_bytes + m * (k + n) * a_bytes) / byte_rate + k * k_s
    t = _gemm_timed(compute_s, memory_s, overlap, overlap_s, launch)
    quant = _QUANT.get((id(hw), id(dtypes)))
    if quant is None or quant[0] is not hw:
        quant = _quant_consts(hw, dtypes)
    if quant[1] > 0.0:  # dynamic quantisation of the activation: read 16-bit, write a_bytes
        t = OpTime(t.seconds + m * k * (2.0 + a_bytes) / quant[1] + quant[2], t.bound)
    return t


# Per (device, dtypes): (hw, bytes/s, fixed s) of the activation-quantisation kernel a low-precision
# GEMM runs first (``gemm_quant_memory``/``gemm_quant_launch_s``, fitted per format; 0 = none).
_QUANT: dict[tuple[int, int], tuple] = {}


def _quant_consts(hw: HardwareSpec, dtypes: DTypes) -> tuple:
    e, dt = params(hw), dtypes.compute
    frac = by_dtype(e, "gemm_quant_memory", dt) if DTYPE_BYTES[dtypes.activations] < 2 else 0.0
    consts = (hw, hw.memory_bw * frac, by_dtype(e, "gemm_quant_launch_s", dt) if frac else 0.0)
    if len(_QUANT) >= 256:
        _QUANT.clear()
    _QUANT[(id(hw), id(dtypes))] = consts
    return consts


def _gemm_timed(
    compute_s: float, memory_s: float, overlap: float, overlap_s: float, launch: float
) -> OpTime:
    """Longer GEMMs overlap loads and math better (more K steps and tiles per unit to pipeline
    over the prologue and epilogue): the smooth-max exponent grows with the kernel's duration."""
    if compute_s >= memory_s:
        hi, lo, bound = compute_s, memory_s, "compute"
    else:
        hi, lo, bound = memory_s, compute_s, "memory"
    if overlap_s <= 0.0:  # perfect overlap: the plain roofline max
        return OpTime(hi + launch, bound)
    p = overlap + hi / overlap_s
    return OpTime(hi * (1.0 + (lo / hi) ** p) ** (1.0 / p) + launch, bound)


def grouped_gemm_time(
    hw: HardwareSpec, tokens: int, experts: int, n: int, k: int, dtypes: DTypes
) -> OpTime:
    """``experts`` distinct [k x n] matrices touched by ``tokens`` routed rows in total (MoE).

    Weights of every touched expert are read once; the rows are spread evenly over the experts
    (one grouped kernel, so one launch).
    """
    if tokens <= 0 or experts <= 0 or n <= 0 or k <= 0:
        return _ZERO
    c = _GROUPED_CONSTS.get((id(hw), id(dtypes)))
    if c is None or c[0] is not hw or c[1] is not dtypes:
        c = _gemm_consts(hw, dtypes, grouped=True)
    _, _, e, flop_rate, w_bytes, a_bytes, byte_rate, k_s, overlap, overlap_s, launch = c
    experts = min(experts, tokens)  # a row goes to one matrix: no more matrices than rows
    rows = tokens / experts
    quant = _gemm_quantisation(e, rows, n, groups=experts)
    # grouped-GEMM efficiency by rows per expert: few rows per expert leave each expert's tile
    # loop short (prologue, scheduling of the group, ragged last tile); the compute time carries
    # (1 + moe_rows_half / rows), i.e. half the large-M efficiency at moe_rows_half rows, plus
    # moe_expert_s per active expert (0 and 0 by default: the plain tile model)
    half = by_dtype(e, "moe_rows_half", moe_format(e, dtypes.compute))
    compute_s = 2.0 * tokens * n * k / flop_rate * quant * (1.0 + half / rows if half else 1.0)
    memory_s = (experts * k * n * w_bytes + tokens * (k + n) * a_bytes) / byte_rate + k * k_s
    per_expert = e["moe_expert_s"] * experts
    return _gemm_timed(compute_s, memory_s, overlap, overlap_s, launch + per_expert)


# Split-KV decode (FlashAttention-2's flash_fwd_splitkv kernels, "FlashDecoding"): one block per
# (sequence, KV head, split of the keys), keys in tiles of 256 / 128 / 64 for head sizes <= 64 /
# <= 128 / larger, at most 128 splits (flash-attention csrc/flash_attn/flash_api.cpp,
# set_params_splitkv and num_splits_heuristic).
_SPLITS: dict[tuple[int, int, int], int] = {}


def _num_splits(blocks: int, units: int, key_tiles: int) -> int:
    """FlashAttention-2's split count: none when the blocks nearly fill the units; else the fewest
    splits whose wave efficiency is within 85% of the best (memoised: few distinct inputs)."""
    if blocks >= 0.8 * units:
        return 1
    key = (blocks, units, key_tiles)
    hit = _SPLITS.get(key)
    if hit is not None:
        return hit
    most = min(128, units, key_tiles)
    effs = [0.0] * (most + 1)
    for s in range(1, most + 1):
        # a split count that gives the same keys per split as one fewer is never chosen
        if s == 1 or -(-key_tiles // s) != -(-key_tiles // (s - 1)):
            waves = blocks * s / units
            effs[s] = waves / math.ceil(waves)
    best = max(effs)
    chosen = next(s for s in range(1, most + 1) if effs[s] >= 0.85 * best)
    if len(_SPLITS) >= 4096:
        _SPLITS.clear()
    _SPLITS[key] = chosen
    return chosen


# (units, blocks, key tiles, tile) -> (waves * units / blocks, keys one block streams, splits)
_DECODE: dict[tuple[int, int, int, int], tuple[float, int, int]] = {}


def _decode_blocks(units: int, blocks: int, ctx: float, head_dim: int) -> tuple[float, int]:
    """(critical path over the ideal, splits) of a split-KV decode kernel with ``blocks``
    (sequence, KV head) pairs of ``ctx`` keys each, fewer than fill the units: the keys are split,
    blocks run in waves, each streams its share of the keys in whole key tiles."""
    tile = 256 if head_dim <= 64 else (128 if head_dim <= 128 else 64)
    key_tiles = max(1, math.ceil(ctx / tile))
    key = (units, blocks, key_tiles, tile)
    hit = _DECODE.get(key)
    if hit is None:
        splits = _num_splits(blocks, units, key_tiles)
        waves = math.ceil(blocks * splits / units)
        hit = (waves * units / blocks, -(-key_tiles // splits) * tile, splits)
        if len(_DECODE) >= 1 << 16:
            _DECODE.clear()
        _DECODE[key] = hit
    spread, per_block, splits = hit
    return max(1.0, spread * min(ctx, per_block) / ctx), splits


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
    tokens: float = 0,
    pairs: float = 0.0,
    causal_pairs: float | None = None,
    dtype: str = "bf16",
) -> OpTime:
    """One attention kernel (one layer, one device; heads already divided by TP).

    ``pairs``: the (query, key) pairs the FLOPs cover, per query head (prefill: sum over chunks of
    c*p + c*(c+1)/2; decode: the sum of the context lengths); 0 derives it from the FLOPs as
    flops / (4 * q_heads * head_dim).
    ``phase`` "prefill": ``seqs`` chunks, ``tokens`` new (query) tokens in total,
    ``causal_pairs`` of the pairs among the new tokens (the causal new x new part; None estimates
    it as tokens^2 / (2 * seqs), equal chunks). The causal part runs at ``attn_causal`` (masked
    diagonal tiles and short key loops make it slower; never faster than the rest), the pairs over
    cached context at ``attn_compute``, plus ``attn_row_keys`` key positions' worth of work per
    query row. Without ``tokens`` all FLOPs count as context.
    ``phase`` "decode": ``seqs`` sequences, one query token each; bound by streaming the KV cache,
    with split-KV blocks run in waves over the compute units (strength ``attn_wave``) and a
    second, combining kernel when the keys are split (``attn_split_s``).
    ``dtype``: the format the kernel computes in (for the peak FLOP/s).
    """
    if seqs <= 0 or (flops <= 0 and bytes_ <= 0):
        return _ZERO
    c = _ATTN_CONSTS.get((id(hw), dtype))
    if c is None or c[0] is not hw:
        c = _attn_consts(hw, dtype)
    _, e, rate, byte_rate, overlap, seq_s = c
    memory_s = bytes_ / byte_rate
    if pairs <= 0.0 and flops > 0.0:
        pairs = flops / (4.0 * q_heads * head_dim)
    fixed_s = seqs * seq_s
    if phase == "decode":
        compute_s = flops / rate
        strength = e["attn_wave"]
        if strength > 0.0 and e["compute_units"] >= 1.0 and pairs > 0.0:
            units, blocks = e["compute_units"], seqs * max(kv_heads, 1)
            if blocks >= 0.8 * units:  # no split: whole sequences in waves
                factor = math.ceil(blocks / units) * units / blocks
            else:
                factor, splits = _decode_blocks(int(units), blocks, pairs / seqs, head_dim)
                if splits > 1:
                    fixed_s += e["attn_split_s"]
            if factor > 1.0:
                memory_s *= factor**strength
        fixed_s += e["attn_launch_s"]
    elif phase == "prefill":
        causal = rows = 0.0
        if tokens > 0 and pairs > 0.0:
            per_pair = flops / pairs
            if causal_pairs is None:
                causal_pairs = tokens * tokens / (2.0 * seqs)
            causal = per_pair * min(pairs, causal_pairs)
            # Per query row work that does not depend on the keys (load Q, normalise, write O).
            rows = per_pair * tokens * e["attn_row_keys"]
        causal_rate = rate * min(e["attn_causal"] / e["attn_compute"], 1.0)
        compute_s = (flops - causal + rows) / rate + causal / causal_rate
        fixed_s += e["attn_prefill_launch_s"]
    else:
        raise ValueError(f"attention phase must be 'prefill' or 'decode', not {phase!r}")
    return OpTime(*_attn_total(compute_s, memory_s, fixed_s, overlap, 1.0 / overlap))


def _attn_total(
    compute_s: float, memory_s: float, fixed_s: float, overlap: float, inv_p: float
) -> tuple[float, str]:
    """An attention kernel's time: the smooth max (exponent ``overlap``, ``inv_p`` = 1/overlap)
    of its compute and memory times plus its fixed costs, and which of the two bounds it."""
    if compute_s >= memory_s:
        hi, lo, bound = compute_s, memory_s, "compute"
    else:
        hi, lo, bound = memory_s, compute_s, "memory"
    if hi <= 0.0:
        return fixed_s, bound
    return hi * (1.0 + (lo / hi) ** overlap) ** inv_p + fixed_s, bound


def decode_attention_kernel(
    hw: HardwareSpec, *, q_heads: int, kv_heads: int, head_dim: int, dtype: str = "bf16"
):
    """``attention_time(hw, flops, bytes_, "decode", seqs=..., pairs=..., ...)`` for one fixed
    head layout, as a function ``(flops, bytes_, seqs, pairs) -> (seconds, bound)`` with its
    constants bound once: the step's hot path. Same arithmetic, same results to the bit (tested)."""
    _, e, rate, byte_rate, overlap, seq_s = _attn_consts(hw, dtype)
    strength, units = e["attn_wave"], e["compute_units"]
    split_s, launch_s = e["attn_split_s"], e["attn_launch_s"]
    waved = strength > 0.0 and units >= 1.0
    kvh, int_units, inv_p = max(kv_heads, 1), int(units), 1.0 / overlap
    pair_div = 4.0 * q_heads * head_dim

    def kernel(flops: float, bytes_: float, seqs: int, pairs: float) -> tuple[float, str]:
        if seqs <= 0 or (flops <= 0 and bytes_ <= 0):
            return 0.0, "overhead"
        memory_s = bytes_ / byte_rate
        if pairs <= 0.0 and flops > 0.0:
            pairs = flops / pair_div
        fixed_s = seqs * seq_s
        compute_s = flops / rate
        if waved and pairs > 0.0:
            blocks = seqs * kvh
            if blocks >= 0.8 * units:
                factor = math.ceil(blocks / units) * units / blocks
            else:
                factor, splits = _decode_blocks(int_units, blocks, pairs / seqs, head_dim)
                if splits > 1:
                    fixed_s += split_s
            if factor > 1.0:
                memory_s *= factor**strength
        fixed_s += launch_s
        return _attn_total(compute_s, memory_s, fixed_s, overlap, inv_p)

    return kernel


def prefill_attention_kernel(hw: HardwareSpec, *, dtype: str = "bf16"):
    """``attention_time(hw, flops, bytes_, "prefill", seqs=..., tokens=..., pairs=...,
    causal_pairs=..., ...)`` as a function ``(flops, bytes_, seqs, tokens, pairs, causal_pairs)
    -> (seconds, bound)`` with its constants bound once (pairs > 0 given, causal_pairs not None).
    Same arithmetic, same results to the bit (tested)."""
    _, e, rate, byte_rate, overlap, seq_s = _attn_consts(hw, dtype)
    row_keys, launch_s, inv_p = e["attn_row_keys"], e["attn_prefill_launch_s"], 1.0 / overlap
    causal_rate = rate * min(e["attn_causal"] / e["attn_compute"], 1.0)

    def kernel(
        flops: float, bytes_: float, seqs: int, tokens: float, pairs: float, causal_pairs: float
    ) -> tuple[float, str]:
        if seqs <= 0 or (flops <= 0 and bytes_ <= 0):
            return 0.0, "overhead"
        memory_s = bytes_ / byte_rate
        fixed_s = seqs * seq_s
        causal = rows = 0.0
        if tokens > 0 and pairs > 0.0:
            per_pair = flops / pairs
            causal = per_pair * min(pairs, causal_pairs)
            rows = per_pair * tokens * row_keys
        compute_s = (flops - causal + rows) / rate + causal / causal_rate
        fixed_s += launch_s
        return _attn_total(compute_s, memory_s, fixed_s, overlap, inv_p)

    return kernel


_ATTN_KEYS = tuple(k for k in EFFICIENCY_DEFAULTS if k.startswith("attn_"))
# Per (device, compute dtype): (hw, efficiencies, FLOP/s over context, KV bytes/s, p, per seq).
_ATTN_CONSTS: dict[tuple[int, str], tuple] = {}


def _attn_consts(hw: HardwareSpec, dtype: str) -> tuple:
    e = params(hw)
    if any("@" in k for k in e):  # per-format fits: a view where attn_x means attn_x@dtype
        e = {**e, **{k: by_dtype(e, k, dtype) for k in _ATTN_KEYS}}
    consts = (
        hw, e, _peak(hw, e, dtype) * e["attn_compute"], hw.memory_bw * e["attn_memory"],
        e["attn_overlap"], e["attn_seq_s"],
    )  # fmt: skip
    if len(_ATTN_CONSTS) >= 256:
        _ATTN_CONSTS.clear()
    _ATTN_CONSTS[(id(hw), dtype)] = consts
    return consts


def moe_other_rows_time(
    hw: HardwareSpec, rows: float, row_bytes: float, dtype: str = "bf16"
) -> float:
    """Passes (``moe_token_passes``; 0 = none) an engine's MoE kernels still make over ``rows``
    routed rows of *other* EP ranks, ``row_bytes`` each (the 16-bit hidden state): vLLM's and
    SGLang's Triton fused MoE size the combine buffer by every token x top-k and sum all of it,
    whatever the EP degree, where TensorRT-LLM finalizes its own rows only (aiconfigurator
    moe.csv.gz, H100 DeepSeek-V3 fp8-block at 16k tokens, EP 128: vLLM 0.73 ms, SGLang 2.4 ms,
    TensorRT-LLM 0.31 ms). Element-wise bandwidth, no launch (part of the combine kernel)."""
    e = params(hw)
    passes = by_dtype(e, "moe_token_passes", moe_format(e, dtype))
    if passes <= 0.0 or rows <= 0.0:
        return 0.0
    return passes * rows * row_bytes / (hw.memory_bw * e["elementwise_memory"])


def elementwise_time(hw: HardwareSpec, bytes_: float) -> OpTime:
    """Norms, activations, residual adds, rotary, embedding gathers: bytes read and written once."""
    if bytes_ <= 0:
        return _ZERO
    e = params(hw)
    seconds = bytes_ / (hw.memory_bw * e["elementwise_memory"]) + e["kernel_launch_s"]
    return OpTime(seconds, "memory")
