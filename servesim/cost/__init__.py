"""The analytic operator cost model: pure, memoised functions of hashable specs; no SimPy.

ops.py (operators as data) -> roofline.py / comm.py (time of one operator) -> step.py
(``step_cost``, ``breakdown``); memory.py (weights, KV, capacity, fit). Formulas:
docs/cost-model.md.

This module is the engine's one door to the cost model (tests/unit/test_import_graph.py holds
``servesim.sim`` to it). Per role:

- every role's step time: ``step_cost(ctx, role, Aggregates) -> StepCost`` over a ``CostContext``;
- KV sizing: ``kv_capacity_tokens`` after ``check_fit`` (weights + activations fit), and
  ``kv_bytes_per_token`` (what a PD hand-off moves);
- attention/FFN split: ``af_stage_cost`` (the AF step from its stage times), ``moe_imbalance``.

Names resolve lazily, so importing ``servesim.cost`` costs nothing until one is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_FACE = {
    "Aggregates": ("step", "Aggregates"),
    "CostContext": ("step", "CostContext"),
    "pool_context": ("step", "pool_context"),
    "StepCost": ("step", "StepCost"),
    "step_cost": ("step", "step_cost"),
    "bind_step_cost": ("stepfast", "bind_step_cost"),
    "check_fit": ("memory", "check_fit"),
    "kv_capacity_tokens": ("memory", "kv_capacity_tokens"),
    "kv_bytes_per_token": ("memory", "kv_bytes_per_token"),
    "af_stage_cost": ("afstep", "af_step_cost"),
    "moe_imbalance": ("afstep", "moe_imbalance"),
    "draft_context": ("speculative", "draft_context"),
    "spec_step_cost": ("speculative", "spec_step_cost"),
    "spec_kv_capacity_tokens": ("speculative", "spec_kv_capacity_tokens"),
}

__all__ = sorted(_FACE)


def __getattr__(name: str) -> Any:
    try:
        module, attr = _FACE[name]
    except KeyError:
        raise AttributeError(f"module 'servesim.cost' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"servesim.cost.{module}"), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_FACE))
