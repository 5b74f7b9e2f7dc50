"""The `workload:` block: parsing, validation errors, round trip."""

from __future__ import annotations

import pytest

from servesim.specs.common import SpecError
from servesim.specs.workload import (
    ArrivalSpec,
    LengthDist,
    TraceSpec,
    parse_workload,
    workload_to_dict,
)

LENGTHS = {
    "input": {"dist": "fixed", "mean": 1024},
    "output": {"dist": "uniform", "mean": 128, "range_ratio": 0.5},
}

VALID = [
    {
        "trace": {"format": "azure", "path": "traces/azure_conv_sample.csv", "speedup": 2.0},
        "num_requests": 2000,
    },
    {"trace": "traces/azure_conv_sample.csv"},
    {
        "trace": {
            "format": "csv",
            "path": "x.csv",
            "columns": {"arrival": "t", "prompt_tokens": "in"},
            "time_unit": "ms",
            "start_s": 10,
            "duration_s": 60,
            "sample": 0.5,
            "max_input": 4096,
            "max_output": 512,
        }
    },
    {"arrivals": {"process": "poisson", "rate": 5.0}, "lengths": LENGTHS, "num_requests": 100},
    {
        "arrivals": {"process": "poisson", "rate": 5.0},
        "lengths": LENGTHS,
        "num_requests": 100,
        "max_concurrency": 8,
    },
    {"trace": "traces/azure_conv_sample.csv", "max_concurrency": 1, "num_requests": 50},
    {
        "arrivals": {"process": "gamma", "rate": 5.0, "cv": 2.0},
        "lengths": LENGTHS,
        "duration_s": 60,
    },
    {
        "arrivals": {"process": "constant", "rate": 1},
        "lengths": {"preset": "azure-conv"},
        "num_requests": 10,
    },
    {
        "arrivals": {
            "process": "diurnal",
            "rate": 3,
            "peak_to_trough": 4,
            "period_s": 3600,
            "phase_s": 10,
        },
        "lengths": {"empirical": "traces/azure_code_sample.csv"},
        "num_requests": 10,
    },
    {
        "arrivals": {"process": "bursty", "rate": 20, "on_s": 5, "off_s": 15},
        "lengths": LENGTHS,
        "num_requests": 10,
        "prefix": {"shared_tokens": 512, "groups": 4},
    },
    {
        "clients": {"concurrency": 32, "think_time_s": 0.5},
        "num_requests": 500,
        "lengths": {
            "input": {"dist": "lognormal", "mean": 1000, "sigma": 0.8, "max": 8192},
            "output": {
                "dist": "empirical",
                "path": "traces/azure_conv_sample.csv",
                "format": "azure",
            },
        },
        "sessions": {"concurrent": 8, "turns": 4},
    },
    {
        "clients": {"concurrency": 1},
        "num_requests": 5,
        "lengths": {"input": {"dist": "lognormal", "path": "t.csv"}, "output": 64},
    },
]


@pytest.mark.parametrize("data", VALID)
def test_parse_workload_valid_roundtrips(data):
    spec = parse_workload(data, "cfg.yaml")
    assert parse_workload(workload_to_dict(spec), "cfg.yaml") == spec


def test_parse_workload_trace_fields_typed():
    spec = parse_workload(VALID[0], "cfg.yaml")
    assert spec.trace == TraceSpec(path="traces/azure_conv_sample.csv", format="azure", speedup=2.0)
    assert spec.kind == "trace" and spec.num_requests == 2000 and spec.lengths is None


def test_parse_workload_int_length_means_fixed():
    spec = parse_workload(VALID[-1], "cfg.yaml")
    assert spec.lengths.output == LengthDist("fixed", mean=64.0)


def test_parse_workload_max_concurrency_defaults_to_none_and_is_emitted_only_when_set():
    capped = parse_workload(VALID[4], "cfg.yaml")
    plain = parse_workload(VALID[3], "cfg.yaml")
    assert capped.max_concurrency == 8 and plain.max_concurrency is None
    assert workload_to_dict(capped)["max_concurrency"] == 8
    assert "max_concurrency" not in workload_to_dict(plain)


def test_parse_workload_bursty_mean_rate():
    spec = parse_workload(VALID[9], "cfg.yaml")
    assert spec.arrivals == ArrivalSpec("bursty", 20.0, on_s=5.0, off_s=15.0)
    assert spec.arrivals.mean_rate == pytest.approx(5.0)


