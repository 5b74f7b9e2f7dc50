"""Studies over the public API: bench, sweep, plan, compare, report (no cycle among them).

The old paths (``servesim.bench``, ``import servesim.plan``, ...) resolve to these modules through
the alias hook in servesim/__init__.py.
"""
