"""The scheduler limits ``trtllm-bench throughput`` runs with when its command passes none.

TensorRT-LLM's benchmark tool chooses ``max_batch_size`` and ``max_num_tokens`` itself unless
``--max_batch_size``/``--max_num_tokens`` are given (tensorrt_llm/bench/benchmark/utils/general.py
``get_settings`` -> bench/build/build.py ``get_benchmark_engine_settings`` -> bench/build/tuning.py
``calc_engine_setting`` and ``finetune_setting``). Published tables made with it (the TensorRT-LLM
perf overviews) ran those limits; a simulation of such a run sets ``max_num_seqs`` /
``max_num_batched_tokens`` to ``trtllm_bench_limits(...)``.
"""

from __future__ import annotations

import math

from servesim.cost.memory import weight_bytes
from servesim.specs.dtypes import DTYPE_BYTES, DTypes
from servesim.specs.hardware import HardwareSpec
from servesim.specs.model import ModelSpec

# trtllm-bench throughput --kv_cache_free_gpu_mem_fraction default (bench/benchmark/throughput.py)
KV_FRACTION = 0.90
# BuildConfig's max_batch_size / max_num_tokens: what a quantisation outside TUNED_QUANTS gets
BUILD_DEFAULTS = (2048, 8192)


def finetune(kv_requests: float, isl: int, osl: int, pp: int = 1) -> tuple[int, int]:
    """trtllm-bench's ``finetune_setting``: (max_batch_size, max_num_tokens) from the requests its
    KV estimate holds, rounded up to its buckets (batch: 32s below 256, 128s below 1,024, then
    256s, at least 64, at most 4,096; tokens: batch x (1 + isl / osl), 256s below 4,096, 512s
    below 8,192, then 1,024s, at least 2,048, at most 32,768)."""
    raw_bs = min(kv_requests, 4096) / pp
    raw_tok = min(raw_bs * (1 + isl / osl), 32768)
    if raw_bs < 256:
        bs = max(64, 32 * math.ceil(raw_bs / 32))
    elif raw_bs < 1024:
        bs = 128 * math.ceil(raw_bs / 128)
    else:
        bs = 256 * math.ceil(raw_bs / 256)
    if raw_tok < 4096:
        tok = max(2048, 256 * math.ceil(raw_tok / 256))
    elif raw_tok < 8192:
        tok = 512 * math.ceil(raw_tok / 512)
    else:
        tok = 1024 * math.ceil(raw_tok / 1024)
    return bs, tok


def trtllm_bench_limits(
    model: ModelSpec,
    hardware: HardwareSpec,
    dtypes: DTypes,
    isl: int,
    osl: int,
    tp: int = 1,
    pp: int = 1,
    tuned: bool = True,
) -> tuple[int, int]:
    """(max_batch_size, max_num_tokens) of a ``trtllm-bench throughput`` run of fixed ``isl`` /
    ``osl`` on ``tp`` x ``pp`` devices without explicit limits, chunked prefill off.

    ``tuned``: the checkpoint's quantisation is in trtllm-bench's TUNED_QUANTS (FP8, FP8 block,
    NVFP4, unquantised); others (e.g. MXFP4) get BuildConfig's 2,048 / 8,192. The heuristic
    holds (device memory x tp x pp - checkpoint) x 0.90 of KV at 2 x layers x max(tp, KV heads)
    x head dim x KV bytes per token (MLA: layers x latent), isl + osl tokens per request; with
    chunking off,
    max_num_tokens is raised to isl + max_batch_size (``get_settings``)."""
    bs, tok = BUILD_DEFAULTS
    if tuned:
        gib = 2.0**30
        if model.attention == "mla":  # one latent per token (kv_lora_rank + rope dims)
            elems = model.num_layers * (model.kv_lora_rank + model.qk_rope_head_dim)
        else:
            elems = 2 * model.num_layers * max(tp, model.num_kv_heads) * model.head_dim
        per_token = elems * DTYPE_BYTES[dtypes.kv_cache]
        free = hardware.memory_bytes * tp * pp - weight_bytes(model, dtypes)
        requests = free / gib * KV_FRACTION / (per_token / gib * (isl + max(osl, 1)))
        bs, tok = finetune(requests, isl, max(osl, 1), pp)
    return bs, max(tok, isl + bs)
