"""servesim: a discrete-event simulator for LLM serving.

This module only re-exports the public Python API; each name is imported on first use so that
`import servesim` stays cheap (the CLI starts fast).
"""

from __future__ import annotations

import importlib
from typing import Any

from servesim.specs.common import SpecError

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # specs
    "load_config": "servesim.specs.config",
    "load_model": "servesim.specs.model",
    "load_hardware": "servesim.specs.hardware",
    # simulation and results
    "simulate": "servesim.result",
    "Result": "servesim.result",
    # cost model
    "roofline": "servesim.analysis",
    "model_info": "servesim.analysis",
    "calibrate": "servesim.cost.calibrate",
    "calibrate_tables": "servesim.cost.fitted",  # aiconfigurator tables (docs/accuracy.md)
    "derive_efficiency": "servesim.cost.fitted",
    "is_aic_table": "servesim.cost.aic",
    # workloads
    "trace_stats": "servesim.workload.traces",
    "fetch_trace": "servesim.workload.traces",
    "load_trace": "servesim.workload.traces",
    # energy and cost
    "tco_breakdown": "servesim.costing",
    "compare_pricing": "servesim.costing",
    # studies
    "bench": "servesim.bench",
    "compare": "servesim.compare",
    "sweep": "servesim.sweep",
    "plan": "servesim.plan",
    "report": "servesim.report",
    # catalogs
    "list_hardware": "servesim.catalog",
    "list_models": "servesim.catalog",
}

__all__ = ["SpecError", "__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'servesim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
