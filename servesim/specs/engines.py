"""Engine profiles: the scheduler defaults of real serving engines (vLLM, SGLang, TensorRT-LLM),
each with its source; ``scheduler.engine`` applies one under the keys a config leaves unset."""

from __future__ import annotations

from typing import Any

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
