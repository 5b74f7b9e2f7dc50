"""The ``slo`` queue order: earliest TTFT deadline first, late requests demoted (sim/queues.py).

Hand-worked overload: one seat (max_num_seqs 1), linear step cost 10 ms + 10 us per prefill
token + 100 us per decode sequence, every request 10 prompt and 4 output tokens. A request then
holds the seat for one prefill step (0.0101 s, its first token at its end) and three decode steps
(0.0101 s each): S = 0.0404 s. TTFT target 100 ms. Six requests arrive at 0, 1, ..., 5 ms and
two more at 150 and 151 ms.

FIFO: request k < 6 starts at kS, TTFT = kS + 0.0101 - k ms: 10.1, 49.5, 88.9, 128.3, 167.7,
207.1 ms; 6 and 7 start at 6S = 0.2424 and 7S = 0.2828: TTFT 102.5 and 141.9 ms. Misses: 3, 4,
5, 6, 7 (five).

slo: 0, 1, 2 as FIFO. At 3S = 0.1212 the deadlines of 3, 4, 5 (0.103, 0.104, 0.105 s) have
passed: all three are late and 3 runs (nothing else waits). At 4S = 0.1616 requests 6 and 7
(deadlines 0.250, 0.251) are on time and go first: 6 at 4S (TTFT 21.7 ms), 7 at 5S (61.1 ms),
then 4 at 6S (248.5 ms) and 5 at 7S (287.9 ms). Misses: 3, 4, 5 (three).
"""

from __future__ import annotations

import numpy as np
import pytest

from servesim.sim.cluster import run
from servesim.sim.queues import SloQueue, ttft_target_s
from servesim.sim.request import Request
from servesim.sim.testing import ListWorkload, colocated_config, linear_step_cost
from servesim.specs.common import SpecError
from servesim.specs.config import SLOSpec, config_to_dict, load_config

COST = linear_step_cost(base_s=1e-2, prefill_token_s=1e-5, decode_seq_s=1e-4)
BURST = [(0.001 * i, 10, 4) for i in range(6)] + [(0.150, 10, 4), (0.151, 10, 4)]


def _config(queue: str, slo: dict | None = None):
    base = colocated_config(policy="sarathi", max_num_seqs=1, max_num_batched_tokens=64)
    data = config_to_dict(base)
    data["deployment"]["pools"][0]["scheduler"]["queue"] = queue
    data["slo"] = {"ttft_ms": {"p90": 100}} if slo is None else slo
    return load_config(data)


def _ttft_ms(queue: str) -> list[float]:
    raw = run(_config(queue), step_fn=COST, workload=ListWorkload(BURST), kv_blocks=100)
    req = raw.requests
    ttft = (np.asarray(req["first_token_s"]) - np.asarray(req["arrival_s"])) * 1e3
    return [t for _, t in sorted(zip(req["request_id"].tolist(), ttft.tolist()))]


def test_fifo_on_the_crafted_overload():
    expected = [10.1, 49.5, 88.9, 128.3, 167.7, 207.1, 102.5, 141.9]
    assert _ttft_ms("fifo") == pytest.approx(expected, abs=1e-9)


def test_slo_order_serves_what_can_still_meet_its_deadline_and_misses_fewer():
    got = _ttft_ms("slo")
    assert got == pytest.approx([10.1, 49.5, 88.9, 128.3, 248.5, 287.9, 21.7, 61.1], abs=1e-9)
    misses = {q: sum(t > 100 for t in _ttft_ms(q)) for q in ("fifo", "priority", "slo")}
    assert misses == {"fifo": 5, "priority": 5, "slo": 3}


class _Clock:
    now = 0.0


def test_slo_queue_orders_by_deadline_and_demotes_late_requests():
    clock = _Clock()
    q = SloQueue(clock, ttft_s=0.1)
    a, b, c = Request(0, 0.0, 10, 2), Request(1, 0.05, 10, 2), Request(2, 0.02, 10, 2)
    for r in (a, b, c):
        q.append(r)
    assert q[0] is a and len(q) == 3  # deadlines 0.10, 0.15, 0.12
    clock.now = 0.11  # a is late (deadline 0.10 <= now): c, then b, then a
    assert [r.id for r in q] == [2, 1, 0]
    assert q.popleft() is c and q.popleft() is b and q.popleft() is a and not q


def test_preempted_request_with_its_first_token_resumes_first():
    clock = _Clock()
    q = SloQueue(clock, ttft_s=0.1)
    fresh, resumed = Request(0, 0.0, 10, 2), Request(1, 0.5, 10, 2)
    resumed.first_token_s = 0.6
    q.append(fresh)
    q.appendleft(resumed)  # preempted after its first token: ahead of everything
    assert q[0] is resumed
    never_started = Request(2, 0.0, 10, 2)
    q.appendleft(never_started)  # preempted before its first token: by deadline (ties: id)
    assert [r.id for r in q] == [1, 0, 2]


def test_target_is_the_tightest_ttft_percentile():
    assert ttft_target_s(SLOSpec(ttft_ms=(("p50", 200.0), ("p99", 800.0)))) == 0.2
    assert ttft_target_s(SLOSpec()) == float("inf")


def test_slo_order_without_a_ttft_target_is_a_spec_error():
    with pytest.raises(SpecError, match=r"scheduler\.queue.*slo\.ttft_ms"):
        _config("slo", slo={"tpot_ms": {"p99": 50}})


def test_per_request_targets_from_a_trace_column(tmp_path):
    """Request 0 holds the seat; 1 (own target 1000 ms) and 2 (50 ms) wait. FIFO serves 1 first
    and 2 gets TTFT 2S + 10.1 - 2 = 88.9 ms (a miss); slo serves 2 first: 2 at S (48.5 ms, in
    time), 1 at 2S (89.9 ms, within its 1000 ms). Request 0's empty cell takes the config's."""
    trace = tmp_path / "t.csv"
    trace.write_text(
        "arrival,prompt_tokens,output_tokens,ttft_slo_ms\n0,10,4,\n0.001,10,4,1000\n0.002,10,4,50\n"
    )
    ttft = {}
    for queue in ("fifo", "slo"):
        data = config_to_dict(_config(queue))
        data["workload"] = {"trace": {"path": str(trace), "format": "csv", "time_unit": "s"}}
        raw = run(load_config(data), step_fn=COST, kv_blocks=100)
        req = raw.requests
        got = (np.asarray(req["first_token_s"]) - np.asarray(req["arrival_s"])) * 1e3
        ttft[queue] = [t for _, t in sorted(zip(req["request_id"].tolist(), got.tolist()))]
    assert ttft["fifo"] == pytest.approx([10.1, 49.5, 88.9], abs=1e-9)
    assert ttft["slo"] == pytest.approx([10.1, 89.9, 48.5], abs=1e-9)


def test_bad_per_request_target_names_file_line_and_column(tmp_path):
    from servesim.workload.traces import load_trace

    trace = tmp_path / "t.csv"
    trace.write_text("arrival,prompt_tokens,output_tokens,ttft_slo_ms\n0,10,4,-5\n")
    with pytest.raises(SpecError, match=r"line 2, column ttft_slo_ms.*> 0"):
        load_trace(str(trace), format="csv", time_unit="s")
