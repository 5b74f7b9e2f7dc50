"""The registry of the cost model's efficiency parameters: every key with its default and meaning
(EFFICIENCY_DEFAULTS), the formats a key may be fitted per (EFFICIENCY_DTYPES), GPU generations,
and each kind of key's documented range. Hardware profiles are parsed against it
(servesim.specs.hardware); the cost model (servesim/cost/roofline.py) owns the meanings."""

from __future__ import annotations

# Every efficiency parameter of the cost model, with the default used when a profile does not set
# it, and what it means. The cost model (servesim/cost/roofline.py) owns the meaning.
EFFICIENCY_DEFAULTS: dict[str, tuple[float, str]] = {
    # GEMMs: time = smooth_max(compute, memory) + launch; compute carries tile/wave quantisation.
    "gemm_compute": (0.75, "fraction of dense peak FLOP/s a large GEMM reaches"),
    "gemm_memory": (0.80, "fraction of memory bandwidth a weight-streaming GEMM reaches"),
    "gemm_overlap": (1.5, "p of the smooth max (c^p + m^p)^(1/p) of compute, memory time"),
    "gemm_overlap_s": (1e-4, "GEMM duration over which that p grows by 1 (overlap improves)"),
    "gemm_launch_s": (5e-6, "fixed cost per GEMM kernel (launch, prologue, tail)"),
    # Tile model strengths: about the A100 fit (H100's: 0.82, 0.15); used once compute_units is set.
    "gemm_wave": (0.35, "exponent (0..1) of waves of whole GEMM tiles; 0 = no tile model"),
    "gemm_fill_wave": (0.18, "exponent (0..1) of idle units of a GEMM grid under one wave"),
    # Fitted 2.6e-10 (A100), 4.1e-10 (H100); 0 by default: unfitted, gemm_memory alone holds better.
    "gemm_k_s": (0.0, "seconds per element of K on the memory side (serial K loop of a block)"),
    "compute_units": (0.0, "SMs / compute units per device; 0 = unknown (no waves)"),
    # Attention kernels (FlashAttention-style).
    # FlashAttention-2 forward reaches 50-73% of A100 peak (Dao 2023, arXiv 2307.08691).
    "attn_compute": (0.60, "fraction of dense peak FLOP/s attention over context reaches"),
    "attn_causal": (0.50, "fraction of peak FLOP/s of the causal new x new part of prefill"),
    "attn_memory": (0.70, "fraction of memory bandwidth streaming the KV cache reaches"),
    "attn_overlap": (2.0, "exponent p of the smooth max of attention compute and memory time"),
    "attn_launch_s": (5e-6, "fixed cost per decode attention kernel"),
    "attn_prefill_launch_s": (5e-6, "fixed cost per prefill attention kernel"),
    "attn_row_keys": (64.0, "per query row prefill work independent of context, in key positions"),
    "attn_seq_s": (2e-7, "cost per sequence in an attention kernel (block tables, split-KV merge)"),
    "attn_wave": (0.5, "exponent (0..1) of decode split-KV block waves; 0 = no block model"),
    "attn_split_s": (5e-6, "fixed cost of the combining kernel when decode splits the keys"),
    # Element-wise kernels (norms, activations, residual adds, rotary, embedding gather).
    "elementwise_memory": (0.60, "fraction of memory bandwidth norms/activations reach"),
    "kernel_launch_s": (4e-6, "fixed cost per element-wise kernel (launch + tail)"),
    # Collectives (NCCL-style ring / tree).
    "comm_scaleup": (0.75, "fraction of scale-up link bandwidth collectives reach"),
    "comm_scaleout": (0.70, "fraction of scale-out NIC bandwidth collectives reach"),
    "comm_launch_s": (1e-5, "fixed cost per collective or send (launch, synchronisation)"),
    # Inside a CUDA graph the host launch is not paid: vidur's H100 NCCL profile (commit 7d47513)
    # measures 7-11 us for a 2-26 KB all-reduce on 2 GPUs in all (wire latency included), while
    # eager 4- and 8-GPU calls of the same sizes take 30-40 us, mostly host-side launch.
    "comm_graph_launch_s": (2e-6, "fixed cost per collective inside an engine step (CUDA graph)"),
    # NCCL in one domain: a ring of 2(n-1) hops (aiconfigurator H100: 6/9.5/15.6 us at 2/4/8 GPUs)
    "comm_hop_s": (0.0, "per-hop latency of an NCCL ring inside a scale-up domain; 0 = datasheet"),
    # Engines' custom all-reduce, min(one-shot, two-shot) (cost.comm); 0 = the engine's constants
    "car_base_s": (0.0, "custom all-reduce: fixed cost per call in a CUDA graph (flag sync)"),
    "car_peer_s": (0.0, "custom all-reduce: cost per peer device (flags, one-shot reads)"),
    "car_scaleup": (0.0, "custom all-reduce: fraction of scale-up bandwidth; 0 = engine's"),
    "car_eager_s": (0.0, "custom all-reduce: host cost of an eager (not graph) call"),
    "p2p_scaleup": (0.75, "fraction of scale-up link bandwidth a point-to-point send reaches"),
    "p2p_scaleout": (0.70, "fraction of scale-out NIC bandwidth a point-to-point send reaches"),
    "p2p_launch_s": (5e-6, "fixed cost per point-to-point send (launch, handshake)"),
    # MoE grouped GEMMs (roofline.grouped_gemm_time); 0 = off until fitted on grouped-GEMM data
    "moe_rows_half": (0.0, "rows per expert at which a grouped GEMM runs at half efficiency"),
    "moe_expert_s": (0.0, "fixed cost per active expert of a grouped GEMM"),
    # vLLM/SGLang fused MoE sum every token x top-k whatever the EP (roofline.moe_other_rows_time)
    "moe_token_passes": (0.0, "16-bit passes over other EP ranks' routed rows; 0 = none"),
    # Low-precision GEMMs quantise their 16-bit activation in a kernel of their own first
    # (dynamic per-tensor/per-token/per-group scales): 0 = not charged (e.g. fused into the norm).
    "gemm_quant_memory": (
        0.0,
        "fraction of bandwidth of the activation-quantisation pass; 0 = none",
    ),
    "gemm_quant_launch_s": (0.0, "fixed cost of the activation-quantisation kernel"),
    # MoE grouped GEMMs (fused MoE kernels: routing, permute, grouped GEMMs, combine); 0 = the
    # dense GEMM's value. Fitted on aiconfigurator's fused-MoE timings (servesim/cost/aic.py).
    "moe_compute": (0.0, "fraction of peak FLOP/s a grouped MoE GEMM reaches; 0 = gemm_compute"),
    "moe_memory": (0.0, "fraction of bandwidth a grouped MoE GEMM reaches; 0 = gemm_memory"),
    "moe_launch_s": (0.0, "fixed cost per grouped GEMM incl. routing/permute; 0 = gemm_launch_s"),
}
# Efficiency keys may be fitted per compute format: `gemm_compute@fp8` is used for fp8 GEMMs and
# `gemm_compute` for the others (servesim.cost.roofline.by_dtype).
EFFICIENCY_DTYPES = ("bf16", "fp16", "fp8", "fp8_block", "fp4", "int8", "int4")
GENERATIONS = ("ampere", "ada", "hopper", "blackwell", "other")


