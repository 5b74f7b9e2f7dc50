"""Summary keys of speculative decoding (``spec.*``, docs/metrics.md) from RawRun.spec."""

from __future__ import annotations

from typing import Any


def spec_summary(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec.*`` keys; empty without speculation.

    acceptance_length: mean tokens a sequence emitted per speculative step, the bonus token
    counted (vLLM's "mean acceptance length"); acceptance_rate.pos<i>: the fraction of
    speculative sequence-steps whose draft token i was accepted (vLLM's "acceptance at token
    i-1"); draft_ms_per_step / verify_ms_per_step: mean time of the draft passes and of the
    target's verification pass per speculative step; plain_steps: decode steps run without
    speculation (``disable_by_batch_size``).
    """
    if not spec:
        return {}
    steps = int(spec["spec_steps"])
    seq_steps = int(spec["seq_steps"])
    out: dict[str, Any] = {
        "spec.method": spec["method"],
        "spec.num_speculative_tokens": int(spec["k"]),
        "spec.steps": steps,
        "spec.plain_steps": int(spec["plain_steps"]),
        "spec.acceptance_length": spec["emitted"] / seq_steps if seq_steps else None,
        "spec.draft_ms_per_step": spec["draft_s"] * 1e3 / steps if steps else None,
        "spec.verify_ms_per_step": spec["verify_s"] * 1e3 / steps if steps else None,
    }
    for i, a in enumerate(spec["accepted_at"].tolist(), start=1):
        out[f"spec.acceptance_rate.pos{i}"] = a / seq_steps if seq_steps else None
    return out
