"""Studies over the public API: bench, sweep, plan, compare, report (no cycle among them).

The old paths (``servesim.bench``, ``import servesim.plan``, ...) resolve to these modules through
the alias hook in servesim/__init__.py. This package's face (below, imported lazily) is what the
CLI may use of the studies besides ``servesim.*``: formatting and the pieces of a command's
pipeline (tests/unit/test_import_graph.py checks that the CLI imports nothing else).
"""

from servesim._face import lazy_face

_EXPORTS = {
    # bench
    "bench_matrix": "servesim.studies.bench",
    "format_summary": "servesim.studies.bench",
    "matrix_points": "servesim.studies.bench",
    "expand_nargs": "servesim.studies.bench_flags",
    "NO_EFFECT": "servesim.studies.bench_flags",
    # plan and the planning tools
    "format_plan": "servesim.studies.plan",
    "apply_named": "servesim.studies.planning.catalogs",
    "best_under_budget": "servesim.studies.planning.budget",
    "format_budget": "servesim.studies.planning.budget",
    "capacity": "servesim.studies.planning.capacity",
    "format_capacity": "servesim.studies.planning.capacity",
    # compare, sweep
    "format_comparison": "servesim.studies.compare",
    "load_sweep_spec": "servesim.studies.sweep",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)
