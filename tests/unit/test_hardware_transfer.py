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
    eff, how = fitted.derive_efficiency("blackwell", fits, tflops=peaks, target_tflops=B200)
    # geometric mean of the speed-ups 0.31 x 6.222 and 0.31 x 6, over B200's ratio 4
    want = 0.31 * (14000 / 2250 * 6.0) ** 0.5 / 4.0
    assert eff["gemm_compute@fp4"] == pytest.approx(want, rel=1e-3)
    assert eff["gemm_compute"] == 0.77 and "b300" in how
    same, _ = fitted.derive_efficiency(
        "blackwell", fits, tflops={"b300": B300, "gb300": B300}, target_tflops=B300
    )
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
    e = dict(hw.efficiency)
    assert e["gemm_quant_memory@fp8"] > 0
    trt = dict(hw.for_engine("trtllm@1.0").efficiency)
    overlay = {**e, **dict(dict(hw.engines)["trtllm"])}  # the engine's effective keys
    q, elem = overlay["gemm_quant_memory@fp8"], e["elementwise_memory"]
    # what remains of the fitted pass once a separate element-wise kernel is removed
    assert 1 / trt["gemm_quant_memory@fp8"] == pytest.approx(1 / q - 1 / elem)
    assert trt["gemm_quant_launch_s@fp8"] == pytest.approx(
        overlay["gemm_quant_launch_s@fp8"] - e["kernel_launch_s"])  # fmt: skip
    assert dict(hw.for_engine("vllm").efficiency)["gemm_quant_memory@fp8"] > 0
    assert fused_efficiency("sglang", {"gemm_quant_memory@fp8": 0.4}) == {}
    # a fitted pass no slower than an element-wise kernel is removed entirely
    gone = fused_efficiency("trtllm", {"gemm_quant_memory@fp4": 0.7, "elementwise_memory": 0.6})
    assert gone["gemm_quant_memory@fp4"] == 0.0
    assert describe(engine_kernels("trtllm", hw, 1.0))["quant_fused"] is True
    assert describe(engine_kernels("vllm", hw, 1.0))["quant_fused"] is False


def test_fused_gemm_saves_one_elementwise_pass():
    hw = load_hardware("h100-sxm")
    trt = hw.for_engine("trtllm")
    # the same spec with the fitted (unfused) quantisation pass of the trtllm overlay restored
    keys = {**dict(hw.efficiency), **dict(dict(hw.engines)["trtllm"])}
    fitted_pass = {k: v for k, v in keys.items() if k.startswith("gemm_quant")}
    unfused = dataclasses.replace(
        trt, efficiency=tuple((dict(trt.efficiency) | fitted_pass).items())
    )
    e = dict(hw.efficiency)
    dt = DTypes("fp8", "fp8", "fp8")
    m, n, k = 512, 8192, 8192
    saved = gemm_time(unfused, m, n, k, dt).seconds - gemm_time(trt, m, n, k, dt).seconds
    # read 16-bit activations, write 8-bit ones at element-wise bandwidth, plus one launch
    want = m * k * 3.0 / (hw.memory_bw * e["elementwise_memory"]) + e["kernel_launch_s"]
    assert saved == pytest.approx(want, rel=1e-9)


def _ctx(engine: str):
    from servesim.cost.step import CostContext
    from servesim.specs.config import Parallelism
    from servesim.specs.model import load_model

    hw = load_hardware("h100-sxm").for_engine(engine)
    dt = DTypes("bf16", "bf16", "bf16")
    return CostContext(load_model("llama-3.1-8b"), hw, Parallelism(tp=1), dt, 0.002, 1.0,
                       engine_kernels(engine, hw, 2.0))  # fmt: skip


