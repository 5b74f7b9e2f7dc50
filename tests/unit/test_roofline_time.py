"""Time of one operator (cost/roofline.py): roofline limits, bounds, fixed costs, quantisation."""

from __future__ import annotations

import dataclasses
import math

import pytest

from servesim.cost import roofline
from servesim.specs.dtypes import DTypes
from servesim.specs.hardware import EFFICIENCY_DEFAULTS, HardwareSpec

BF16 = DTypes("bf16", "bf16", "bf16")


def make_hw(**eff: float) -> HardwareSpec:
    """A made-up device: 1000 TFLOP/s bf16, 4000 GB/s, 8 per NVLink domain at 400 GB/s."""
    return HardwareSpec(
        name="test-gpu", display_name="Test GPU", vendor="other",
        tflops=(("bf16", 1000.0), ("fp8", 2000.0)), memory_GB=80.0, memory_bw_GBps=4000.0,
        scaleup_devices=8, scaleup_bw_GBps=400.0, scaleup_latency_us=2.0,
        scaleout_bw_GBps=50.0, scaleout_latency_us=5.0, devices_per_node=8,
        tdp_W=700.0, idle_W=80.0, host_W_per_node=4000.0, overhead_s=0.002,
        efficiency=tuple(sorted(eff.items())),
    )  # fmt: skip


def test_gemm_time_small_m_is_weight_bytes_over_bandwidth():
    hw = make_hw(gemm_memory=0.8, gemm_launch_s=1e-9)
    k = n = 8192
    t = roofline.gemm_time(hw, 1, n, k, BF16)
    weight_s = k * n * 2 / (4000e9 * 0.8)
    assert t.bound == "memory"
    assert t.seconds == pytest.approx(weight_s, rel=0.01)


def test_gemm_time_large_m_is_flops_over_peak():
    hw = make_hw(gemm_compute=0.7, gemm_launch_s=1e-9)  # no unit count: no wave quantisation
    m, n, k = 32768, 8192, 8192
    t = roofline.gemm_time(hw, m, n, k, BF16)
    flops_s = 2 * m * n * k / (1000e12 * 0.7)
    assert t.bound == "compute"
    assert t.seconds == pytest.approx(flops_s, rel=0.01)


def test_gemm_time_bound_switches_at_ridge_point():
    hw = make_hw()
    bounds = [roofline.gemm_time(hw, m, 8192, 8192, BF16).bound for m in (1, 16, 4096, 16384)]
    assert bounds == ["memory", "memory", "compute", "compute"]


def test_gemm_time_fp8_weights_halve_memory_time():
    hw = make_hw(gemm_launch_s=1e-9)
    t16 = roofline.gemm_time(hw, 1, 8192, 8192, BF16).seconds
    t8 = roofline.gemm_time(hw, 1, 8192, 8192, DTypes("fp8", "fp8", "fp8")).seconds
    assert t8 == pytest.approx(t16 / 2, rel=0.01)


def test_gemm_time_non_decreasing_in_tokens():
    for wave, fill in ((0.5, 0.2), (0.9, 0.15), (0.1, 0.9)):
        hw = make_hw(compute_units=132.0, gemm_wave=wave, gemm_fill_wave=fill)
        for n, k in ((5120, 4096), (1280, 8192)):
            times = [roofline.gemm_time(hw, m, n, k, BF16).seconds for m in range(1, 5000, 7)]
            assert all(b >= a for a, b in zip(times, times[1:])), (wave, fill, n)


def test_gemm_time_partial_wave_costs_more_per_flop():
    hw = make_hw(compute_units=100.0, gemm_wave=1.0, gemm_launch_s=1e-9)
    k = 8192
    # 128 x 256 tiles: 100 fill one wave exactly, 101 need a second, nearly empty one
    full = roofline.gemm_time(hw, 128 * 10, 256 * 10, k, BF16).seconds
    over = roofline.gemm_time(hw, 128 * 101, 256, k, BF16).seconds
    assert over / (101 / 100) > 1.3 * full


def test_gemm_time_small_grid_leaves_units_idle():
    m, n, k = 256, 256, 65536  # compute-bound, a handful of tiles
    ideal = roofline.gemm_time(make_hw(gemm_launch_s=1e-9), m, n, k, BF16).seconds
    idle = make_hw(compute_units=132.0, gemm_wave=1.0, gemm_fill_wave=1.0, gemm_launch_s=1e-9)
    assert roofline.gemm_time(idle, m, n, k, BF16).seconds > 10 * ideal


