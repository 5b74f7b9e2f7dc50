"""Hardware generations and engine fusions: low-precision efficiencies transfer as speed-ups over
the 16-bit peak; TensorRT-LLM runs no separate activation-quantisation pass."""

from __future__ import annotations

import dataclasses

import pytest

from servesim.cost import fitted
from servesim.cost.roofline import gemm_time
from servesim.specs.derive import format_fractions, format_speedups
from servesim.specs.dtypes import DTypes
from servesim.specs.engines import describe, engine_kernels, fused_efficiency
from servesim.specs.hardware import load_hardware

B300 = {"bf16": 2250.0, "fp8": 4500.0, "fp4": 14000.0}
B200 = {"bf16": 2250.0, "fp8": 4500.0, "fp4": 9000.0}


def test_speedup_round_trip_by_hand():
    eff = {"gemm_compute": 0.77, "gemm_compute@fp4": 0.31, "gemm_memory@fp4": 0.5}
    rel = format_speedups(eff, B300)
    assert rel["gemm_compute@fp4"] == pytest.approx(0.31 * 14000 / 2250)
    assert rel["gemm_memory@fp4"] == 0.5  # bandwidth keys are not fractions of a FLOP peak
    assert rel["gemm_compute"] == 0.77
    back = format_fractions(rel, B200)
    assert back["gemm_compute@fp4"] == pytest.approx(0.31 * 14000 / 9000)
    assert format_fractions(rel, B300)["gemm_compute@fp4"] == pytest.approx(0.31)


def test_fraction_never_above_the_16bit_one():
    rel = format_speedups({"gemm_compute": 0.5, "gemm_compute@fp4": 0.45}, B300)
    # a device whose FP4 peak is only 2x BF16 would need 1.4 of its FP4 peak: capped at 0.5
    assert format_fractions(rel, {"bf16": 1000.0, "fp4": 2000.0})["gemm_compute@fp4"] == 0.5


def test_fp8_block_runs_at_the_fp8_peak():
    rel = format_speedups({"gemm_compute@fp8_block": 0.6}, B300)
    assert rel["gemm_compute@fp8_block"] == pytest.approx(1.2)


def test_derive_efficiency_with_peaks():
    fits = {"b300": ("blackwell", {"gemm_compute": 0.77, "gemm_compute@fp4": 0.31}),
            "gb300": ("blackwell", {"gemm_compute": 0.77, "gemm_compute@fp4": 0.31})}  # fmt: skip
    plain, _ = fitted.derive_efficiency("blackwell", fits)
    assert plain["gemm_compute@fp4"] == 0.31
    peaks = {"b300": B300, "gb300": {"bf16": 2500.0, "fp8": 5000.0, "fp4": 15000.0}}
    eff, how = fitted.derive_efficiency("blackwell", fits, None, None, peaks, B200)
    # geometric mean of the speed-ups 0.31 x 6.222 and 0.31 x 6, over B200's ratio 4
    want = 0.31 * (14000 / 2250 * 6.0) ** 0.5 / 4.0
    assert eff["gemm_compute@fp4"] == pytest.approx(want, rel=1e-3)
    assert eff["gemm_compute"] == 0.77 and "b300" in how
    same, _ = fitted.derive_efficiency("blackwell", fits, None, None, {"b300": B300,
                                       "gb300": B300}, B300)  # fmt: skip
    assert same == plain  # equal peak ratios: the rule changes nothing


def test_shipped_blackwell_fp4_not_slower_than_fp8():
    for name in ("b200", "gb200"):
        hw = load_hardware(name)
        e = dict(hw.efficiency)
        fp4 = e["gemm_compute@fp4"] * hw.peak_flops("fp4")
        fp8 = e["gemm_compute@fp8"] * hw.peak_flops("fp8")
        assert fp4 > 1.3 * fp8, name


def test_trtllm_fuses_activation_quantisation():
    hw = load_hardware("h100-sxm")
    assert dict(hw.efficiency)["gemm_quant_memory@fp8"] > 0
    trt = hw.for_engine("trtllm@1.0")
    assert all(v == 0.0 for k, v in trt.efficiency if k.startswith("gemm_quant_memory"))
    assert dict(hw.for_engine("vllm").efficiency)["gemm_quant_memory@fp8"] > 0
    assert fused_efficiency("sglang", ["gemm_quant_memory@fp8"]) == {}
    assert describe(engine_kernels("trtllm", hw, 1.0))["quant_fused"] is True
    assert describe(engine_kernels("vllm", hw, 1.0))["quant_fused"] is False


def test_fused_gemm_saves_exactly_the_quant_pass():
    hw = load_hardware("h100-sxm")
    e = dict(hw.efficiency)
    frac, launch = e["gemm_quant_memory@fp8"], e["gemm_quant_launch_s@fp8"]
    fused = dataclasses.replace(hw, efficiency=tuple(
        (k, 0.0 if k.startswith("gemm_quant_memory") else v) for k, v in hw.efficiency))  # fmt: skip
    dt = DTypes("fp8", "fp8", "fp8")
    m, n, k = 512, 8192, 8192
    saved = gemm_time(hw, m, n, k, dt).seconds - gemm_time(fused, m, n, k, dt).seconds
    # read 16-bit activations, write 8-bit ones, at the pass's bandwidth, plus its launch
    assert saved == pytest.approx(m * k * 3.0 / (hw.memory_bw * frac) + launch, rel=1e-9)