# Documented range of each kind of efficiency parameter (docs/reliability.md): (low, high, low
# excluded). Wider than calibrate's fit bounds, so any fitted profile passes; outside them the
# cost model divides by zero or prices 20 requests in kilowatt-hours.
_EFF_RANGES: tuple[tuple[str, tuple[float, float, bool]], ...] = (
    ("compute_units", (0.0, 1e6, False)),  # SMs / CUs; 0 = unknown
    ("_half", (0.0, 1e6, False)),  # rows at which a kernel runs at half efficiency; 0 = off
    # fractions whose 0 means "not modelled" or "as the dense GEMM" (grouped MoE GEMMs, the
    # activation-quantisation pass)
    ("moe_compute", (0.0, 1.0, False)),
    ("moe_memory", (0.0, 1.0, False)),
    ("quant_memory", (0.0, 1.0, False)),
    ("car_scaleup", (0.0, 2.0, False)),  # NVLS (in-switch reduction) beats the link rate
    ("_row_keys", (0.0, 1e6, False)),  # key positions
    ("_passes", (0.0, 100.0, False)),  # passes over a buffer; 0 = none
    ("_k_s", (0.0, 1e-6, False)),  # seconds per element of K
    ("_overlap_s", (0.0, 1.0, True)),  # a duration the overlap p grows over
    ("_s", (0.0, 1.0, False)),  # fixed costs: seconds per kernel or call
    ("_overlap", (1.0, 20.0, False)),  # p of a smooth max: 1 = sum, large = max
    ("_wave", (0.0, 1.0, False)),  # exponents; 0 = no tile/block model
    ("", (0.0, 1.0, True)),  # fractions of a peak
)


def efficiency_range(key: str) -> tuple[float, float, bool]:
    """(low, high, low excluded) allowed for an efficiency parameter."""
    return next(r for suffix, r in _EFF_RANGES if key.endswith(suffix))