def test_overlap_scheduler_hides_host_time_behind_the_gpu():
    from servesim.analysis import batch_aggregates
    from servesim.cost.step import step_cost

    assert engine_kernels("trtllm@1.0", load_hardware("h100-sxm"), 2).host_overlap
    assert not engine_kernels("trtllm@0.5", load_hardware("h100-sxm"), 2).host_overlap
    assert not engine_kernels("vllm", load_hardware("h100-sxm"), 2).host_overlap
    assert describe(engine_kernels("sglang", load_hardware("h100-sxm"), 2))["host_overlap"]
    agg = batch_aggregates((), [(64, 1000)])
    old, new = (
        step_cost(_ctx("trtllm@0.5"), "colocated", agg),
        step_cost(_ctx("trtllm@1.3"), "colocated", agg),
    )
    # same kernels; the 2 ms of host time runs under a GPU step longer than it
    gpu = old.seconds - 0.002
    assert gpu > 0.002
    assert new.seconds == pytest.approx(gpu, rel=1e-12)
    assert new.overhead_s == pytest.approx(old.overhead_s - 0.002, abs=1e-12)


def test_overlapped_step_is_the_longer_of_gpu_and_host():
    from servesim.cost.step import StepCost, _hide_host

    fields = dict.fromkeys(StepCost._fields, 0.0)
    for gpu in (0.0005, 0.002, 0.01):
        res = StepCost(**{**fields, "seconds": gpu + 0.002, "overhead_s": 0.002})
        assert _hide_host(res, 0.002).seconds == pytest.approx(max(gpu, 0.002))


def test_trtllm_all_reduce_stays_one_shot_to_two_mib():
    from servesim.cost import comm

    # the engine's own constants apply on a profile without a custom-all-reduce fit (car_*);
    # a profile with one uses its fit, fitted as the faster of one-shot and two-shot
    full = load_hardware("h100-sxm")
    keep = tuple((k, v) for k, v in full.efficiency if not k.startswith("car_"))
    hw = dataclasses.replace(full, efficiency=keep, engines=())
    k = engine_kernels("trtllm", hw, 2.0)
    assert k.ar_oneshot_max_bytes == 2 * 2**20
    bw = hw.scaleup_bw_GBps * 1e9 * k.ar_bw_eff
    sync = k.ar_base_s + 7 * k.ar_peer_s
    one = sync + 7 * 2**20 / bw  # 1 MiB on 8 GPUs: every device reads 7 peers' buffers
    assert comm.tp_allreduce_time(hw, 2**20, 8, k) == pytest.approx(one)
    two = 2 * sync + 2 * 7 / 8 * 4 * 2**20 / bw
    assert comm.tp_allreduce_time(hw, 4 * 2**20, 8, k) == pytest.approx(two)
    v = engine_kernels("vllm", hw, 2.0)  # vLLM: the faster of the two at every size
    assert v.ar_oneshot_max_bytes == 0.0
    vb = hw.scaleup_bw_GBps * 1e9 * v.ar_bw_eff
    vs = v.ar_base_s + 7 * v.ar_peer_s
    want = min(vs + 7 * 2**20 / vb, 2 * vs + 2 * 7 / 8 * 2**20 / vb)
    assert comm.tp_allreduce_time(hw, 2**20, 8, v) == pytest.approx(want)


def test_speedup_transfer_beats_fraction_transfer_on_held_out_blackwell(shared_data):
    """B300 held out, derived from RTX PRO 6000 (FP4 peak 4x BF16 where B300's is 6x): its NVFP4
    GEMM rows are closer with the speed-up transfer (docs/catalog.md)."""
    import numpy as np

    from servesim.cost.calibrate import with_efficiency

    folder = shared_data / "measured" / "aiconfigurator"
    if not (folder / "gemm.csv.gz").exists():
        pytest.skip(f"{folder}/gemm.csv.gz not present")
    rows = fitted.load(folder, ["b300_sxm"], per_stratum=2, kinds=["gemm"], seed=2)["gemm.fp4"]
    src = load_hardware("rtx-pro-6000")
    pool = {"rtx": ("blackwell", dict(src.efficiency))}
    bare = dataclasses.replace(load_hardware("b300"), efficiency=(), engines=(), intervals=())
    peaks = {"rtx": dict(src.tflops)}, dict(bare.tflops)
    mape = []
    for args in ((None, None), peaks):
        eff, _ = fitted.derive_efficiency("blackwell", pool, tflops=args[0], target_tflops=args[1])
        r = fitted.ratios(with_efficiency(bare, eff), rows)
        mape.append(float(np.mean(np.abs(1.0 / r - 1.0))))
    assert mape[1] < mape[0] - 0.02, mape  # 2 rows per stratum: about 0.31 -> 0.26
