"""The analytic operator cost model: pure, memoised functions of hashable specs; no SimPy.

ops.py (operators as data) -> roofline.py / comm.py (time of one operator) -> step.py
(``step_cost``, ``breakdown``); memory.py (weights, KV, capacity, fit). The engine uses only
``cost.step`` and ``cost.memory``. Formulas: docs/cost-model.md.
"""
