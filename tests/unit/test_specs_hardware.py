"""Hardware profiles: every catalog entry loads, numbers are sourced and dense, bad input is one SpecError."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from servesim.catalog import data_dir, hardware_ids
from servesim.specs import SpecError
from servesim.specs.hardware import EFFICIENCY_DEFAULTS, HardwareSpec, load_hardware

PROFILES = sorted(data_dir("hw_profiles").glob("*.yaml"))
REQUIRED = (
    "a100-sxm", "h100-sxm", "h200-sxm", "b200", "gb200", "gb300", "mi300x", "mi325x", "mi355x",
    "gaudi3", "l40s", "tpu-v5e", "tpu-v6e", "groq-lpu", "sambanova-sn40l", "cerebras-wse3",
)  # fmt: skip


def test_catalog_hardware_required_ids_present():
    assert set(REQUIRED) <= set(hardware_ids())


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_load_hardware_every_profile_loads_consistently(path: Path):
    hw = load_hardware(path.stem)
    assert isinstance(hw, HardwareSpec)
    assert hw.name == path.stem
    assert hw.peak_flops("bf16") > 0 and hw.memory_bytes > 0 and hw.memory_bw > 0
    assert 0 < hw.idle_W <= hw.tdp_W
    assert hw.scaleup_devices >= 1 and hw.devices_per_node >= 1
    assert hw.source


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_profile_every_number_line_has_source_comment(path: Path):
    """A `key: number` or `key: null` line without a `# source` comment is an unsourced number.

    The fitted `efficiency:` block at the end is exempt: `fitted:` names its data.
    """
    text = path.read_text(encoding="utf-8").split("\nefficiency:")[0]
    unsourced = [
        line
        for line in text.splitlines()
        if re.match(
            r"^\s*-?\s*[A-Za-z0-9_]+:\s*(-?[0-9.]+(e-?[0-9]+)?|null)\s*$", line.split("#")[0]
        )
        and "#" not in line
    ]
    assert unsourced == []


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_profile_efficiency_and_fitted_are_the_last_keys(path: Path):
    """The calibration writes its sections (generation, efficiency, engines, intervals, fitted;
    servesim/cost/profile_io.py) at the end of a profile, in that order."""
    keys = list(yaml.safe_load(path.read_text(encoding="utf-8")))
    if "base" in keys:
        return  # a derived profile inherits its base's efficiency and fitted text
    tail = keys[keys.index("efficiency") - ("generation" in keys) :]
    order = ["generation", "efficiency", "engines", "intervals", "fitted"]
    assert tail == [k for k in order if k in keys] and tail[-1] == "fitted"


def test_load_hardware_alias_case_insensitive_same_object():
    assert load_hardware("H100") is load_hardware("h100-sxm")
    assert load_hardware("Nvidia_H100_SXM5".replace("Nvidia_", "")) is load_hardware("h100-sxm")


def test_load_hardware_h100_uses_dense_not_sparse_peaks():
    hw = load_hardware("h100-sxm")
    assert hw.peak_flops("bf16") == pytest.approx(989.4e12)
    assert hw.peak_flops("fp8") == pytest.approx(1978.9e12)


def test_peak_flops_fp8_on_a100_falls_back_to_bf16():
    assert load_hardware("a100").peak_flops("fp8") == pytest.approx(312e12)


def test_load_hardware_unknown_name_suggests_close_matches():
    with pytest.raises(SpecError) as err:
        load_hardware("h100-sxn", where="run.yaml")
    text = str(err.value)
    assert "h100-sxm" in text and "servesim list hardware" in text and text.startswith("run.yaml")


def _write(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(data_dir("hw_profiles").joinpath("h100-sxm.yaml").read_text())
    data["name"] = "my-gpu"
    mutate(data)
    path = tmp_path / "my-gpu.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_load_hardware_yaml_path_loads_user_profile(tmp_path: Path):
    path = _write(tmp_path, lambda d: d["memory"].update(capacity_GB=96))
    hw = load_hardware(str(path))
    assert hw.name == "my-gpu" and hw.memory_GB == 96


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(colour="green"), "colour"),
        (lambda d: d["memory"].update(bandwith_GBps=1), "memory.bandwith_GBps"),
        (lambda d: d["memory"].update(capacity_GB=-1), "memory.capacity_GB"),
        (lambda d: d["power"].update(tdp_W=float("inf")), "power.tdp_W"),
        (lambda d: d["power"].update(idle_W=900), "power.idle_W"),
        (lambda d: d["compute"]["tflops"].update(bf17=1), "compute.tflops.bf17"),
        (lambda d: d.update(efficiency={"gemm_speed": 0.5}), "efficiency.gemm_speed"),
        (lambda d: d["interconnect"].pop("scaleup"), "interconnect.scaleup"),
        (lambda d: d["price"].update(hour_usd="cheap"), "price.hour_usd"),
    ],
)
def test_load_hardware_bad_profile_names_field(tmp_path: Path, mutate, field: str):
    path = _write(tmp_path, mutate)
    with pytest.raises(SpecError) as err:
        load_hardware(str(path))
    assert err.value.field == field


def test_load_hardware_efficiency_override_and_defaults(tmp_path: Path):
    path = _write(tmp_path, lambda d: d.update(efficiency={"gemm_compute": 0.6}))
    hw = load_hardware(str(path))
    assert hw.eff("gemm_compute") == 0.6
    assert hw.eff("gemm_memory") == EFFICIENCY_DEFAULTS["gemm_memory"][0]


def test_load_hardware_malformed_yaml_is_spec_error(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ncompute: [unclosed\n")
    with pytest.raises(SpecError, match="malformed"):
        load_hardware(str(path))


def test_load_hardware_missing_file_is_spec_error(tmp_path: Path):
    with pytest.raises(SpecError, match="not found"):
        load_hardware(str(tmp_path / "nope.yaml"))


def test_load_hardware_memory_tiers_for_sn40l_and_cerebras():
    sn40l = load_hardware("sn40l")
    assert sn40l.memory_GB == 64 and any("DDR" in t.name for t in sn40l.memory_tiers)
    wse3 = load_hardware("cerebras-wse3")
    assert wse3.memory_GB == 44 and any("MemoryX" in t.name for t in wse3.memory_tiers)
    groq = load_hardware("groq")
    assert groq.memory_GB == pytest.approx(0.23) and groq.memory_bw_GBps == 80000


def test_load_hardware_nvl72_scaleup_domain():
    for name in ("gb200", "gb300"):
        hw = load_hardware(name)
        assert hw.scaleup_devices == 72 and hw.scaleup_bw_GBps == 900


@pytest.mark.parametrize(
    ("name", "units"),
    [("a100-sxm", 108), ("h100-sxm", 132), ("h200-sxm", 132), ("b200", 148), ("gb300", 160),
     ("mi300x", 304), ("mi325x", 304), ("mi355x", 256), ("l40s", 142), ("tpu-v5e", None),
     ("tpu-v6e", None), ("gaudi3", None), ("groq-lpu", None), ("cerebras-wse3", None)],
)  # fmt: skip
def test_load_hardware_compute_units_per_device(name: str, units: int | None):
    assert load_hardware(name).compute_units == units


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_compute_units_agrees_with_efficiency_key_where_both_set(path: Path):
    hw = load_hardware(path.stem)
    if "compute_units" in dict(hw.efficiency):
        assert hw.eff("compute_units") == hw.compute_units


@pytest.mark.parametrize("value", [0, 1.5, "many", -8])
def test_load_hardware_bad_compute_units_names_field(tmp_path: Path, value):
    path = _write(tmp_path, lambda d: d["compute"].update(compute_units=value))
    with pytest.raises(SpecError) as err:
        load_hardware(str(path))
    assert err.value.field == "compute.compute_units"


def test_load_hardware_compute_units_absent_or_null_is_none(tmp_path: Path):
    path = _write(tmp_path, lambda d: d["compute"].pop("compute_units"))
    assert load_hardware(str(path)).compute_units is None
    path = _write(tmp_path, lambda d: d["compute"].update(compute_units=None))
    assert load_hardware(str(path)).compute_units is None


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_host_power_is_typical_share_below_accelerator_tdp(path: Path):
    """Host power is a typical draw: per device it stays below the accelerator's own TDP."""
    hw = load_hardware(path.stem)
    assert 0 <= hw.host_W_per_node / hw.devices_per_node < hw.tdp_W


def test_host_power_dgx_h100_is_half_the_non_gpu_budget():
    hw = load_hardware("h100-sxm")
    assert hw.host_W_per_node == pytest.approx(0.5 * (10200 - 8 * 700))


def test_tpu_prices_and_peaks_match_cloud_docs():
    v5e, v6e = load_hardware("tpu-v5e"), load_hardware("tpu-v6e")
    assert (v5e.price_hour_usd, v6e.price_hour_usd) == (pytest.approx(1.2), pytest.approx(2.7))
    assert v5e.peak_flops("bf16") == pytest.approx(197e12)
    assert v6e.peak_flops("int8") == pytest.approx(1836e12)
    assert (v5e.scaleup_bw_GBps, v6e.scaleup_bw_GBps) == (200, 400)  # half the bidirectional ICI


def test_mi355x_dense_peaks_scale_by_format():
    hw = load_hardware("mi355x")
    assert hw.peak_flops("fp8") == pytest.approx(2 * hw.peak_flops("bf16"))
    assert hw.peak_flops("int8") == pytest.approx(hw.peak_flops("fp8"))
    assert hw.peak_flops("fp4") == pytest.approx(2 * hw.peak_flops("fp8"))
