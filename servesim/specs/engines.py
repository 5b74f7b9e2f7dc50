"""What a serving engine runs: its kernels, fusions and launch behaviour, per version.

The scheduler defaults of each engine are ENGINE_PROFILES below; the rest of this module is the
part the cost model reads (``EngineKernels``), chosen per engine, version, GPU generation and KV
format. A pool's ``engine: vllm@0.24`` (or ``scheduler.engine``) selects both.

Kernel speeds are *relative* factors on the hardware profile's fitted attention kernels, whose
fits (hw_profiles/*.yaml, vidur data) are of vLLM's FlashAttention-class kernels: vLLM is 1.0 and
the others are the median ratio of their measured latency to vLLM's on the same shapes in
NVIDIA's aiconfigurator tables (../shared/data/measured/aiconfigurator, commit 095f58a;
experiments/e2e_validation/engine_factors.py recomputes them). Where no engine was measured on
a generation the factor is 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from servesim.specs.common import SpecError
from servesim.specs.dtypes import DTYPE_BYTES

ENGINES = ("vllm", "sglang", "trtllm")  # the keys of ENGINE_PROFILES below

# Engine profiles: scheduler defaults of a serving engine, applied under explicit keys.
# overhead_s None = the hardware profile's per-iteration overhead applies (no engine-specific
# per-iteration overhead has been measured for servesim; see docs/engine.md).
ENGINE_PROFILES: dict[str, dict[str, Any]] = {
    "vllm": {
        "description": "vLLM V1: chunked prefill always on, running requests first, then waiting, "
        "under one token budget; preemption by recompute",
        # vllm/engine/arg_utils.py (EngineArgs.get_batch_defaults, OpenAI server): on GPUs with
        # >= 70 GiB that are not A100s, max_num_batched_tokens 8192 and max_num_seqs 1024;
        # otherwise 2048 and 256 ("small_gpu" below). block_size 16, gpu_memory_utilization 0.9
        # (CacheConfig); V1 always chunks prefills and enables prefix caching by default.
        "small_gpu": {"max_num_seqs": 256, "max_num_batched_tokens": 2048},
        "scheduler": {
            "policy": "sarathi",
            "max_num_seqs": 1024,
            "max_num_batched_tokens": 8192,
            "block_size": 16,
            "gpu_memory_utilization": 0.9,
            "enable_prefix_caching": True,
        },
        "overhead_s": None,
    },
    "sglang": {
        "description": "SGLang: prefill batches first, chunked (chunked_prefill_size), decodes "
        "paused meanwhile (no mixed chunks); radix prefix cache; running requests bounded by "
        "the KV pool, not by a fixed count",
        # python/sglang/srt/server_args.py: enable_mixed_chunk False (store_true flag), so the
        # scheduler runs a prefill batch whenever one can be formed, else a decode batch
        # (policy prefill_first); chunked_prefill_size 2048 under 35 GiB of GPU
        # memory, 8192 under 160 GiB (A100, H100, H200), 16384 above (B200, MI300X);
        # mem_fraction_static 0.88 at TP1; page_size 1 (we keep 16-token blocks: the KV capacity
        # is the same to within a block per request); max_running_requests derived from the KV
        # pool -> None (unbounded here).
        "small_gpu": {"max_num_batched_tokens": 2048},
        "large_gpu": {"max_num_batched_tokens": 16384},
        "scheduler": {
            "policy": "prefill_first",
            "max_num_seqs": None,
            "max_num_batched_tokens": 8192,
            "block_size": 16,
            "gpu_memory_utilization": 0.88,
            "enable_prefix_caching": True,
        },
        "overhead_s": None,
    },
    "trtllm": {
        "description": "TensorRT-LLM in-flight batching: whole context phases mixed with "
        "generation (chunked context off by default), GUARANTEED_NO_EVICT capacity policy "
        "(KV for the whole output reserved at admission, so no preemption)",
        # tensorrt_llm/llmapi/llm_args.py: max_batch_size 2048, max_num_tokens 8192,
        # enable_chunked_prefill False, CapacitySchedulerPolicy.GUARANTEED_NO_EVICT;
        # tokens_per_block 32 (KvCacheConfig); free_gpu_memory_fraction 0.9.
        "scheduler": {
            "policy": "orca",
            "max_num_seqs": 2048,
            "max_num_batched_tokens": 8192,
            "block_size": 32,
            "gpu_memory_utilization": 0.9,
            "enable_prefix_caching": False,
            "reserve_output": True,
        },
        "overhead_s": None,
    },
}


class EngineKernels(NamedTuple):
    """The engine-dependent constants of the cost model (hashable: part of CostContext)."""

    name: str  # engine@version
    attention: str  # attention backend that runs here (reported, and it picks the factors)
    attn_prefill_scale: float  # time of its prefill attention / the profile's fitted kernel
    attn_decode_scale: float  # same for decode attention
    rope_fused: bool  # RoPE applied inside the attention kernel (no separate rotary kernel)
    allreduce: str  # custom | nccl: TP all-reduce inside a scale-up domain
    ar_base_s: float  # custom all-reduce: fixed cost (launch inside a graph + flag sync)
    ar_peer_s: float  # per peer
    ar_bw_eff: float  # fraction of scale-up bandwidth its data movement reaches
    ar_max_bytes: float  # larger messages fall back to NCCL
    ar_max_devices: int  # larger groups fall back to NCCL
    moe_kernel: str  # grouped-GEMM MoE kernel that runs here (reported, picks moe_scale)
    moe_scale: float  # its time / the cost model's grouped-GEMM time (1: not measured)
    mixed_graph: str  # CUDA graphs for steps with prefill: piecewise (attention eager) | none
    host_launch_s: float  # host time per eagerly launched kernel (hidden behind GPU work)
    two_batch_overlap: bool = False  # micro-batches overlap communication with compute
    moe_comm: str = "alltoall"  # EP token exchange with attention DP: alltoall | allgather
    quant_fused: bool = False  # activation quantisation inside the kernel before each GEMM
    host_overlap: bool = False  # next step scheduled on the host while the GPU runs this one
    ar_oneshot_max_bytes: float = 0.0  # custom all-reduce: one-shot up to this size; 0 = faster
    graph_sizes: tuple[int, ...] = ()  # CUDA graphs a decode-only step pads up to (+pad); () none


# Custom all-reduce fits: latency = min(one-shot, two-shot) with one-shot
# base + (n-1) peer + (n-1) S / (bw eff) and two-shot 2 base + 2 (n-1) peer + 2 (n-1)/n S / (bw eff),
# least squares on log latency over every H100 CUDA-graph row of custom_allreduce.csv.gz
# (2/4/8 GPUs, 256 B-64 MiB). H100 MAPE: vLLM 6.4%, SGLang 10.7%, TensorRT-LLM 11.5%; held out
# on B300/GB300 the same constants are 25-38% low (NVLink 5 doubles the bandwidth, the kernels
# do not double their speed), on A100 14-30% low (docs/cost-model.md).
_AR = {
    "vllm": (4.32e-6, 0.053e-6, 0.631),
    "sglang": (2.12e-6, 0.317e-6, 0.686),
    "trtllm": (2.67e-6, 0.082e-6, 0.604),
}
# TensorRT-LLM's kernel does not take the faster of the two at every size: its AUTO strategy
# stays one-shot up to a message size. Fitted on the same rows (least squares on log latency,
# threshold by grid over powers of two): one-shot up to 2 MiB, two-shot above; TensorRT-LLM MAPE
# 10.5% -> 7.6% (8 GPUs 15.7% -> 11.7%; at 1 MiB on 8 GPUs 26 us measured, 14.5 us before).
_AR_ONESHOT_MAX = {"trtllm": 2 * 2**20}  # 0 / absent: the faster of one-shot and two-shot
# vLLM custom_all_reduce.py: max_size 8 MiB, world sizes 2, 4, 6, 8; SGLang uses the same kernel
# family; TensorRT-LLM's AllReduce AUTO switches to NCCL for large messages (estimate: same cap).
_AR_MAX_BYTES, _AR_MAX_DEVICES = 8 * 2**20, 8

# Attention factors, median latency ratio to vLLM on the same shapes (rows over 20 us, so the
# launch floor does not decide), aiconfigurator h100_sxm (vLLM 0.24 FA3, SGLang 0.5.14 FA3,
# TensorRT-LLM 1.3.0rc20) and b300_sxm (vLLM FlashInfer/TRT-LLM-gen decode, SGLang trtllm_mha).
# Keyed (generation, kv format) -> engine -> (backend, prefill factor, decode factor).
_ATTN: dict[tuple[str, str], dict[str, tuple[str, float, float]]] = {
    ("hopper", "16bit"): {
        "vllm": ("flash-attn-3", 1.0, 1.0),
        "sglang": ("flash-attn-3", 0.96, 0.97),
        "trtllm": ("trtllm-fmha/xqa", 1.28, 1.10),
    },
    ("hopper", "fp8"): {
        "vllm": ("flash-attn-3", 1.0, 1.0),
        "sglang": ("flash-attn-3", 0.70, 0.97),
        "trtllm": ("trtllm-fmha/xqa", 1.03, 0.665),  # XQA reads the FP8 KV cache natively
    },
    ("blackwell", "16bit"): {
        "vllm": ("flashinfer", 1.0, 1.0),
        "sglang": ("trtllm-mha", 1.0, 0.95),
        "trtllm": ("trtllm-gen", 1.24, 1.04),
    },
    ("blackwell", "fp8"): {
        "vllm": ("flashinfer", 1.0, 1.0),
        "sglang": ("trtllm-mha", 0.90, 0.92),
        "trtllm": ("trtllm-gen", 1.07, 1.02),
    },
}
# MoE kernels: median of measured fused-MoE latency over servesim's routed-expert operators
# (permute, both grouped GEMMs, activation, un-permute) at >= 8 routed rows per expert, on the
# shipped profile with the engine's own overlay (h100-sxm for Hopper, b300 for Blackwell),
# aiconfigurator moe.csv.gz, balanced routing, TP1/EP1, every model shape in the table
# (experiments/e2e_validation/engine_factors.py; interquartile ranges there). The profiles fit no
# MoE keys (grouped GEMMs run at the dense GEMM's fitted efficiency), so these factors carry
# what each engine's MoE kernel adds to that. FP8 means the checkpoints each engine's FP8 MoE
# models ship as: ModelOpt per-tensor for TensorRT-LLM, block-scaled (DeepSeek/Qwen3 FP8) for
# vLLM and SGLang. 4-bit: MXFP4 weights with 16-bit activations on Hopper (GPT-OSS: Triton
# kernels in vLLM, SGLang and TensorRT-LLM's TRITON backend, which its GPT-OSS recipe selects on
# Hopper), NVFP4 on Blackwell. Keyed (generation, weight format) -> engine -> (kernel, factor).
_MOE: dict[tuple[str, str], dict[str, tuple[str, float]]] = {
    ("hopper", "16bit"): {
        "vllm": ("triton fused_moe", 0.93),
        "sglang": ("triton fused_moe", 1.33),
        "trtllm": ("cutlass", 0.93),
    },
    ("hopper", "fp8"): {
        "vllm": ("triton fp8-block", 1.08),
        "sglang": ("triton fp8-block", 1.02),
        "trtllm": ("cutlass fp8", 0.98),
    },
    ("hopper", "4bit"): {
        "vllm": ("triton mxfp4 (w4a16)", 1.17),
        "sglang": ("triton mxfp4 (w4a16)", 3.97),
        "trtllm": ("triton mxfp4 (w4a16)", 1.54),
    },
    ("blackwell", "16bit"): {
        "vllm": ("flashinfer cutlass", 1.02),
        "sglang": ("triton fused_moe", 1.28),
        "trtllm": ("cutlass", 0.86),
    },
    ("blackwell", "fp8"): {
        "vllm": ("flashinfer trtllm-gen fp8-block", 1.22),
        "sglang": ("flashinfer trtllm-gen fp8-block", 1.03),
        "trtllm": ("cutlass fp8", 0.81),
    },
    ("blackwell", "4bit"): {
        "vllm": ("flashinfer nvfp4", 0.88),
        "sglang": ("flashinfer trtllm-gen nvfp4", 0.84),
        "trtllm": ("cutlass nvfp4", 0.98),
    },
    # MXFP4 weights x MXFP8 activations: what TensorRT-LLM's GPT-OSS guide lists for Blackwell
    # (CUTLASS and TRTLLM MoE backends; H200: BF16 activations, TRITON), aiconfigurator
    # w4a8_mxfp4_mxfp8 rows
    ("blackwell", "4bit/a8"): {
        "vllm": ("flashinfer trtllm-gen mxfp4 x mxfp8", 1.11),
        "sglang": ("flashinfer trtllm-gen mxfp4 x mxfp8", 1.02),
        "trtllm": ("mxfp4 x mxfp8", 0.82),
    },
}
# Fitted MoE efficiency keys: a profile (or overlay) that has them models the engine's MoE
# kernel itself, and the factor above would count it twice.
_MOE_KEYS = ("moe_compute", "moe_memory", "moe_launch_s")
# The key suffixes (`moe_compute@fp8`) a profile fits per weight class: a class without fitted
# keys (MXFP4 on Hopper, which has no FP4 MoE rows; MXFP4 x MXFP8) keeps the measured factor.
_MOE_FORMATS = {"16bit": {""}, "fp8": {"fp8", "fp8_block"}, "4bit": {"fp4"}, "4bit/a8": set()}
_DEFAULT_MOE = {"vllm": "fused_moe", "sglang": "fused_moe", "trtllm": "cutlass"}
_DEFAULT_BACKEND = {"vllm": "flash-attn", "sglang": "flashinfer", "trtllm": "trtllm-fmha"}

# Versions where an engine's kernels or launch behaviour differ; a version selects the newest
# entry at or below it. vLLM V1 (0.8+) captures piecewise CUDA graphs around attention for every
# step (vllm/compilation, "piecewise cudagraph"); V0 (<= 0.7) ran prefill steps eagerly.
# SGLang and TensorRT-LLM (PyTorch flow) capture decode-only batches only.
# host_overlap: the engine schedules step n+1 on the host while the GPU runs step n, so the
# per-step host time (overhead_s) shows only where it exceeds the GPU time. TensorRT-LLM's
# PyTorch backend (the default from 1.0; tensorrt_llm/llmapi/llm_args.py
# disable_overlap_scheduler=False) and SGLang from 0.4 (its overlap scheduler, on unless
# --disable-overlap-schedule) do; TensorRT-LLM's earlier TensorRT-engine runtime (0.x, as NIM 1.0
# and the 0.5 latency tables ran) and vLLM (async scheduling is opt-in) do not.
VERSIONS: dict[str, dict[str, dict[str, Any]]] = {
    "vllm": {"0.6": {"mixed_graph": "none"}, "0.8": {"mixed_graph": "piecewise"}},
    "sglang": {"0.4": {"mixed_graph": "none", "host_overlap": True}},
    "trtllm": {
        "0.5": {"mixed_graph": "none", "host_overlap": False},
        "1.0": {"mixed_graph": "none", "host_overlap": True},
    },
}
LATEST = {"vllm": "0.24", "sglang": "0.5", "trtllm": "1.3"}
# estimate: one eager PyTorch kernel launch costs ~5 us of host time (the eager all-reduce rows of
# custom_allreduce.csv.gz take 20-30 us for 2-8 us of GPU work, several launches each).
_HOST_LAUNCH_S = 5e-6


# Engines that quantise each low-precision GEMM's input inside the kernel before it, so no separate
# activation-quantisation kernel runs: TensorRT-LLM fuses residual + RMSNorm + FP8/NVFP4
# quantisation into its all-reduce / norm kernel (AllReduceFusionOp.RESIDUAL_RMS_NORM_QUANT_FP8
# and _QUANT_NVFP4, cpp/tensorrt_llm/thop/allreduceOp.cpp, allReduceFusionKernels), the SwiGLU
# output quantisation into the activation kernel and the o_proj input into the attention output
# (FP8 output scale of the fmha/xqa op). vLLM and SGLang quantise in separate kernels unless their
# optional fusion passes are on: not assumed.
QUANT_FUSED = frozenset({"trtllm"})


def engine_overlay(name: str, flags: Any, overlay: Any) -> dict[str, float]:
    """The keys of a profile's ``engines:`` overlay for ``name`` that describe the kernels it runs
    with the options ``flags`` (``overlay``: a mapping or its (key, value) pairs): with DeepEP, SGLang (DeepEPMoE) and vLLM run DeepGEMM's grouped
    GEMMs, not the Triton fused MoE their overlays were fitted on, so the overlay's MoE keys give
    way to the profile's pooled ones."""
    keys = dict(overlay)
    if "deepep" in flags and name in ("sglang", "vllm"):
        return {k: v for k, v in keys.items() if not k.startswith("moe_")}
    return keys


