"""Launch command lines for a planned deployment: vLLM, SGLang and TensorRT-LLM.

The flags are the engines' own (vLLM `vllm serve`, SGLang `python -m sglang.launch_server`,
TensorRT-LLM `trtllm-serve`): parallelism (tp/pp/ep), the batching caps the plan simulated
(max_num_seqs, max_num_batched_tokens), the KV-cache dtype, and for prefill/decode pools the
disaggregation roles. Replicas are separate servers behind a router (one command per pool, with
the count); the commands are a starting point to check against the engine's docs for the version
you deploy, not a tested recipe.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

ENGINES = ("vllm", "sglang", "trtllm")
_VLLM_DTYPE = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def _hf_id(model: str) -> str:
    """The Hugging Face repository of a catalog model (its template's `source`), else the id."""
    try:
        from servesim.specs.model import load_model

        src = load_model(model).source or ""
    except Exception:  # a model given as a local HF config: keep what the user gave
        return model
    marker = "huggingface.co/"
    return src.split(marker, 1)[1].strip("/") if marker in src else model


def _dtypes(cfg: Mapping[str, Any]) -> tuple[str, str]:
    """(weights dtype, kv dtype) from the plan's `dtype` (e.g. "bf16" or "fp8,kv=fp8")."""
    text = str(cfg.get("dtype") or "bf16")
    weights, kv = text.split(",")[0].strip(), None
    for part in text.split(",")[1:]:
        k, _, v = part.partition("=")
        if k.strip() in ("kv", "kv_cache"):
            kv = v.strip()
    return weights, kv or weights


def commands(cfg: Mapping[str, Any]) -> dict[str, list[str]]:
    """engine -> command lines (one per pool; a comment line gives the replica count)."""
    model = _hf_id(str(cfg["model"]))
    weights, kv = _dtypes(cfg)
    pools = cfg["deployment"]["pools"]
    disagg = any(p["role"] in ("prefill", "decode") for p in pools)
    out: dict[str, list[str]] = {e: [] for e in ENGINES}
    for pool in pools:
        par, sch = pool["parallelism"], pool.get("scheduler", {})
        tp, pp, ep = int(par.get("tp", 1)), int(par.get("pp", 1)), int(par.get("ep", 1))
        seqs, tokens = sch.get("max_num_seqs", 256), sch.get("max_num_batched_tokens", 8192)
        role, n = pool["role"], int(pool["instances"])
        note = f"# {role}: {n} replica(s) of {tp * pp} x {pool['hardware']}"
        v = ["vllm", "serve", model, "--tensor-parallel-size", tp, "--pipeline-parallel-size", pp,
             "--max-num-seqs", seqs, "--max-num-batched-tokens", tokens,
             "--dtype", _VLLM_DTYPE.get(weights, "auto"),
             "--kv-cache-dtype", "fp8" if kv.startswith("fp8") else "auto"]  # fmt: skip
        if weights.startswith("fp8"):
            v += ["--quantization", "fp8"]
        if ep > 1:
            v += ["--enable-expert-parallel"]
        if disagg:
            v += ["--kv-transfer-config",
                  '{"kv_connector":"NixlConnector","kv_role":"kv_both"}']  # fmt: skip
        s = ["python", "-m", "sglang.launch_server", "--model-path", model, "--tp-size", tp,
             "--pp-size", pp, "--max-running-requests", seqs, "--chunked-prefill-size", tokens,
             "--kv-cache-dtype", "fp8_e4m3" if kv.startswith("fp8") else "auto"]  # fmt: skip
        if ep > 1:
            s += ["--ep-size", ep]
        if disagg:
            s += ["--disaggregation-mode", role]
        t = ["trtllm-serve", model, "--backend", "pytorch", "--tp_size", tp, "--pp_size", pp,
             "--ep_size", ep, "--max_batch_size", seqs, "--max_num_tokens", tokens,
             "--kv_cache_free_gpu_memory_fraction", "0.9"]  # fmt: skip
        for engine, cmd in (("vllm", v), ("sglang", s), ("trtllm", t)):
            out[engine] += [note, shlex.join(str(c) for c in cmd)]
    if disagg:
        out["sglang"].append("python -m sglang_router.launch_router --pd-disaggregation "
                             "--prefill http://PREFILL_HOST:30000 --decode http://DECODE_HOST:30000")  # fmt: skip
        out["trtllm"].append("# disaggregated: list the prefill (context) and decode (generation) "
                             "servers above in a config and run `trtllm-serve disaggregated -c CONFIG`")  # fmt: skip
    return out


def launch_text(cfg: Mapping[str, Any]) -> str:
    """launch_commands.sh: every engine's commands, commented."""
    lines = ["#!/bin/sh", "# Launch commands for the planned deployment (servesim plan).",
             "# Pick one engine; run each pool's command on its replicas, behind a router."]  # fmt: skip
    for engine, cmds in commands(cfg).items():
        lines += ["", f"# --- {engine} ---"] + cmds
    return "\n".join(lines) + "\n"
