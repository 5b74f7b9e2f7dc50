"""Small stand-ins for analytic tests and experiments: a list-backed workload and a linear step cost.

``run(cfg, step_fn=linear_step_cost(...), workload=ListWorkload(...))`` gives an engine whose
service times are known in closed form (M/D/1 checks, hand-worked preemption scenarios).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple


class Spec(NamedTuple):
    """Same fields as servesim.workload.RequestSpec."""

    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    session_id: int = -1
    prefix_hashes: tuple = ()
    priority: int = 0
    ttft_slo_ms: float | None = None


class ClientSpec(NamedTuple):
    concurrency: int
    think_time_s: float = 0.0


class ListWorkload:
    """Open loop over a fixed list of requests, or closed loop drawing lengths from it in turn."""

    def __init__(
        self,
        specs: Iterable[Any],
        clients: ClientSpec | None = None,
        num_requests: int | None = None,
    ):
        self.specs = [Spec(*s) for s in specs]
        self.closed_loop = clients
        self.num_requests = num_requests if num_requests is not None else len(self.specs)
        self.duration_s = None
        self._next = 0

    def open_loop(self):
        return (
            None
            if self.closed_loop is not None
            else iter(sorted(self.specs, key=lambda s: s.arrival_s))
        )

    def next_lengths(self) -> Spec:
        s = self.specs[self._next % len(self.specs)]
        self._next += 1
        return s._replace(arrival_s=0.0)


def linear_step_cost(
    base_s: float = 1e-3,
    prefill_token_s: float = 1e-5,
    decode_seq_s: float = 1e-4,
    ctx_token_s: float = 0.0,
    attn_pair_s: float = 0.0,
):
    """A step_fn whose time is linear in the aggregates (seconds > 0 always)."""
    from servesim.cost import StepCost

    def step_fn(ctx: Any, role: str, agg: Any) -> StepCost:
        s = (
            base_s
            + prefill_token_s * agg.prefill_tokens
            + decode_seq_s * agg.decode_seqs
            + ctx_token_s * agg.decode_ctx
            + attn_pair_s * agg.prefill_attn
        )
        flops = 2.0 * (agg.prefill_tokens + agg.decode_seqs)
        return StepCost(s, flops, 0.0, 0.0, s - base_s, 0.0, 0.0, base_s, 1)

    return step_fn


def placeholder_workload() -> dict:
    """A valid `workload:` block for configs whose requests a test injects (``run(workload=...)``):
    the config must name a workload, the run never draws from it."""
    return {
        "arrivals": {"process": "poisson", "rate": 1.0},
        "lengths": {
            "input": {"dist": "fixed", "mean": 8},
            "output": {"dist": "fixed", "mean": 8},
        },
        "num_requests": 1,
    }


def colocated_config(
    *,
    model: str = "llama-3.1-8b",
    hardware: str = "h100-sxm",
    instances: int = 1,
    router: str | None = "least_loaded",
    tp: int | None = None,
    pp: int | None = None,
    workload: dict | None = None,
    ff: bool | None = None,
    seed: int | None = None,
    slo: dict | None = None,
    **scheduler: Any,
) -> Any:
    """A RunConfig of one colocated pool: the builder the engine tests share.

    ``scheduler`` keys (policy, max_num_seqs, max_num_batched_tokens, block_size, ...) and tp/pp
    are written only when given, so the config's defaults stay the loader's; ``workload`` defaults
    to ``placeholder_workload()`` (for requests injected with ``run(workload=...)``).
    """
    from servesim.specs.config import load_config

    pool: dict[str, Any] = {"role": "colocated", "hardware": hardware, "instances": instances}
    par = {k: v for k, v in (("tp", tp), ("pp", pp)) if v is not None}
    if par:
        pool["parallelism"] = par
    if scheduler:
        pool["scheduler"] = scheduler
    deployment: dict[str, Any] = {"pools": [pool]}
    if router is not None:
        deployment["router"] = router
    data: dict[str, Any] = {
        "model": model,
        "deployment": deployment,
        "workload": placeholder_workload() if workload is None else workload,
    }
    if ff is not None:
        data["sim"] = {"fast_forward": ff}
    if seed is not None:
        data["seed"] = seed
    if slo is not None:
        data["slo"] = slo
    return load_config(data)
