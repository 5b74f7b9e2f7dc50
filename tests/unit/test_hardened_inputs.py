"""The reader's limits (specs/common.py), the caps (specs/limits.py), output-path containment and
atomic writes (_files.py), and hardware efficiency ranges: hand-made cases with known answers."""

from __future__ import annotations

import os

import pytest
import yaml

from servesim._files import FILE_MODE, contained, is_hidden, write_atomic
from servesim.specs.common import (
    MAX_DEPTH,
    LimitError,
    SpecError,
    load_yaml,
    parse_json,
    parse_yaml,
    short_value,
)
from servesim.specs.config import load_config
from servesim.specs.hardware import EFFICIENCY_DEFAULTS, efficiency_range
from servesim.specs.limits import DEFAULT_MAX_REQUESTS


# ---- YAML / JSON reader
def test_depth_bound_is_exact():
    ok = "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    assert parse_yaml(ok) is not None
    with pytest.raises(LimitError, match="nested deeper than 64"):
        parse_yaml("a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH)


def test_aliases_within_the_bound_expand_and_past_it_fail():
    small = "a: &a [1, 2, 3]\nb: [*a, *a]\n"
    assert parse_yaml(small) == {"a": [1, 2, 3], "b": [[1, 2, 3], [1, 2, 3]]}
    # 10 levels of 10 aliases: 10^10 values once expanded
    text = "l0: &l0 [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]\n"
    for i in range(1, 10):
        text += f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n"
    with pytest.raises(LimitError, match="expands to more than 1,000,000 values"):
        parse_yaml(text)


def test_duplicate_keys_fail_but_merge_keys_may_override():
    with pytest.raises(LimitError, match="duplicate key workload .first at line 1"):
        parse_yaml("workload: 1\nseed: 2\nworkload: 3\n")
    assert parse_yaml("b: &b {x: 1, y: 2}\nc: {<<: *b, x: 3}\n")["c"] == {"x": 3, "y": 2}


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/object/apply:os.system ['true']\n",
        "a: !!python/name:os.system\n",
        "a: !!python/object:collections.OrderedDict {}\n",
    ],
)
def test_tags_that_construct_objects_are_refused(text):
    with pytest.raises(yaml.YAMLError):
        parse_yaml(text)


def test_load_yaml_names_the_limit_with_its_position(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("seed: 1\nseed: 2\n")
    with pytest.raises(SpecError, match=r"refused YAML/JSON at line 2, column 1: duplicate key"):
        load_yaml(p)


def test_json_has_the_same_rules():
    assert parse_json('{"a": [1, {"b": 2}]}', "x") == {"a": [1, {"b": 2}]}
    with pytest.raises(SpecError, match="duplicate key"):
        parse_json('{"a": 1, "a": 2}', "x")
    with pytest.raises(SpecError, match="nested deeper"):
        parse_json("[" * 100 + "]" * 100, "x")
    with pytest.raises(SpecError, match="nested deeper"):
        parse_json("[" * 100_000 + "]" * 100_000, "x")  # past the interpreter's recursion limit
    with pytest.raises(SpecError, match="line 1, column 6"):
        parse_json('{"a":', "x")


def test_echoed_values_are_short_and_state_their_length():
    assert short_value("abc") == "abc"
    s = short_value("x" * 50_000_000)
    assert len(s) < 120 and s.endswith("... (50,000,000 characters)")
    lst = short_value(list(range(1_000_000)))
    assert len(lst) < 120 and lst.endswith("(1,000,000 items)")
    deep: list = []
    node = deep
    for _ in range(10_000):
        node.append([])
        node = node[0]
    assert len(short_value(deep)) <= 80  # bounded repr: no recursion, no huge string
    err = SpecError("f.yaml", "model", "y" * 1_000_000, "unknown model")
    assert len(str(err)) < 200 and "1,000,000 characters" in str(err)


# ---- caps
BASE = {
    "model": "llama-3.1-8b",
    "deployment": {"pools": [{"role": "colocated", "hardware": "h100-sxm"}]},
    "workload": {
        "arrivals": {"process": "poisson", "rate": 10},
        "lengths": {"input": {"dist": "fixed", "mean": 64}, "output": {"dist": "fixed", "mean": 8}},
        "num_requests": 10,
    },
}


def test_request_cap_names_itself_and_can_be_raised():
    over = {"workload.num_requests": DEFAULT_MAX_REQUESTS + 1}
    with pytest.raises(SpecError, match="over the cap sim.max_requests = 10,000,000; raise"):
        load_config(BASE, over)
    cfg = load_config(BASE, {**over, "sim.max_requests": DEFAULT_MAX_REQUESTS + 1})
    assert cfg.workload.num_requests == DEFAULT_MAX_REQUESTS + 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"workload.arrivals.rate": 5e-324}, "span inf simulated s"),
        ({"workload.arrivals.rate": 1e-3, "sim.max_duration_s": 3600}, "span 1e\\+04 simulated s"),
        ({"workload.duration_s": 1e8}, "simulated seconds over the cap sim.max_duration_s"),
        ({"workload.duration_s": 100, "workload.num_requests": None,
          "workload.arrivals.rate": 1e6}, "is 1e\\+08 requests"),
        ({"workload.prefix": {"shared_tokens": 64, "groups": 2 * 10**7}}, "groups over"),
        ({"workload.prefix": {"shared_tokens": 2**16, "groups": 100_000}}, "prefix blocks"),
        ({"workload.lengths.input.mean": 2**25}, "fixed cap of 16,777,216"),
        ({"deployment.pools.0.instances": 100_001}, "fixed cap of 100,000"),
    ],
)  # fmt: skip
def test_caps(overrides, message):
    with pytest.raises(SpecError, match=message):
        load_config(BASE, overrides)


