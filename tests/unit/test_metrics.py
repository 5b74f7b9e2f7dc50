"""metrics.summarize / time_series / benchmark_json on hand-made RawRuns with hand-computed answers."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
from _fake_raw import REQ_COLS, STEP_COLS, FakeRaw, Inst

from servesim import metrics
from servesim.accounting.summary import ABSENT, Cache


@dataclass
class FakeSLO:
    ttft_ms: tuple = ()
    tpot_ms: tuple = ()
    e2el_ms: tuple = ()


@dataclass
class FakeCfg:
    slo: object = None


def make_raw(req_rows, step_rows, instances, sim_end_s) -> FakeRaw:
    req = {c: np.array([r[i] for r in req_rows]) for i, c in enumerate(REQ_COLS)}
    steps = {c: np.array([r[i] for r in step_rows], dtype=float) for i, c in enumerate(STEP_COLS)}
    for c in ("instance", "decode_seqs", "batch_size", "waiting", "running", "new_tokens"):
        steps[c] = steps[c].astype(np.int64)
    return FakeRaw(req, steps, list(instances), sim_end_s)


INST0 = Inst(0, "colocated", "colocated", "h100-sxm", 1, 1e15, 1e12, 700.0, 100.0)


def hand_run() -> FakeRaw:
    """Two requests on one instance; every number below is worked out in the docstring of tests.

    A arrives at 0, prefilled in step 0 (first token 0.10), decodes in steps 1-3 (ends 0.15, 0.35,
    0.40), output 4. B arrives at 0.12, prefilled in step 2 (first token 0.35), decodes in steps 3-4
    (ends 0.40, 0.44), output 3.
    """
    reqs = [
        # id arr  sched first finish prompt out cached pre inst pinst kvt
        (0, 0.00, 0.00, 0.10, 0.40, 10, 4, 0, 0, 0, -1, 0.0),
        (1, 0.12, 0.15, 0.35, 0.44, 20, 3, 4, 1, 0, -1, 0.0),
    ]
    steps = [
        # inst start dur pf dseq batch flops bytes comm cs ms cms used total wait run new
        (0, 0.00, 0.10, 10, 0, 1, 1e12, 1e9, 0, 0, 0, 0, 10, 100, 0, 1, 1),
        (0, 0.10, 0.05, 0, 1, 1, 1e12, 1e9, 0, 0, 0, 0, 10, 100, 1, 1, 1),
        (0, 0.15, 0.20, 20, 1, 2, 1e12, 1e9, 0, 0, 0, 0, 20, 100, 0, 2, 2),
        (0, 0.35, 0.05, 0, 2, 2, 1e12, 1e9, 0, 0, 0, 0, 20, 100, 0, 2, 2),
        (0, 0.40, 0.04, 0, 1, 1, 1e12, 1e9, 0, 0, 0, 0, 10, 100, 0, 1, 1),
    ]
    return make_raw(reqs, steps, [INST0], 0.44)


def approx(x, rel=1e-9):
    return pytest.approx(x, rel=rel, abs=1e-12)


def test_summarize_hand_run_counts_and_throughput_match_hand_values():
    s = metrics.summarize(hand_run(), FakeCfg())
    assert s["num_requests"] == 2 and s["completed"] == 2 and s["failed"] == 0
    assert s["duration_s"] == approx(0.44)
    assert s["total_input_tokens"] == 30 and s["total_output_tokens"] == 7
    assert s["request_throughput"] == approx(2 / 0.44)
    assert s["output_throughput"] == approx(7 / 0.44)
    assert s["total_token_throughput"] == approx(37 / 0.44)


def test_summarize_hand_run_latencies_match_hand_values():
    s = metrics.summarize(hand_run(), FakeCfg())
    assert s["ttft_ms_mean"] == approx((100 + 230) / 2)
    assert s["ttft_ms_p90"] == approx(100 + 0.9 * 130)
    assert s["e2el_ms_mean"] == approx((400 + 320) / 2)
    # TPOT: A (400 - 100) / 3 = 100 ms; B (320 - 230) / 2 = 45 ms
    assert s["tpot_ms_mean"] == approx(72.5)
    assert s["tpot_ms_std"] == approx(27.5)
    assert s["queue_ms_mean"] == approx(15.0)


def test_summarize_itl_from_steps_equals_true_token_gaps():
    s = metrics.summarize(hand_run(), FakeCfg())
    true_gaps = np.array([50, 200, 50, 50, 40], dtype=float)  # A: 50 200 50; B: 50 40
    assert s["itl_ms_mean"] == approx(true_gaps.mean())
    assert s["itl_ms_median"] == approx(np.median(true_gaps))
    assert s["itl_ms_p99"] == approx(np.percentile(true_gaps, 99))
    assert s["itl_ms_std"] == approx(np.std(true_gaps))


def test_request_itls_hand_run_rebuilds_each_requests_gaps():
    itls = metrics.request_itls(hand_run())
    assert np.allclose(itls[0], [0.05, 0.20, 0.05]) and np.allclose(itls[1], [0.05, 0.04])


def test_summarize_slo_goodput_counts_requests_meeting_every_target():
    cfg = FakeCfg(FakeSLO(ttft_ms=(("p90", 250.0),), tpot_ms=(("p99", 50.0),)))
    s = metrics.summarize(hand_run(), cfg)
    # A: TTFT 100 ok, TPOT 100 > 50 -> bad. B: TTFT 230 ok, TPOT 45 ok -> good.
    assert s["goodput_fraction"] == approx(0.5)
    assert s["goodput_rps"] == approx(1 / 0.44)
    assert s["slo.ttft_ms_p90.met"] is True and s["slo.tpot_ms_p99.met"] is False
    assert s["slo.tpot_ms_p99.value"] == approx(45 + 0.99 * 55)
    assert s["slo_attained"] is False


def test_summarize_without_slo_reports_none_goodput():
    s = metrics.summarize(hand_run(), FakeCfg())
    assert s["goodput_fraction"] is None and s["slo_attained"] is None


def test_summarize_utilisation_and_kv_match_hand_values():
    s = metrics.summarize(hand_run(), FakeCfg())
    assert s["mfu"] == approx(5e12 / (1e15 * 0.44))
    assert s["mbu"] == approx(5e9 / (1e12 * 0.44))
    kv = (0.1 * 0.1 + 0.05 * 0.1 + 0.2 * 0.2 + 0.05 * 0.2 + 0.04 * 0.1) / 0.44
    assert s["kv_usage_mean"] == approx(kv) and s["kv_usage_max"] == approx(0.2)
    assert s["busy_fraction"] == approx(1.0)
    assert s["batch_size_mean"] == approx(7 / 5) and s["batch_size_max"] == 2
    assert s["queue_len_mean"] == approx(0.05 / 0.44)
    assert s["preemptions"] == 1 and s["preempted_requests"] == 1
    assert s["cached_prompt_tokens"] == 4 and s["prefix_cache_hit_rate"] == approx(4 / 30)


def test_summarize_single_pool_has_no_pool_keys():
    s = metrics.summarize(hand_run(), FakeCfg())
    assert not [k for k in s if k.startswith("pool.")]
    assert "kv_transfer_ms_mean" not in s


def test_summarize_two_pools_reports_pool_utilisation_and_transfers():
    p = Inst(0, "prefill", "prefill", "h100-sxm", 2, 1e15, 1e12, 700.0, 100.0)
    d = Inst(1, "decode", "decode", "h100-sxm", 2, 1e15, 1e12, 700.0, 100.0)
    reqs = [(0, 0.0, 0.0, 0.5, 1.0, 100, 3, 0, 0, 1, 0, 0.1)]
    steps = [
        (0, 0.0, 0.5, 100, 0, 1, 4e12, 0, 0, 0, 0, 0, 7, 100, 0, 1, 1),
        (1, 0.6, 0.2, 0, 1, 1, 1e12, 0, 0, 0, 0, 0, 7, 100, 0, 1, 1),
        (1, 0.8, 0.2, 0, 1, 1, 1e12, 0, 0, 0, 0, 0, 7, 100, 0, 1, 1),
    ]
    s = metrics.summarize(make_raw(reqs, steps, [p, d], 1.0), FakeCfg())
    assert s["pool.prefill.utilisation"] == approx(0.5)
    assert s["pool.decode.utilisation"] == approx(0.4)
    assert s["pool.prefill.mfu"] == approx(4e12 / (2e15 * 1.0))
    assert s["pool.decode.requests"] == 1 and s["pool.prefill.requests"] == 1
    assert s["kv_transfer_ms_mean"] == approx(100.0)


def test_summarize_no_completed_requests_gives_none_latencies():
    reqs = [(0, 0.0, 0.0, math.nan, math.nan, 10, 5, 0, 0, 0, -1, 0.0)]
    s = metrics.summarize(make_raw(reqs, [], [INST0], 1.0), FakeCfg())
    assert s["completed"] == 0 and s["failed"] == 1
    assert s["ttft_ms_mean"] is None and s["request_throughput"] is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_percentiles_random_data_equal_expanded_numpy(seed):
    rng = np.random.default_rng(seed)
    v = rng.exponential(size=40)
    w = rng.integers(0, 6, size=40)
    w[0] = 3
    qs = [0, 1, 37.5, 50, 90, 99, 99.9, 100]
    expect = np.percentile(np.repeat(v, w), qs)
    assert np.allclose(metrics.weighted_percentiles(v, w, qs), expect, rtol=1e-12, atol=0)
    ws = metrics.weighted_stats(v, w, "x")
    assert ws["x_mean"] == approx(np.repeat(v, w).mean())
    assert ws["x_std"] == approx(np.repeat(v, w).std())


def test_time_series_hand_run_bins_batch_and_kv():
    ts = metrics.time_series(hand_run(), 0.25)
    assert list(ts["time_s"]) == [0.0, 0.25]
    first = ts.iloc[0]  # steps starting in [0, 0.25): 0, 1, 2 with durations .1 .05 .2
    assert first["steps"] == 3
    assert first["batch_size"] == approx((0.1 * 1 + 0.05 * 1 + 0.2 * 2) / 0.35)
    assert first["kv_usage"] == approx((0.1 * 0.1 + 0.05 * 0.1 + 0.2 * 0.2) / 0.35)
    assert first["tokens_per_s"] == approx(4 / 0.25)
    assert ts["steps"].sum() == 5


def test_time_series_busy_fraction_splits_steps_at_bin_edges():
    ts = metrics.time_series(hand_run(), 0.25)
    # bin 0: steps 0 and 1 (0.10 + 0.05) and the first 0.10 of step 2 [0.15, 0.35)
    # bin 1: the other 0.10 of step 2, then steps 3 and 4 (0.05 + 0.04)
    assert list(ts["busy_fraction"]) == approx([0.25 / 0.25, 0.19 / 0.25])
    steps = hand_run().steps
    assert ts["busy_fraction"].sum() * 0.25 == approx(float(np.sum(steps["duration_s"])))


def test_time_series_idle_bin_keeps_last_kv_and_zero_batch():
    steps = [(0, 0.0, 0.1, 0, 1, 3, 0, 0, 0, 0, 0, 0, 40, 100, 2, 3, 3)]
    raw = make_raw([], steps, [INST0], 3.0)
    ts = metrics.time_series(raw, 1.0)
    assert len(ts) == 3
    assert list(ts["batch_size"]) == approx([3.0, 0.0, 0.0])
    assert list(ts["kv_usage"]) == approx([0.4, 0.4, 0.4])


# vLLM benchmark_serving result keys (vllm/benchmarks/serve.py: main() setup keys + benchmark()
# result + process_one_metric for ttft, tpot, itl, e2el at the default percentile 99)
VLLM_KEYS = {
    "date", "backend", "model_id", "tokenizer_id", "num_prompts", "request_rate", "burstiness",
    "max_concurrency", "duration", "completed", "failed", "total_input_tokens",
    "total_output_tokens", "request_throughput", "request_goodput", "output_throughput",
    "total_token_throughput", "input_lens", "output_lens", "ttfts", "itls", "generated_texts",
    "errors", "max_output_tokens_per_s", "max_concurrent_requests",
} | {f"{s}_{m}_ms" for s in ("mean", "median", "std", "p99") for m in ("ttft", "tpot", "itl", "e2el")}  # fmt: skip


def test_benchmark_json_has_exactly_vllm_keys_and_units():
    raw = hand_run()
    s = metrics.summarize(raw, FakeCfg())
    b = metrics.benchmark_json(s, raw, FakeCfg())
    assert set(b) == VLLM_KEYS
    assert b["ttfts"] == approx([0.10, 0.23])  # seconds, per request
    assert b["mean_ttft_ms"] == approx(165.0) and b["p99_tpot_ms"] == approx(45 + 0.99 * 55)
    assert b["p99_itl_ms"] == approx(np.percentile([50, 200, 50, 50, 40], 99))
    assert b["max_concurrent_requests"] == 2
    assert b["max_output_tokens_per_s"] == 7.0  # all tokens within the first second
    assert b["request_rate"] == "inf" and b["date"] is None
    json.dumps(b)  # serialisable


def test_benchmark_json_not_detailed_omits_lists_and_keeps_extra():
    raw = hand_run()
    s = metrics.summarize(raw, FakeCfg())
    b = metrics.benchmark_json(s, raw, FakeCfg(), {"date": "20260101-000000"}, detailed=False,
                               percentiles=(90, 99.9))  # fmt: skip
    assert not set(metrics.DETAILED_KEYS) & set(b)
    assert b["date"] == "20260101-000000"
    assert "p90_ttft_ms" in b and "p99.9_e2el_ms" in b and "p99_ttft_ms" not in b


def test_summarize_runs_step_log_equals_full_log_for_equal_iterations():
    """A "runs" row merging k equal decode iterations gives the same ITL, step count and batch."""
    reqs = [(0, 0.0, 0.0, 0.1, 0.4, 10, 4, 0, 0, 0, -1, 0.0)]
    full = [(0, 0.0, 0.1, 10, 0, 1, 0, 0, 0, 0, 0, 0, 1, 100, 0, 1, 1)] + [
        (0, 0.1 + 0.1 * i, 0.1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 100, 0, 1, 1) for i in range(3)
    ]
    runs = make_raw(reqs, full[:2], [INST0], 0.4)
    runs.steps = {k: np.concatenate((v, v[-1:])) for k, v in runs.steps.items()}
    runs.steps["start_s"][2] = 0.2
    runs.steps["duration_s"][2] = 0.2
    runs.steps["steps"] = np.array([1, 1, 2])
    a = metrics.summarize(make_raw(reqs, full, [INST0], 0.4), FakeCfg())
    b = metrics.summarize(runs, FakeCfg())
    for key in ("itl_ms_mean", "itl_ms_p99", "itl_ms_std", "steps", "batch_size_mean"):
        assert b[key] == approx(a[key])
    assert metrics.request_itls(runs)[0] == approx([0.1, 0.1, 0.1])


def test_summarize_issued_but_unfinished_requests_count_as_failed():
    raw = hand_run()
    raw.issued = 5
    s = metrics.summarize(raw, FakeCfg())
    assert s["num_requests"] == 5 and s["completed"] == 2 and s["failed"] == 3


def test_summarize_prefill_first_gap_spans_the_prefill_only_step():
    """vllm policy: A decodes, a prefill-only step serves B, then both decode.

    A's tokens: 0.1 (prefill), 0.2, then 0.6 (the 0.2-0.5 prefill step pauses it); B's first token
    at 0.5, second at 0.6. True gaps: A 100, 400 ms; B 100 ms.
    """
    reqs = [(0, 0.0, 0.0, 0.1, 0.6, 10, 3, 0, 0, 0, -1, 0.0),
            (1, 0.15, 0.2, 0.5, 0.6, 10, 2, 0, 0, 0, -1, 0.0)]  # fmt: skip
    steps = [
        (0, 0.0, 0.1, 10, 0, 1, 0, 0, 0, 0, 0, 0, 1, 100, 0, 1, 1),
        (0, 0.1, 0.1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 100, 1, 1, 1),
        (0, 0.2, 0.3, 10, 0, 1, 0, 0, 0, 0, 0, 0, 2, 100, 0, 2, 1),
        (0, 0.5, 0.1, 0, 2, 2, 0, 0, 0, 0, 0, 0, 2, 100, 0, 2, 2),
    ]
    raw = make_raw(reqs, steps, [INST0], 0.6)
    s = metrics.summarize(raw, FakeCfg())
    assert s["itl_ms_mean"] == approx(200.0) and s["itl_ms_median"] == approx(100.0)
    assert s["itl_ms_p99"] == approx(np.percentile([100, 400, 100], 99))
    itls = metrics.request_itls(raw)
    assert itls[0] == approx([0.1, 0.4]) and itls[1] == approx([0.1])


def test_summary_new_metric_is_one_field_and_one_function(monkeypatch):
    """A metric is one field on its section's type plus the function that computes the section;
    its key lands after the section's other keys, and the typed value carries it."""

    @dataclasses.dataclass(frozen=True, slots=True)
    class CacheAndMore(Cache):
        output_tokens_per_request: float | None = None  # the new field

    plain = metrics.SECTIONS["cache"]

    def cache(view, so_far):  # the section's function, computing the new field too
        out_tokens = so_far["requests"].total_output_tokens
        per_request = out_tokens / view.completed if view.completed else None
        return CacheAndMore(**_fields(plain(view, so_far)), output_tokens_per_request=per_request)

    monkeypatch.setitem(metrics.SECTIONS, "cache", cache)
    typed = metrics.measure(hand_run(), FakeCfg())
    assert typed.cache.output_tokens_per_request == approx((4 + 3) / 2)
    keys = list(typed.flat())
    assert keys[keys.index("prefix_cache_hit_rate") + 1] == "output_tokens_per_request"


def _fields(section) -> dict:
    return {f.name: getattr(section, f.name) for f in dataclasses.fields(section)}


def test_typed_summary_flattens_to_the_flat_keys():
    typed = metrics.measure(hand_run(), FakeCfg())
    flat = metrics.summarize(hand_run(), FakeCfg())
    assert typed.flat() == flat and list(typed.flat()) == list(flat)
    assert typed.latency.ttft_ms.mean == flat["ttft_ms_mean"]
    assert typed.requests.completed == flat["completed"] == 2
    assert typed.transfers.kv_transfers is ABSENT and "kv_transfers" not in flat
    assert typed.utilisation.batch_size_max == flat["batch_size_max"]


def test_time_series_keeps_rows_for_an_idle_instance():
    """The grid is full (docs/metrics.md): instance 1 ran no step and still has its two bins."""
    raw = hand_run()
    raw.instances.append(INST0._replace(instance_id=1))
    ts = metrics.time_series(raw, 0.25)
    assert list(ts["instance"]) == [0, 0, 1, 1]
    rows = ts[ts["instance"] == 1]
    assert list(rows["steps"]) == [0, 0] and list(rows["busy_fraction"]) == [0.0, 0.0]
