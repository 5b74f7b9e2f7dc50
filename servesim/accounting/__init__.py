"""Accounting over an engine run: metrics (summaries, benchmark JSON, time series), energy and
costing. Imports specs and the cost model's face; never the engine's internals.

The old paths (``servesim.metrics``, ``servesim.energy``, ``servesim.costing``) resolve to these
modules through the alias hook in servesim/__init__.py. The face below (imported lazily) holds
what the CLI uses besides ``servesim.*``.
"""

from servesim._face import lazy_face

_EXPORTS = {
    "bottom_up": "servesim.accounting.hwcost",  # a device's cost built up from its parts
    "Summary": "servesim.accounting.summary",  # the typed run summary (Result.sections)
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)