def fused_efficiency(name: str, eff: Mapping[str, float]) -> dict[str, float]:
    """Efficiency overrides for the fusions of engine ``name`` on a device with efficiencies
    ``eff`` (defaults included). The kernel tables time each FP8/FP4 GEMM with its
    activation-quantisation pass, fitted as ``gemm_quant_memory``/``gemm_quant_launch_s``. A
    fusing engine saves what a separate element-wise kernel over those bytes costs (read 16-bit,
    write low precision, at ``elementwise_memory``, plus ``kernel_launch_s``): the rest of the
    fitted pass, time the tables put on the GEMM beyond a plain element-wise pass, stays."""
    if name not in QUANT_FUSED:
        return {}
    elem, launch = eff.get("elementwise_memory", 0.0), eff.get("kernel_launch_s", 0.0)
    out: dict[str, float] = {}
    for key, frac in eff.items():
        base, at, fmt = key.partition("@")
        if base != "gemm_quant_memory" or frac <= 0.0:
            continue
        # cost per byte left once the element-wise pass is gone, in units of 1 / bandwidth
        rest = 1.0 / frac - (1.0 / elem if elem > 0.0 else 0.0)
        out[key] = 1.0 / rest if rest > 0.0 else 0.0
        lkey = "gemm_quant_launch_s" + at + fmt
        out[lkey] = max(eff.get(lkey, eff.get("gemm_quant_launch_s", 0.0)) - launch, 0.0)
    return out


