"""Accounting over an engine run: metrics (summaries, benchmark JSON, time series), energy and
costing. Imports specs and the cost model's face; never the engine's internals.

The old paths (``servesim.metrics``, ``servesim.energy``, ``servesim.costing``) resolve to these
modules through the alias hook in servesim/__init__.py.
"""
