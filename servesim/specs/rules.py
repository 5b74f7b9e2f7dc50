"""Rules about a config that involve more than one key: the one place each is written.

``load_config`` runs them while parsing (so a bad config fails at load, not inside ``simulate``),
and the cost model's entry points (``roofline``, ``model_info``) call the same functions for the
parallelism they are given directly.
"""

from __future__ import annotations

from typing import Any

from servesim.specs.common import SpecError


def validate_parallelism(
    model: Any, parallel: Any, where: str = "", field: str = "parallelism", redundant: int = 0
) -> None:
    """vLLM's rules: tp divides the attention heads; KV heads split evenly or are replicated (tp a
    multiple of kv_heads; MLA caches one latent, so any tp); ep divides the experts (with
    ``redundant`` EPLB replicas: the experts + replicas, as SGLang's
    --ep-num-redundant-experts allows DeepSeek-V3's 256 + 32 over EP72) and the tp x dp_attn
    devices of a stage; pp <= layers."""
    tp, pp, ep, dp = parallel.tp, parallel.pp, parallel.ep, parallel.dp_attn
    for key, v in (("tp", tp), ("pp", pp), ("ep", ep), ("dp_attn", dp)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise SpecError(where, f"{field}.{key}", v, "must be a whole number >= 1")
    name = model.name
    if model.num_heads % tp:
        raise SpecError(
            where, f"{field}.tp", tp, f"must divide the {model.num_heads} attention heads of {name}"
        )
    kvh = model.num_kv_heads
    if model.attention != "mla" and kvh and (kvh % tp if tp <= kvh else tp % kvh):
        raise SpecError(
            where,
            f"{field}.tp",
            tp,
            f"must divide the {kvh} KV heads of {name} or be a multiple of them",
        )
    if pp > model.num_layers:
        raise SpecError(
            where, f"{field}.pp", pp, f"must be <= the {model.num_layers} layers of {name}"
        )
    if ep == 1:
        return
    if not model.num_experts:
        raise SpecError(
            where, f"{field}.ep", ep, f"must be 1: {name} has no experts (not a MoE model)"
        )
    if (model.num_experts + redundant) % ep:
        extra = f" + {redundant} redundant" if redundant else ""
        raise SpecError(
            where,
            f"{field}.ep",
            ep,
            f"must divide the {model.num_experts}{extra} experts of {name}",
        )
    if (tp * dp) % ep:
        raise SpecError(
            where,
            f"{field}.ep",
            ep,
            f"must divide tp x dp_attn = {tp * dp} (the devices of one stage)",
        )


def validate_af_pools(model: Any, pools: Any, where: str = "") -> None:
    """Attention/FFN disaggregation splits every layer between two pools, so neither takes
    pipeline stages, and the model needs an MLP or experts to put on the FFN pool."""
    roles = {p.role for p in pools}
    if not roles & {"attention", "ffn"}:
        return
    for i, p in enumerate(pools):
        if p.role in ("attention", "ffn") and p.parallelism.pp != 1:
            raise SpecError(
                where,
                f"deployment.pools.{i}.parallelism.pp",
                p.parallelism.pp,
                f"must be 1 in an {p.role} pool: attention/FFN disaggregation splits each layer, "
                "not the layers",
            )
    if "ffn" in roles and not (model.intermediate_size or model.num_experts):
        raise SpecError(where, "deployment.pools", "ffn",
                        f"{model.name} has no MLP or experts to put on an FFN pool")  # fmt: skip


def validate_queue_slo(cfg: Any) -> None:
    """``scheduler.queue: slo`` orders by TTFT deadline, so the config must name a TTFT target
    (``slo.ttft_ms``; a per-request ``ttft_slo_ms`` from the workload overrides it)."""
    if cfg.slo.ttft_ms:
        return
    for i, p in enumerate(cfg.deployment.pools):
        if p.scheduler.queue == "slo":
            raise SpecError(
                cfg.source,
                f"deployment.pools.{i}.scheduler.queue",
                "slo",
                "orders requests by TTFT deadline; set slo.ttft_ms (e.g. {p90: 500})",
            )
