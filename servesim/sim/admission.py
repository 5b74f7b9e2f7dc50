"""Admission: requests that no instance could ever serve are dropped where they enter the cluster.

A serving engine answers such a request with an error at once (vLLM: "This model's maximum
context length is N tokens. However, you requested M tokens", HTTP 400; a prompt whose KV cannot
fit even an empty cache is refused the same way). The simulator does the same: the request is
counted as failed with its reason, the run goes on, and the summary says how many and why
(``failed_<reason>``). With ``sim.strict: true`` the first such request is an error instead.

The check is O(1) per request: the context window is the model's ``max_position_embeddings``
(0 = unknown: no check), the KV bound is each KV-holding pool's per-instance block count (the
instances of a pool are identical), for the tokens that pool holds at once: prompt + output - 1
for a colocated or decode instance, the prompt for a prefill instance.
"""

from __future__ import annotations

from typing import Any

from servesim.specs.common import SpecError

REASONS = ("context_window", "kv_capacity")


class Admission:
    """Per-run drop counters and the limits they are checked against."""

    __slots__ = ("context", "kv", "strict", "max_requests", "max_time", "dropped", "where")

    def __init__(self, cfg: Any, pools: list):
        self.context = int(getattr(cfg.model, "max_position_embeddings", 0) or 0)
        # (pool role, tokens-held rule, one instance's KV manager) per KV-holding pool
        self.kv = [
            (p.role, p.role == "prefill", p.instances[0].kv)
            for p in pools
            # FFN instances hold no KV (their kv manager, if any, has no blocks to check)
            if p.role != "ffn" and p.instances and getattr(p.instances[0], "kv", None) is not None
        ]
        self.strict = bool(cfg.sim.strict)
        self.max_requests = cfg.sim.max_requests
        self.max_time = cfg.sim.max_duration_s
        self.dropped = dict.fromkeys(REASONS, 0)
        self.where = cfg.source

    def reason(self, prompt: int, output: int) -> tuple[str, str] | None:
        """(reason, explanation) why a request can never be served, or None."""
        if self.context and prompt + output > self.context:
            return "context_window", (
                f"longer than the model's context window ({self.context:,} tokens)"
            )
        for role, prefill_only, kv in self.kv:
            tokens = prompt if prefill_only else prompt + output - 1
            need = kv.blocks_for(tokens)
            if need > kv.total:
                return "kv_capacity", (
                    f"needs {need:,} KV blocks, more than a {role} instance has ({kv.total:,})"
                )
        return None

    def admit(self, r: Any, issued: int) -> bool:
        """True if ``r`` may enter; False if it is dropped (counted). Raises SpecError for a
        request past the run's caps, or for a dropped one under sim.strict."""
        if issued > self.max_requests:
            raise SpecError(self.where, "workload", f"request #{r.id}",
                            f"more requests than sim.max_requests = {self.max_requests:,}; "
                            "raise sim.max_requests to allow it")  # fmt: skip
        if r.arrival_s > self.max_time:
            raise SpecError(self.where, "workload", f"request #{r.id} at {r.arrival_s:.6g} s",
                            f"arrives after sim.max_duration_s = {self.max_time:g} simulated s; "
                            "raise sim.max_duration_s to allow it")  # fmt: skip
        found = self.reason(r.prompt, r.output)
        if found is None:
            return True
        key, why = found
        if self.strict:
            raise SpecError(self.where, "workload",
                            f"request #{r.id}: {r.prompt} prompt + {r.output} output tokens",
                            f"{why}; sim.strict is on (off: such requests are dropped as failed)")  # fmt: skip
        self.dropped[key] += 1
        return False

    def check_clock(self, now: float) -> None:
        """SpecError once a request finishes past sim.max_duration_s: a deployment that slow
        (a profile with 1e-300 TFLOP/s) reports nonsense, and float time stops advancing."""
        if now > self.max_time:
            raise SpecError(self.where, "deployment", f"simulated time {now:.6g} s",
                            f"past sim.max_duration_s = {self.max_time:g} s before the workload "
                            "finished; raise sim.max_duration_s to allow it")  # fmt: skip

    def summary(self) -> dict[str, int]:
        """``failed_<reason>`` counts, only the non-zero ones (a run without drops has none)."""
        return {f"failed_{k}": n for k, n in self.dropped.items() if n}