def test_gemm_time_k_loop_cost_adds_per_element_of_k():
    k = 8192
    plain = roofline.gemm_time(make_hw(), 1, 4096, k, BF16).seconds
    looped = roofline.gemm_time(make_hw(gemm_k_s=1e-9), 1, 4096, k, BF16).seconds
    assert looped - plain == pytest.approx(k * 1e-9, rel=0.05)


def test_gemm_time_zero_rows_is_free():
    assert roofline.gemm_time(make_hw(), 0, 4096, 4096, BF16) == (0.0, "overhead")


def test_grouped_gemm_time_one_expert_equals_gemm():
    hw = make_hw(compute_units=108.0)
    assert roofline.grouped_gemm_time(hw, 64, 1, 14336, 4096, BF16) == roofline.gemm_time(
        hw, 64, 14336, 4096, BF16
    )


def test_grouped_gemm_time_reads_every_touched_expert():
    hw = make_hw(gemm_launch_s=1e-9)
    one = roofline.grouped_gemm_time(hw, 8, 1, 4096, 4096, BF16).seconds
    eight = roofline.grouped_gemm_time(hw, 8, 8, 4096, 4096, BF16).seconds
    assert eight == pytest.approx(8 * one, rel=0.02)


def test_attention_time_decode_is_kv_bytes_over_bandwidth():
    hw = make_hw(attn_memory=0.7, attn_launch_s=3e-6, attn_seq_s=1e-7)
    seqs, ctx, kv, hd, q = 64, 4096, 8, 128, 32
    bytes_ = seqs * ctx * kv * hd * 2 * 2
    flops = 4.0 * seqs * ctx * q * hd
    t = roofline.attention_time(
        hw, flops, bytes_, "decode", seqs=seqs, q_heads=q, kv_heads=kv, head_dim=hd
    )
    expect = bytes_ / (4000e9 * 0.7)
    assert t.bound == "memory"
    assert t.seconds - 3e-6 - seqs * 1e-7 == pytest.approx(expect, rel=0.02)


def test_attention_time_prefill_causal_part_at_its_own_efficiency():
    hw = make_hw(attn_compute=0.6, attn_causal=0.3, attn_row_keys=1.0, attn_prefill_launch_s=1e-9)
    c, q, hd = 8192, 32, 128
    flops = 4.0 * q * hd * c * c / 2  # no cached context: all causal
    kw = dict(seqs=1, q_heads=q, kv_heads=8, head_dim=hd)
    with_tokens = roofline.attention_time(hw, flops, 1.0, "prefill", tokens=c, **kw)
    without = roofline.attention_time(hw, flops, 1.0, "prefill", **kw)
    assert with_tokens.bound == "compute"
    assert with_tokens.seconds == pytest.approx(flops / (1000e12 * 0.3), rel=0.01)
    assert without.seconds == pytest.approx(flops / (1000e12 * 0.6), rel=0.01)


def test_attention_time_prefill_row_cost_counts_query_tokens():
    hw = make_hw(attn_compute=0.5, attn_causal=0.5, attn_row_keys=100.0, attn_prefill_launch_s=1e-9)
    q, hd = 32, 128
    kw = dict(q_heads=q, kv_heads=8, head_dim=hd)
    # two chunks of 512 new tokens, each after 4096 cached tokens
    chunks = [(512, 4096), (512, 4096)]
    pairs = sum(c * p + c * (c + 1) / 2 for c, p in chunks)
    causal = sum(c * (c + 1) / 2 for c, _ in chunks)
    flops = 4.0 * q * hd * pairs
    t = roofline.attention_time(
        hw, flops, 1.0, "prefill", seqs=2, tokens=1024, pairs=pairs, causal_pairs=causal, **kw
    )
    expect = 4.0 * q * hd * (pairs + 1024 * 100.0) / (1000e12 * 0.5)
    assert t.seconds == pytest.approx(expect, rel=0.01)


def test_attention_time_prefill_causal_never_faster_than_context():
    kw = dict(seqs=1, q_heads=32, kv_heads=8, head_dim=128, tokens=4096)
    flops = 4.0 * 32 * 128 * 4096 * 4097 / 2
    fast_causal = make_hw(attn_compute=0.4, attn_causal=0.9, attn_row_keys=1.0)
    same = make_hw(attn_compute=0.4, attn_causal=0.4, attn_row_keys=1.0)
    t_fast = roofline.attention_time(fast_causal, flops, 1.0, "prefill", **kw).seconds
    assert t_fast == pytest.approx(
        roofline.attention_time(same, flops, 1.0, "prefill", **kw).seconds
    )


