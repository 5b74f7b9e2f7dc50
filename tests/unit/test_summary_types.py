"""The typed summary (accounting/summary.py): Result.sections flattens to Result.summary, keys and
order, and carries the same numbers as typed fields."""

from __future__ import annotations

from pathlib import Path

import pytest

import servesim
from servesim.accounting.summary import (
    ABSENT,
    Cost,
    Energy,
    PoolStats,
    Stats,
    Summary,
    Transfers,
)
from servesim.specs.config import load_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pd_result():
    return servesim.simulate(load_config(ROOT / "benchmarks" / "configs" / "pd.yaml"))


def test_sections_flatten_to_the_summary_in_key_order(pd_result):
    s, flat = pd_result.sections, pd_result.summary
    assert isinstance(s, Summary)
    assert list(s.flat()) == list(flat) and s.flat() == flat


def test_sections_are_typed_values_of_the_same_numbers(pd_result):
    s, flat = pd_result.sections, pd_result.summary
    assert isinstance(s.latency.ttft_ms, Stats) and s.latency.ttft_ms.p99 == flat["ttft_ms_p99"]
    assert isinstance(s.transfers, Transfers) and s.transfers.kv_transfers == flat["kv_transfers"]
    assert set(s.pools) == {"prefill", "decode"}
    assert isinstance(s.pools["decode"], PoolStats)
    assert s.pools["decode"].requests == flat["pool.decode.requests"]
    assert isinstance(s.energy, Energy)
    prefill = s.energy.pools["prefill"]
    assert prefill.charged_per == "input"  # a prefill pool is charged per input token
    assert prefill.j_per_token == flat["energy.prefill.j_per_input_token"]
    assert flat["pool.prefill.energy_kwh"] == prefill.energy_kwh
    assert isinstance(s.cost, Cost) and s.cost.cost_usd == flat["cost_usd"]
    assert s.cost.pools["decode"].cost_usd == flat["cost.decode.cost_usd"]
    assert s.cost.price["pricing"] == flat["pricing"]
    assert s.speculative is ABSENT and not any(k.startswith("spec.") for k in flat)


def test_sections_survive_pickling(pd_result):
    """Sweeps ship results between processes: ABSENT stays the one ABSENT, keys stay the same."""
    import pickle

    back = pickle.loads(pickle.dumps(pd_result.sections))
    assert back.speculative is ABSENT
    assert back.flat() == pd_result.summary