BAD = [
    ({"num_requests": 5}, "workload", "exactly one of trace, arrivals, clients"),
    ({"trace": "a.csv", "clients": {"concurrency": 2}}, "workload", "exactly one"),
    (
        {"arrivals": {"process": "poisson", "rate": -1}, "lengths": LENGTHS, "num_requests": 1},
        "workload.arrivals.rate",
        "> 0",
    ),
    (
        {"arrivals": {"process": "weibull", "rate": 1}, "lengths": LENGTHS, "num_requests": 1},
        "workload.arrivals.process",
        "poisson, gamma, constant, diurnal, bursty",
    ),
    (
        {"arrivals": {"process": "gamma", "rate": 1}, "lengths": LENGTHS, "num_requests": 1},
        "workload.arrivals.cv",
        "required for process gamma",
    ),
    (
        {
            "arrivals": {"process": "poisson", "rate": 1, "cv": 2},
            "lengths": LENGTHS,
            "num_requests": 1,
        },
        "workload.arrivals.cv",
        "not a parameter",
    ),
    (
        {
            "arrivals": {"process": "diurnal", "rate": 1, "peak_to_trough": 0.5},
            "lengths": LENGTHS,
            "num_requests": 1,
        },
        "workload.arrivals.peak_to_trough",
        ">= 1",
    ),
    (
        {"clients": {"concurrency": 0}, "lengths": LENGTHS, "num_requests": 1},
        "workload.clients.concurrency",
        ">= 1",
    ),
    (
        {"clients": {"concurrency": 2}, "num_requests": 1},
        "workload.lengths",
        "required with arrivals or clients",
    ),
    (
        {"clients": {"concurrency": 2}, "lengths": LENGTHS},
        "workload.num_requests",
        "num_requests or duration_s",
    ),
    (
        {
            "clients": {"concurrency": 2},
            "lengths": {"input": {"dist": "zipf", "mean": 3}, "output": 1},
            "num_requests": 1,
        },
        "workload.lengths.input.dist",
        "fixed, uniform, lognormal, empirical",
    ),
    (
        {
            "clients": {"concurrency": 2},
            "lengths": {"input": {"dist": "uniform", "mean": 3, "range_ratio": 1.0}, "output": 1},
            "num_requests": 1,
        },
        "workload.lengths.input.range_ratio",
        "<=",
    ),
    (
        {"clients": {"concurrency": 2}, "lengths": {"preset": "sharegpt"}, "num_requests": 1},
        "workload.lengths.preset",
        "azure-conv",
    ),
    (
        {
            "clients": {"concurrency": 2},
            "lengths": {"input": {"dist": "fixed", "mean": 8, "sigma": 1}, "output": 1},
            "num_requests": 1,
        },
        "workload.lengths.input.sigma",
        "unknown key",
    ),
    ({"trace": {"path": "a.csv", "speed": 2}}, "workload.trace.speed", "unknown key; allowed"),
    (
        {"trace": {"path": "a.csv", "format": "parquet"}},
        "workload.trace.format",
        "azure, mooncake, burstgpt, csv, jsonl",
    ),
    ({"trace": {"path": "a.csv", "sample": 1.5}}, "workload.trace.sample", "<= 1"),
    (
        {"trace": {"path": "a.csv", "columns": {"arrival": "t"}}},
        "workload.trace.columns",
        "only with format csv or jsonl",
    ),
    (
        {"trace": "a.csv", "prefix": {"shared_tokens": 16}},
        "workload.prefix",
        "not allowed with a trace",
    ),
    ({"trace": "a.csv", "typo": 1}, "workload.typo", "unknown key"),
    ({"trace": "a.csv", "max_concurrency": 0}, "workload.max_concurrency", ">= 1"),
    ({"trace": "a.csv", "max_concurrency": 2.5}, "workload.max_concurrency", "whole number"),
    (
        {
            "clients": {"concurrency": 2},
            "lengths": LENGTHS,
            "num_requests": 1,
            "max_concurrency": 2,
        },
        "workload.max_concurrency",
        "only with trace or arrivals",
    ),
]


@pytest.mark.parametrize(("data", "field", "allowed"), BAD)
def test_parse_workload_bad_input_names_field_and_allowed(data, field, allowed):
    with pytest.raises(SpecError) as err:
        parse_workload(data, "cfg.yaml")
    assert err.value.field == field
    assert allowed in err.value.allowed
    assert str(err.value).startswith("cfg.yaml: ")