def test_not_a_mapping_is_an_error_where_absent_is_empty():
    assert load_config(BASE, {"slo": None}).slo.ttft_ms == ()
    for key, value in (("slo", False), ("sim", []), ("slo", {"ttft_ms": []})):
        with pytest.raises(SpecError, match="must be a mapping"):
            load_config(BASE, {key: value})


# ---- hardware ranges
def test_every_default_efficiency_is_inside_its_range():
    for key, (value, _) in EFFICIENCY_DEFAULTS.items():
        lo, hi, open_lo = efficiency_range(key)
        assert (lo < value if open_lo else lo <= value) and value <= hi, key


@pytest.mark.parametrize(
    ("key", "low_bad", "high_bad"),
    [("gemm_compute", 0.0, 1.01), ("gemm_wave", -0.1, 5.0), ("gemm_overlap", 0.99, 21.0),
     ("gemm_launch_s", -1e-9, 2.0), ("gemm_overlap_s", 0.0, 1.5)],
)  # fmt: skip
def test_efficiencies_outside_their_range_are_errors(key, low_bad, high_bad):
    from servesim.specs.hardware import _parse_efficiency

    lo, hi, _ = efficiency_range(key)
    assert _parse_efficiency({key: hi}, "hw") == ((key, hi),)
    for bad in (low_bad, high_bad):
        with pytest.raises(SpecError, match=f"efficiency.{key}"):
            _parse_efficiency({key: bad}, "hw")


# ---- output paths and atomic writes
def test_contained_paths(tmp_path):
    assert contained(tmp_path, "a.json", "w", "f") == tmp_path / "a.json"
    assert contained(tmp_path, "sub/a.json", "w", "f") == tmp_path / "sub" / "a.json"
    assert (
        contained(tmp_path, str(tmp_path / "b" / "a.json"), "w", "f") == tmp_path / "b" / "a.json"
    )
    for bad in ("../a.json", "sub/../../a.json", str(tmp_path.parent / "a.json"), "", "."):
        with pytest.raises(SpecError, match="inside"):
            contained(tmp_path, bad, "w", "f")
    (tmp_path / "link").symlink_to(tmp_path.parent)
    with pytest.raises(SpecError, match="stay inside"):
        contained(tmp_path, "link/a.json", "w", "f")


def test_write_atomic_gives_normal_permissions_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "d" / "x.json"
    write_atomic(p, "{}")
    write_atomic(p, "[]")
    assert p.read_text() == "[]"
    assert p.stat().st_mode & 0o777 == FILE_MODE == 0o666 & ~_umask()
    assert [f.name for f in p.parent.iterdir()] == ["x.json"]
    assert is_hidden(tmp_path / ".x.json.abc.tmp") and not is_hidden(p)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ---- streamed benchmark.json
def test_streamed_benchmark_json_equals_the_in_memory_one(tmp_path):
    import json

    from servesim.result import simulate

    res = simulate(BASE)
    out = res.to_dir(tmp_path / "run", detailed=True)  # the per-request lists: --save-detailed
    on_disk = json.loads((out / "benchmark.json").read_text())
    expected = json.loads(json.dumps(res.benchmark(detailed=True)))
    assert on_disk == expected
    assert len(on_disk["itls"]) == 10 and all(len(x) == 7 for x in on_disk["itls"])


def test_write_json_streamed_handles_empty_lists(tmp_path):
    import json

    from servesim._files import write_json_streamed

    p = tmp_path / "x.json"
    write_json_streamed(p, {"a": 1}, {"e": iter(()), "l": iter([[1.5], []])})
    assert json.loads(p.read_text()) == {"a": 1, "e": [], "l": [[1.5], []]}
    write_json_streamed(p, {}, {})
    assert json.loads(p.read_text()) == {}


def test_sweep_and_calibrate_outputs_have_normal_permissions(tmp_path):
    import pandas as pd
    from servesim.sweep import load_sweep_spec, write_table

    from servesim.cost.calibrate import write_atomic as calibrate_write

    calibrate_write(tmp_path / "hw.yaml", "x: 1\n")
    assert (tmp_path / "hw.yaml").stat().st_mode & 0o777 == FILE_MODE
    spec = load_sweep_spec({"base": BASE, "grid": {"seed": [1]}})
    table = pd.DataFrame({"point": ["p"], "seed": [1], "error": [None], "x": [1.0]})
    write_table(tmp_path / "sw", spec, table)
    for f in (tmp_path / "sw").iterdir():
        assert f.stat().st_mode & 0o777 == FILE_MODE, f