def _vkey(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


# Engine options that change what runs, written after the name: ``sglang+tbo``.
FLAGS = {
    "tbo": "two-batch overlap (SGLang --enable-two-batch-overlap, TensorRT-LLM wide-EP)",
    "deepep": "DeepEP all-to-all for expert parallelism (VLLM_ALL2ALL_BACKEND=deepep_*, "
    "SGLang --moe-a2a-backend deepep, TRTLLM_CAN_USE_DEEP_EP=1)",
    "pad": "CUDA-graph padding: a decode-only step runs the captured graph of the next batch size "
    "up, its dummy rows through every kernel but attention (TensorRT-LLM "
    "cuda_graph_config.enable_padding, which trtllm-bench and the published recipes turn on)",
}

# Decode batch sizes each engine captures CUDA graphs for when padding is on (+pad); a step of
# n sequences runs the graph of the smallest size >= n that is <= the pool's max_num_seqs, or
# eagerly (unpadded) above the largest.
# - TensorRT-LLM: cuda_graph_config.batch_sizes of its perf-overview recipes (docs/source/
#   developer-guide/perf-overview.md, "llm_options.yml", every model); padding is skipped when
#   the padded batch would exceed max_batch_size (pyexecutor CUDAGraphRunner._get_padded_batch).
# - SGLang: server_args._generate_cuda_graph_batch_sizes, [1, 2, 4, 8, 12], 16-256 step 8,
#   272-496 step 16, 512 up step 32, to cuda_graph_max_bs (estimate: 512, its large-GPU value).
# - vLLM: [1, 2, 4] then multiples of 8 to 512 (estimate: the V1 default up to
#   max_cudagraph_capture_size 512).
_GRAPH_SIZES: dict[str, tuple[int, ...]] = {
    "trtllm": (1, 2, 4, 8, 16, 32, 64, 128, 256, 384, 512, 1024, 2048, 4096, 8192),
    "sglang": (1, 2, 4, 8, 12, *range(16, 257, 8), *range(272, 512, 16), 512),
    "vllm": (1, 2, 4, *range(8, 513, 8)),
}


def graph_sizes(name: str, flags: frozenset[str], max_batch: int | None) -> tuple[int, ...]:
    """The CUDA-graph batch sizes a decode-only step of engine ``name`` pads up to: () without
    ``+pad``; sizes above ``max_batch`` (the pool's max_num_seqs; None: no cap) are not run."""
    if "pad" not in flags:
        return ()
    return tuple(s for s in _GRAPH_SIZES[name] if max_batch is None or s <= max_batch)


def split_flags(text: Any, where: str, field: str) -> tuple[str, frozenset[str]]:
    """``sglang@0.5+tbo`` -> (``sglang@0.5``, {``tbo``}); unknown options are errors."""
    base, *flags = str(text).strip().split("+")
    for f in flags:
        if f not in FLAGS:
            raise SpecError(where, field, text, "options after + are: " + ", ".join(FLAGS))
    return base, frozenset(flags)


def split_engine(text: Any, where: str, field: str) -> tuple[str, str]:
    """``vllm``, ``vllm@0.24`` or ``sglang@0.5+tbo`` -> (name, version); unknown names,
    versions or options are errors."""
    s, _ = split_flags(text, where, field)
    name, _, version = s.partition("@")
    if name not in ENGINES:
        raise SpecError(where, field, text, "must be one of " + ", ".join(ENGINES) + " [@version]")
    version = version or LATEST[name]
    try:
        key = _vkey(version)
    except ValueError:
        raise SpecError(where, field, text, "version must be numbers, e.g. vllm@0.24") from None
    oldest = min(VERSIONS[name], key=_vkey)
    if key < _vkey(oldest):
        raise SpecError(where, field, text, f"{name} profiles start at version {oldest}")
    return name, version


def _version_entry(name: str, version: str) -> dict[str, Any]:
    key = _vkey(version)
    best = max((v for v in VERSIONS[name] if _vkey(v) <= key), key=_vkey)
    return VERSIONS[name][best]


def generation(hardware: Any) -> str:
    """GPU generation from the profile name (the factors were measured per generation)."""
    n = hardware.name.lower()
    if any(t in n for t in ("h100", "h200", "h800", "h20", "gh200")):
        return "hopper"
    if any(t in n for t in ("b200", "b300", "gb200", "gb300")):
        return "blackwell"
    return ""


def kernels_for(
    engine: str | None, hardware: Any, dtypes: Any, max_batch: int | None = None
) -> EngineKernels | None:
    """``engine_kernels`` with a run's formats (``dtypes``: KV cache, weights, activations) and
    the pool's max_num_seqs (``max_batch``: caps the CUDA-graph sizes of ``+pad``)."""
    return engine_kernels(
        engine,
        hardware,
        DTYPE_BYTES[dtypes.kv_cache],
        DTYPE_BYTES[dtypes.weights],
        DTYPE_BYTES[dtypes.activations],
        max_batch,
    )


def engine_kernels(
    engine: str | None,
    hardware: Any,
    kv_bytes: float,
    weight_bytes: float = 2.0,
    act_bytes: float | None = None,
    max_batch: int | None = None,
) -> EngineKernels | None:
    """The kernels ``engine`` (name[@version]) runs on ``hardware`` with a KV cache of
    ``kv_bytes``, weights of ``weight_bytes`` and activations of ``act_bytes`` per element (None:
    as the weights' usual pairing); None when no engine is named (the cost model's neutral
    defaults)."""
    if not engine:
        return None
    name, version = split_engine(engine, "", "engine")
    _, flags = split_flags(engine, "", "engine")
    entry = _version_entry(name, version)
    table = _ATTN.get((generation(hardware), "fp8" if kv_bytes <= 1 else "16bit"), {})
    backend, pf, df = table.get(name, (_DEFAULT_BACKEND[name], 1.0, 1.0))
    base, peer, eff = _AR[name]
    wclass = "16bit" if weight_bytes >= 2 else "fp8" if weight_bytes >= 1 else "4bit"
    if wclass == "4bit" and act_bytes == 1:
        wclass = "4bit/a8"  # MXFP4 x MXFP8 (GPT-OSS on Blackwell)
    moe_kernel, moe_scale = _MOE.get((generation(hardware), wclass), {}).get(
        name, (_DEFAULT_MOE[name], 1.0)
    )
    overlay = dict(dict(getattr(hardware, "engines", ()) or ()).get(name, ()))
    if overlay:
        # the profile was calibrated on this engine's own attention kernels (its `engines:`
        # overlay): the relative attention factors above, measured against vLLM-era fits, are
        # already inside it
        pf = df = 1.0
    fitted = {
        k.partition("@")[2]
        for k in (*overlay, *dict(getattr(hardware, "efficiency", ())))
        if k.partition("@")[0] in _MOE_KEYS
    }
    if fitted & _MOE_FORMATS[wclass]:
        moe_scale = 1.0  # the profile fits this engine's fused MoE in this weight format itself
    return EngineKernels(
        name=f"{name}@{version}" + "".join(f"+{f}" for f in sorted(flags)),
        attention=backend,
        attn_prefill_scale=pf,
        attn_decode_scale=df,
        # TensorRT-LLM applies RoPE in the attention op's QKV preprocessing
        # (tensorrt_llm/_torch/attention_backend: rotary fused into the fmha/xqa input kernel);
        # vLLM and SGLang run a separate rotary_embedding kernel.
        rope_fused=name == "trtllm",
        allreduce="custom",
        ar_base_s=base,
        ar_peer_s=peer,
        ar_bw_eff=eff,
        ar_max_bytes=float(_AR_MAX_BYTES),
        ar_max_devices=_AR_MAX_DEVICES,
        moe_kernel=moe_kernel,
        moe_scale=moe_scale,
        mixed_graph=entry["mixed_graph"],
        host_launch_s=_HOST_LAUNCH_S,
        two_batch_overlap="tbo" in flags,
        moe_comm=_moe_comm(name, hardware, flags),
        quant_fused=name in QUANT_FUSED,
        host_overlap=bool(entry.get("host_overlap", False)),
        ar_oneshot_max_bytes=float(_AR_ONESHOT_MAX.get(name, 0)),
        graph_sizes=graph_sizes(name, flags, max_batch),
    )


def _moe_comm(name: str, hardware: Any, flags: frozenset[str]) -> str:
    """How the engine exchanges tokens between an attention-DP group and its experts by default:
    vLLM's VLLM_ALL2ALL_BACKEND defaults to allgather_reducescatter (vllm/envs.py); SGLang
    gathers DP-attention tokens unless --moe-a2a-backend is set; TensorRT-LLM's CUTLASS MoE
    (Hopper) uses all-to-all only with MNNVL (multi-node NVLink, e.g. GB200 NVL72) or DeepEP,
    else AllGather/ReduceScatter, while its TRT-LLM-Gen MoE (Blackwell) favours the NVLink
    one-sided all-to-all (tensorrt_llm/_torch/modules/fused_moe). ``+deepep`` selects DeepEP."""
    if "deepep" in flags:
        return "alltoall"
    if name == "trtllm" and (hardware.scaleup_devices > 8 or generation(hardware) == "blackwell"):
        return "alltoall"
    return "allgather"


def describe(k: EngineKernels | None) -> dict[str, Any]:
    """What ran, for result JSON: engine, attention backend, all-reduce, graphs, fusions."""
    if k is None:
        return {}
    return {
        "engine": k.name,
        "attention_backend": k.attention,
        "moe_kernel": k.moe_kernel,
        "allreduce": k.allreduce,
        "mixed_step_graphs": k.mixed_graph,
        "rope_fused": k.rope_fused,
        "two_batch_overlap": k.two_batch_overlap,
        "moe_comm": k.moe_comm,
        "quant_fused": k.quant_fused,
        "host_overlap": k.host_overlap,
        # only with +pad, so results without it keep their keys
        **({"graph_padding_max": max(k.graph_sizes)} if k.graph_sizes else {}),
    }
