"""Summary keys of speculative decoding (``spec.*``, docs/metrics.md) from RawRun.spec."""

from __future__ import annotations

from typing import Any


def spec_summary(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec.*`` keys; empty without speculation.

    acceptance_length: 1 + accepted drafts / drafts, i.e. mean tokens per speculative step of a
    request, the bonus token counted (vLLM's "mean acceptance length"; drafts accepted past a
    request's last token count, as vLLM counts them); acceptance_rate.pos<i>: the fraction of
    speculative sequence-steps whose draft token i was accepted (vLLM's "acceptance at token
    i-1"); draft_ms_per_step / verify_ms_per_step: mean time of the draft passes and of the
    target's verification pass per speculative step; plain_steps: decode steps run without
    speculation (``disable_by_batch_size``).
    """
    if not spec:
        return {}
    steps = int(spec["spec_steps"])
    seq_steps = int(spec["seq_steps"])
    accepted = int(spec["accepted_at"].sum())
    out: dict[str, Any] = {
        "spec.method": spec["method"],
        "spec.num_speculative_tokens": int(spec["k"]),
        "spec.steps": steps,
        "spec.plain_steps": int(spec["plain_steps"]),
        "spec.acceptance_length": 1 + accepted / seq_steps if seq_steps else None,
        "spec.draft_ms_per_step": spec["draft_s"] * 1e3 / steps if steps else None,
        "spec.verify_ms_per_step": spec["verify_s"] * 1e3 / steps if steps else None,
    }
    for i, a in enumerate(spec["accepted_at"].tolist(), start=1):
        out[f"spec.acceptance_rate.pos{i}"] = a / seq_steps if seq_steps else None
    return out


def bench_spec_keys(spec: dict[str, Any]) -> dict[str, Any]:
    """The speculative keys of ``vllm bench serve``'s result JSON (present when the server
    speculates): acceptance rate in percent of draft tokens, acceptance length, drafts, draft and
    accepted tokens, and per-position acceptance rates (fractions)."""
    if not spec:
        return {}
    drafts = int(spec["seq_steps"])
    k = int(spec["k"])
    accepted_at = spec["accepted_at"].tolist()
    accepted = int(sum(accepted_at))
    return {
        "spec_decode_acceptance_rate": 100.0 * accepted / (drafts * k) if drafts else None,
        "spec_decode_acceptance_length": 1 + accepted / drafts if drafts else None,
        "spec_decode_num_drafts": drafts,
        "spec_decode_draft_tokens": drafts * k,
        "spec_decode_accepted_tokens": accepted,
        "spec_decode_per_position_acceptance_rates": [a / drafts if drafts else None
                                                      for a in accepted_at],
    }  # fmt: skip


def spec_section(view: Any, _so_far: dict) -> dict[str, Any]:
    """``spec_summary`` as a summary section (a ``(RunView, summary so far) -> keys`` function
    for a SECTIONS tuple over a view with ``.raw``)."""
    return spec_summary(getattr(view.raw, "spec", None) or {})
