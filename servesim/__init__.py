"""servesim: a discrete-event simulator for LLM serving.

This module only re-exports the public Python API; each name is imported on first use so that
`import servesim` stays cheap (the CLI starts fast). It also keeps the documented module paths of
modules that moved (``servesim.bench`` -> ``servesim.studies.bench``, ...) importable: an import
hook maps each old name to the moved module object, lazily (nothing is imported before use).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
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
    "operators": "servesim.analysis",
    "calibrate": "servesim.cost.calibrate",
    "calibrate_tables": "servesim.cost.fitted",  # aiconfigurator tables (docs/accuracy.md)
    "derive_efficiency": "servesim.cost.fitted",
    "is_aic_table": "servesim.cost.aic",
    # workloads
    "trace_stats": "servesim.workload.traces",
    "fetch_trace": "servesim.workload.traces",
    "load_trace": "servesim.workload.traces",
    # energy and cost
    "tco_breakdown": "servesim.accounting.costing",
    "compare_pricing": "servesim.accounting.costing",
    # studies
    "bench": "servesim.studies.bench",
    "compare": "servesim.studies.compare",
    "sweep": "servesim.studies.sweep",
    "plan": "servesim.studies.plan",
    "report": "servesim.studies.report",
    "timeline": "servesim.studies.timeline",  # a run's steps as a Chrome/Perfetto trace
    # training
    "train": "servesim.training",
    "TrainEstimate": "servesim.training",
    # catalogs
    "list_hardware": "servesim.catalog",
    "list_models": "servesim.catalog",
}

__all__ = ["SpecError", "__version__", *_EXPORTS]


def __dir__() -> list[str]:
    """The public API too (it is imported lazily, so the module dict lacks it until first use)."""
    return sorted(set(globals()) | set(_EXPORTS))


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'servesim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


# old module path -> where the module lives now (docs/internals.md, "Package layout")
MOVED: dict[str, str] = {
    **{f"servesim.{m}": f"servesim.studies.{m}" for m in ("bench", "sweep", "plan", "compare", "report")},
    **{f"servesim.{m}": f"servesim.accounting.{m}" for m in ("metrics", "energy", "costing")},
}  # fmt: skip


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import servesim.bench`` gives the module object of ``servesim.studies.bench``: one module
    under two names (so monkeypatching either patches both)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: Any) -> Any:
        module = importlib.import_module(MOVED[spec.name])
        spec.loader_state = module.__spec__  # the import system stamps the alias spec on it
        return module

    def exec_module(self, module: Any) -> None:
        module.__spec__ = module.__spec__.loader_state  # give the module back its own spec


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.append(_MovedModules())
