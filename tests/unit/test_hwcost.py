"""Bottom-up cost and power (servesim/accounting/hwcost.py): hand-computed cases, properties, anchors."""

from __future__ import annotations

import math

import pytest

from servesim.accounting import hwcost
from servesim.specs import SpecError
from servesim.specs.hardware import derive_hardware, load_hardware
from servesim.specs.silicon import YIELD_MODELS


def test_dies_per_wafer_hand_computed():
    # pi 150^2 / 100 - pi 300 / sqrt(200) = 706.858 - 66.643
    assert hwcost.dies_per_wafer(100.0) == pytest.approx(640.215, abs=1e-3)
    assert hwcost.dies_per_wafer(46225.0) == 1.0  # a wafer-scale part is one per wafer


def test_yield_models_hand_computed():
    # A x D0 = 1: Poisson e^-1, Murphy (1 - e^-1)^2, Seeds 1/2, negative binomial (4/3)^-3
    assert hwcost.die_yield(100.0, 1.0, "poisson") == pytest.approx(math.exp(-1))
    assert hwcost.die_yield(100.0, 1.0, "murphy") == pytest.approx((1 - math.exp(-1)) ** 2)
    assert hwcost.die_yield(100.0, 1.0, "seeds") == pytest.approx(0.5)
    assert hwcost.die_yield(100.0, 1.0, "negative_binomial") == pytest.approx((4 / 3) ** -3)


@pytest.mark.parametrize("model", YIELD_MODELS)
@pytest.mark.parametrize("area", [50.0, 200.0, 400.0])
def test_cost_per_good_die_rises_faster_than_area(model: str, area: float):
    one = hwcost.good_die_usd(area, 17000.0, 0.1, model)
    two = hwcost.good_die_usd(2 * area, 17000.0, 0.1, model)
    assert two > 2.0 * one


def test_h100_chip_cost_breakdown_hand_computed():
    v = hwcost.bottom_up(load_hardware("h100-sxm"))["values"]
    die = 18000.0 / (hwcost.dies_per_wafer(814.0) * hwcost.die_yield(407.0, 0.1, "murphy"))
    assert v["die.cost_usd"] == pytest.approx(die)
    assert v["memory.cost_usd"] == pytest.approx(85.52 * 14.0 + 5 * 40.0)
    assert v["packaging.cost_usd"] == pytest.approx(0.5 * (814.0 + 5 * 121.0))
    chip = (die + v["memory.cost_usd"] + v["packaging.cost_usd"] + 500.0) / 0.95
    assert v["chip.cost_usd"] == pytest.approx(chip)
    assert v["price.device_usd"] == pytest.approx(chip / (1 - 0.85))


@pytest.mark.parametrize(
    ("name", "reported"),
    # reported selling prices: docs/energy-and-cost.md "Anchors" cites each
    [("h100-sxm", 27500.0), ("h200-sxm", 30000.0), ("b200", 40000.0), ("mi300x", 15000.0)],
)
def test_bottom_up_price_within_30_percent_of_reported(name: str, reported: float):
    price = hwcost.device_price(load_hardware(name))
    assert abs(price / reported - 1.0) < 0.30


def test_power_dynamic_part_scales_with_v_squared_f():
    base = load_hardware("h100-sxm")
    p0 = hwcost.power(base, 1.0)
    hw = derive_hardware({"base": "h100-sxm", "clock": {"frequency_GHz": 1.83 * 0.8, "voltage_V": 0.99}})  # fmt: skip
    expect = p0["static_W"] * 1.1 + p0["dynamic_W"] * 1.1**2 * 0.8 + p0["memory_W"]
    assert hw.tdp_W == pytest.approx(expect, rel=1e-6)
    # doubling f at fixed V doubles the dynamic part exactly
    hw2 = derive_hardware({"base": "h100-sxm", "clock": {"frequency_GHz": 3.66, "voltage_V": 0.9}})
    assert hw2.tdp_W - base.tdp_W == pytest.approx(p0["dynamic_W"], rel=1e-6)
    assert dict(hw2.tflops)["bf16"] == pytest.approx(2 * 989.4)


def test_operating_power_between_idle_and_tdp():
    hw = load_hardware("h100-sxm")
    lo, hi = hwcost.power(hw, 0.0)["operating_W"], hwcost.power(hw, 1.0)["operating_W"]
    assert hw.idle_W <= lo < hi == pytest.approx(hw.tdp_W)


def test_missing_inputs_all_named_in_one_error():
    with pytest.raises(SpecError) as err:
        hwcost.bottom_up(load_hardware("a100-sxm"))
    text = str(err.value)
    assert "die.area_mm2" in text and "die.node" in text and "memory.stacks" in text


def test_sram_machine_costs_die_area_not_hbm():
    groq = load_hardware("groq-lpu")
    v = hwcost.bottom_up(groq)["values"]
    assert v["memory.cost_usd"] == 0.0 and v["die.cost_usd"] > 0
    bigger = derive_hardware({"base": "groq-lpu", "memory": {"capacity_GB": 0.46}})
    # 230 MB more SRAM at the 14 nm density grows the die and its cost per good die superlinearly
    assert bigger.bu("die.area_mm2") == pytest.approx(725.0 + 230.0 * 1.6)
    assert hwcost.chip_cost(bigger) > hwcost.chip_cost(groq)
