"""Derived devices (servesim.specs.derive via derive_hardware): identity, physics, bad input,
pools and sweeps that vary hardware, and the bottom-up price in costing and the planner."""

from __future__ import annotations

import json

import pytest

from servesim.catalog import hardware_ids
from servesim.cli import main
from servesim.specs import SpecError
from servesim.specs.config import config_to_dict, load_config
from servesim.specs.derive import derivation
from servesim.specs.hardware import derive_hardware, load_hardware


@pytest.mark.parametrize("name", hardware_ids())
def test_derived_with_no_overrides_equals_its_base_bit_for_bit(name: str):
    assert derive_hardware({"base": name}) == load_hardware(name)


def test_overrides_merge_and_aliases_are_not_inherited():
    hw = derive_hardware({"base": "h100-sxm", "memory": {"bandwidth_GBps": 6700}})
    base = load_hardware("h100-sxm")
    assert hw.memory_bw_GBps == 6700 and hw.memory_GB == base.memory_GB
    assert hw.aliases == () and hw.name != base.name and hw.efficiency == base.efficiency
    assert hw.purchase_usd is None and hw.price_hour_usd is None  # different silicon
    assert hw.bu("memory.stacks") == 9  # 6,700 GB/s over 819 GB/s per HBM3 stack
    lines = derivation(hw)
    assert lines["base"] == "h100-sxm" and "derived power.tdp_W" in lines


def test_units_and_clock_scale_peak_flops_and_area():
    hw = derive_hardware({"base": "h100-sxm", "compute": {"compute_units": 264}})
    assert dict(hw.tflops)["fp8"] == pytest.approx(2 * 1978.9)
    assert hw.bu("die.area_mm2") == pytest.approx(814 * (0.4 + 0.6 * 2))


def test_raising_the_clock_raises_voltage_by_sqrt_f():
    hw = derive_hardware({"base": "h100-sxm", "clock": {"frequency_GHz": 1.83 * 1.21}})
    assert hw.bu("clock.voltage_V") == pytest.approx(0.9 * 1.1)


def test_a_power_cap_or_link_change_keeps_the_market_price():
    assert load_hardware("h800").purchase_usd == load_hardware("h100-sxm").purchase_usd
    assert load_hardware("h800").scaleup_bw_GBps == 200


@pytest.mark.parametrize(
    ("mapping", "needle"),
    [
        ({"base": "no-such-chip"}, "unknown hardware"),
        ({"base": "h100-sxm", "die": {"area_mm2": -5}}, "die.area_mm2"),
        ({"base": "h100-sxm", "die": {"yield": 1.5}}, "die.yield"),
        ({"base": "h100-sxm", "memory": {"bandwith_GBps": 1}}, "memory.bandwith_GBps"),
        ({"base": "a100-sxm", "clock": {"frequency_GHz": 2.0}}, "clock.frequency_GHz"),
        ({"base": "h100-sxm", "clock": {"voltage_V": 0}}, "clock.voltage_V"),
    ],
)
def test_bad_input_is_one_spec_error(mapping, needle):
    with pytest.raises(SpecError) as err:
        derive_hardware(mapping)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_no_base_names_every_missing_field_at_once():
    with pytest.raises(SpecError) as err:
        derive_hardware({"name": "x", "compute": {"tflops": {"bf16": 100}}})
    text = str(err.value)
    for field in ("memory.capacity_GB", "memory.bandwidth_GBps", "power.tdp_W", "interconnect.scaleup.bandwidth_GBps"):  # fmt: skip
        assert field in text


def test_no_base_fills_the_rest_by_stated_rules():
    hw = derive_hardware({
        "name": "my-chip", "compute": {"tflops": {"bf16": 500}},
        "memory": {"capacity_GB": 64, "bandwidth_GBps": 2000}, "power": {"tdp_W": 400},
        "interconnect": {"scaleup": {"bandwidth_GBps": 200}},
    })  # fmt: skip
    assert hw.idle_W == pytest.approx(48.0) and hw.devices_per_node == 8
    assert any(f == "power.idle_W" for f, _ in hw.derived)


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    cap = capsys.readouterr()
    return exc.value.code, cap.out, cap.err


def test_cli_bad_hardware_file_is_one_line_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("base: h100-sxm\ndie: {area_mm2: -1}\n")
    code, _, err = _cli(["show", "hardware", str(path), "--bottom-up"], capsys)
    assert code == 2 and err.count("\n") == 1 and "die.area_mm2" in err


def test_cli_bottom_up_json_has_a_source_for_every_value(capsys):
    code, out, _ = _cli(["show", "hardware", "mi300x", "--bottom-up", "--format", "json"], capsys)
    assert code == 0
    bu = json.loads(out)["bottom_up"]
    assert set(bu["values"]) == set(bu["sources"]) and all(bu["sources"].values())
    assert bu["values"]["io_die.cost_usd"] > 0  # the four N6 I/O dies


def test_pool_hardware_mapping_is_sweepable_and_round_trips():
    key = "deployment.pools.0.hardware.memory.bandwidth_GBps"
    cfg = load_config(None, {key: 6700})  # the default's "h100-sxm" becomes the base
    hw = cfg.deployment.pools[0].hardware
    assert hw.memory_bw_GBps == 6700 and hw.base == "h100-sxm"
    again = load_config(config_to_dict(cfg))
    assert again.deployment.pools[0].hardware == hw


def test_costing_and_planner_use_the_bottom_up_price_when_there_is_no_market_price():
    from servesim.accounting.costing import quote, tco_breakdown
    from servesim.accounting.hwcost import device_price
    from servesim.specs.cost import CostSpec
    from servesim.studies.plan import _device_hour_usd

    groq = load_hardware("groq-lpu")
    q = quote(groq, CostSpec())
    assert q.provider == "bottom-up" and q.usd_per_device_hour > 0
    b = tco_breakdown(groq)
    assert b["price_source"] == "bottom-up" and b["purchase_usd"] == pytest.approx(
        device_price(groq)
    )
    assert _device_hour_usd(groq, "cloud") == pytest.approx(device_price(groq) / (3 * 8760.0))
    # a device with a market price keeps it
    assert quote(load_hardware("h100-sxm"), CostSpec()).provider == "profile"


def test_a_derived_profile_can_be_a_base():
    hw = derive_hardware({"base": "h20", "clock": {"frequency_GHz": 2.0}})
    assert dict(hw.tflops)["bf16"] == pytest.approx(148 * 2.0 / 1.83)
    assert hw.aliases == () and hw.memory_GB == load_hardware("h20").memory_GB


def test_profile_inputs_cite_the_profile_comment_through_a_derivation(capsys):
    code, out, _ = _cli(["show", "hardware", "h800", "--bottom-up", "--format", "json"], capsys)
    sources = json.loads(out)["bottom_up"]["sources"]
    assert code == 0 and sources["die.area_mm2"].startswith("profile: NVIDIA H100")