def test_num_splits_follows_flash_attention_heuristic():
    # 13 and 14 sequences x 4 KV heads on 132 SMs, 14 key tiles (hand-computed with
    # flash_api.cpp's num_splits_heuristic): 5 splits (2 waves of 3 tiles), then 2 (1 wave of 7)
    assert roofline._num_splits(52, 132, 14) == 5
    assert roofline._num_splits(56, 132, 14) == 2
    assert roofline._num_splits(132, 132, 14) == 1  # nearly fills the SMs: no split


def test_attention_time_decode_split_adds_combining_kernel():
    hw = make_hw(compute_units=132.0, attn_wave=0.5, attn_split_s=1e-3, attn_memory=0.7)
    kw = dict(q_heads=32, kv_heads=8, head_dim=128)

    def t(seqs, ctx):
        flops, bytes_ = 4.0 * seqs * ctx * 32 * 128, seqs * ctx * 8 * 128 * 4.0
        return roofline.attention_time(hw, flops, bytes_, "decode", seqs=seqs, **kw).seconds

    assert t(2, 4096) > 1e-3  # 16 blocks on 132 SMs: keys split, a combining kernel follows
    assert t(64, 4096) < 1e-3  # 512 blocks fill the SMs: no split


def test_attention_time_decode_partial_wave_costs_more_per_byte():
    hw = make_hw(compute_units=100.0, attn_wave=1.0, attn_launch_s=1e-9, attn_seq_s=0.0)
    kw = dict(q_heads=8, kv_heads=1, head_dim=128)

    def per_seq(seqs):
        ctx = 8192
        flops, bytes_ = 4.0 * seqs * ctx * 8 * 128, seqs * ctx * 128 * 4.0
        return roofline.attention_time(hw, flops, bytes_, "decode", seqs=seqs, **kw).seconds / seqs

    assert per_seq(101) > 1.5 * per_seq(100)


def test_params_first_of_repeated_keys_wins_like_hw_eff():
    hw = make_hw(gemm_wave=0.3)
    hw = dataclasses.replace(hw, efficiency=(("gemm_wave", 0.0), *hw.efficiency))
    assert roofline.params(hw)["gemm_wave"] == hw.eff("gemm_wave") == 0.0


def test_attention_time_rejects_unknown_phase():
    with pytest.raises(ValueError):
        roofline.attention_time(
            make_hw(), 1.0, 1.0, "train", seqs=1, q_heads=1, kv_heads=1, head_dim=1
        )


def test_elementwise_time_closed_form():
    hw = make_hw(elementwise_memory=0.5, kernel_launch_s=2e-6)
    t = roofline.elementwise_time(hw, 1e9)
    assert t == (pytest.approx(1e9 / (4000e9 * 0.5) + 2e-6), "memory")


def test_smooth_max_between_max_and_sum():
    assert roofline.smooth_max(3.0, 4.0, 1.0) == pytest.approx(7.0)
    assert roofline.smooth_max(3.0, 4.0, 2.0) == pytest.approx(5.0)
    assert 4.0 <= roofline.smooth_max(3.0, 4.0, 20.0) < 4.01
    assert roofline.smooth_max(0.0, 0.0, 2.0) == 0.0


def test_default_efficiencies_give_finite_times_on_an_unprofiled_device():
    hw = make_hw()  # no efficiency block: every key from EFFICIENCY_DEFAULTS
    assert hw.eff("compute_units") == EFFICIENCY_DEFAULTS["compute_units"][0]
    times = [
        roofline.gemm_time(hw, 512, 4096, 4096, BF16).seconds,
        roofline.grouped_gemm_time(hw, 512, 16, 1024, 4096, BF16).seconds,
        roofline.attention_time(
            hw, 1e12, 1e9, "prefill", seqs=2, q_heads=32, kv_heads=8, head_dim=128, tokens=4096
        ).seconds,  # fmt: skip
        roofline.attention_time(
            hw, 1e9, 1e9, "decode", seqs=64, q_heads=32, kv_heads=8, head_dim=128
        ).seconds,
        roofline.elementwise_time(hw, 1e6).seconds,
    ]
    assert all(math.isfinite(t) and t > 0 for t in times)


def test_gemm_time_zero_overlap_scale_is_plain_roofline_max():
    hw = make_hw(gemm_overlap_s=0.0, gemm_launch_s=0.0, gemm_compute=1.0, gemm_memory=1.0)
    m, n, k = 1000, 4096, 4096  # at the ridge: compute and memory time about equal
    flops_s = 2 * m * n * k / 1000e12
    bytes_s = (k * n + m * (k + n)) * 2 / 4000e9
    assert roofline.gemm_time(hw, m, n, k, BF16).seconds == pytest.approx(max(flops_s, bytes_s))
