"""Summary keys of speculative decoding (``spec.*``, docs/metrics.md) from RawRun.spec."""

from __future__ import annotations

from typing import Any

from servesim.accounting.summary import ABSENT, Speculative


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
    section = speculative(spec)
    return section.flat() if section else {}


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


def speculative(spec: dict[str, Any]) -> Any:
    """The typed ``spec.*`` section (summary.Speculative); ABSENT without speculation."""
    if not spec:
        return ABSENT
    steps = int(spec["spec_steps"])
    seq_steps = int(spec["seq_steps"])
    accepted = int(spec["accepted_at"].sum())
    return Speculative(
        method=spec["method"],
        num_speculative_tokens=int(spec["k"]),
        steps=steps,
        plain_steps=int(spec["plain_steps"]),
        acceptance_length=1 + accepted / seq_steps if seq_steps else None,
        draft_ms_per_step=spec["draft_s"] * 1e3 / steps if steps else None,
        verify_ms_per_step=spec["verify_s"] * 1e3 / steps if steps else None,
        acceptance_rate={
            f"pos{i}": a / seq_steps if seq_steps else None
            for i, a in enumerate(spec["accepted_at"].tolist(), start=1)
        },
    )
