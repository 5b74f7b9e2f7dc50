"""Kernel formulas the calibration fits (issue 10): NCCL's ring latency inside a scale-up domain,
the custom one-shot/two-shot all-reduce with the profile's own keys, the MoE kernel as step.py
charges it (element-wise ops, other EP ranks' rows), per-engine overlays that must help, and the
derivation of collectives and siblings for devices nobody profiled. Hand-computed values."""

from __future__ import annotations

import dataclasses
import math

import pytest

from servesim.cost import aic, comm, fitted, roofline
from servesim.cost.calibrate import Sample, with_efficiency
from servesim.specs.dtypes import DTypes
from servesim.specs.engines import engine_kernels
from servesim.specs.hardware import load_hardware

BF16 = DTypes("bf16", "bf16", "bf16")


def _hw(**eff):
    bare = dataclasses.replace(load_hardware("h100-sxm"), efficiency=(), engines=(), intervals=())
    return with_efficiency(bare, eff)


def test_nccl_all_reduce_is_a_ring_of_fitted_hops_inside_a_domain():
    hw = _hw(comm_scaleup=0.5, comm_launch_s=5e-6, comm_hop_s=1e-6)
    bw = hw.scaleup_bw_GBps * 1e9 * 0.5
    # 4 GPUs, eager: 2(n-1)/n bytes over the link + 2(n-1) hops + the launch
    want = 2 * 3 / 4 * 1e6 / bw + 2 * 3 * 1e-6 + 5e-6
    assert comm.allreduce_time(hw, 1e6, 4) == pytest.approx(want, rel=1e-12)
    # unfitted (comm_hop_s 0): the datasheet latency over min(ring, tree) hops, as before
    old = _hw(comm_scaleup=0.5, comm_launch_s=5e-6)
    lat = hw.scaleup_latency_us * 1e-6
    want = 2 * 7 / 8 * 1e6 / bw + 2 * 3 * lat + 5e-6
    assert comm.allreduce_time(old, 1e6, 8) == pytest.approx(want, rel=1e-12)


CAR = dict(car_base_s=3e-6, car_peer_s=2e-7, car_scaleup=0.6, car_eager_s=2e-5)


def test_custom_all_reduce_one_shot_small_two_shot_large_nccl_above_the_cap():
    hw = _hw(**CAR, comm_scaleup=0.7, comm_graph_launch_s=1e-6, comm_hop_s=1e-6)
    bw = hw.scaleup_bw_GBps * 1e9 * 0.6

    def one(s, n):
        return 3e-6 + (n - 1) * 2e-7 + (n - 1) * s / bw

    def two(s, n):
        return 2 * (3e-6 + (n - 1) * 2e-7) + 2 * (n - 1) / n * s / bw

    small, large = 16e3, 4e6
    assert one(small, 8) < two(small, 8) and two(large, 8) < one(large, 8)
    assert comm.fitted_custom_allreduce_time(hw, small, 8, True) == pytest.approx(one(small, 8))
    assert comm.fitted_custom_allreduce_time(hw, large, 8, True) == pytest.approx(two(large, 8))
    # an eager call adds its host cost; above 8 MiB the engines hand over to NCCL
    eager = comm.fitted_custom_allreduce_time(hw, small, 8, False)
    assert eager == pytest.approx(one(small, 8) + 2e-5)
    big = 64 * 2**20
    assert comm.fitted_custom_allreduce_time(hw, big, 8, True) == comm.allreduce_time(
        hw, big, 8, graph=True
    )


def test_tp_all_reduce_uses_the_profiles_fit_else_the_engines_constants():
    eng = engine_kernels("vllm", load_hardware("h100-sxm"), 2.0)
    fitted_hw, plain = _hw(**CAR), _hw()
    msg = 64e3
    mine = comm.custom_allreduce_time(fitted_hw, msg, 4, 3e-6, 2e-7, 0.6)
    assert comm.tp_allreduce_time(fitted_hw, msg, 4, eng) == pytest.approx(mine)
    theirs = comm.custom_allreduce_time(plain, msg, 4, eng.ar_base_s, eng.ar_peer_s, eng.ar_bw_eff)
    assert comm.tp_allreduce_time(plain, msg, 4, eng) == pytest.approx(theirs)


def test_moe_kernel_is_what_step_charges_plus_other_ranks_rows():
    hw = _hw(elementwise_memory=0.5, kernel_launch_s=2e-6)
    tokens, hidden, inter, experts, topk, ep = 4096, 2048, 768, 128, 8, 8
    call = ("bf16", tokens, hidden, inter, experts, topk, ep, 0.0, True)
    base = aic.moe_time(hw, call)
    slow = math.ceil(tokens * topk / ep)
    touched = aic.expected_distinct_experts(experts, topk, tokens) / ep
    gemms = (roofline.grouped_gemm_time(hw, slow, touched, 2 * inter, hidden, BF16).seconds
             + roofline.grouped_gemm_time(hw, slow, touched, hidden, inter, BF16).seconds)  # fmt: skip
    bw = hw.memory_bw * 0.5
    side = (tokens * (experts * 4 + topk * 8) + slow * 2 * hidden * 2 + slow * (3 * inter * 2)
            + slow * hidden * 2 * (1 + 1 / topk)) / bw + 4 * 2e-6  # fmt: skip
    assert base == pytest.approx(gemms + side, rel=1e-9)
    # vLLM/SGLang-style kernels pass over the other ranks' routed rows too
    passes = with_efficiency(hw, {"moe_token_passes": 2.0})
    extra = 2.0 * (tokens * topk - slow) * hidden * 2 / bw
    assert aic.moe_time(passes, call) - base == pytest.approx(extra, rel=1e-9)
    one_rank = ("bf16", tokens, hidden, inter, experts, topk, 1, 0.0, True)
    assert aic.moe_time(passes, one_rank) == aic.moe_time(hw, one_rank)  # no other ranks
    # per format: an fp8 value leaves bf16 alone
    fp8_only = with_efficiency(hw, {"moe_token_passes@fp8": 2.0})
    assert aic.moe_time(fp8_only, call) == base


def test_engine_overlay_keeps_only_groups_that_help():
    hw = _hw()
    rows = [s for m in (1, 16, 256, 4096) for n, k in ((4096, 4096), (8192, 2048))
            if (s := aic._gemm({"gemm_dtype": "bfloat16", "m": m, "n": n, "k": k,
                                "system": "h100_sxm", "backend": "vllm", "latency_ms": 1.0}))]  # fmt: skip
    truth = [s._replace(measured_s=aic.predict(hw, s)) for s in rows]
    kept = fitted._helpful(hw, {"gemm_compute": 0.3}, {"gemm.bf16": truth})
    assert kept == {}  # the rows say the base is right: the overlay would only hurt
    slow = [s._replace(measured_s=aic.predict(with_efficiency(hw, {"gemm_compute": 0.3}), s))
            for s in rows]  # fmt: skip
    assert fitted._helpful(hw, {"gemm_compute": 0.3}, {"gemm.bf16": slow}) == {"gemm_compute": 0.3}


def test_derived_collectives_come_from_nvlink_devices_and_siblings_shrink():
    fits = {
        "nv_old": ("hopper", {"car_scaleup": 0.6, "gemm_compute": 0.8}),
        "pcie_new": ("blackwell", {"car_scaleup": 0.1, "gemm_compute": 0.4}),
    }
    links = {"nv_old": "NVLink 4 via NVSwitch", "pcie_new": "PCIe Gen5 x16 (no NVLink)"}
    mem = {"nv_old": "HBM3", "pcie_new": "GDDR7"}
    eff, how = fitted.derive_efficiency(
        "blackwell", fits, "HBM3e", mem, link="NVLink 5", links=links, shrink=True
    )
    assert eff["car_scaleup"] == 0.6  # an NVLink all-reduce is not derived from a PCIe one
    # one GDDR sibling for an HBM part: half its value, half the mean over every device
    both = math.sqrt(0.8 * 0.4)
    assert eff["gemm_compute"] == pytest.approx(math.sqrt(0.4 * both), rel=1e-3)
    assert "weight 0.5" in how
    # a PCIe target derives its collectives from every device; a same-class sibling: no shrink
    eff, _ = fitted.derive_efficiency("blackwell", fits, "GDDR7", mem, link="PCIe Gen5",
                                      links=links, shrink=True)  # fmt: skip
    assert eff["car_scaleup"] == 0.1 and eff["gemm_compute"] == 0.4


def test_derived_link_keys_prefer_the_generations_nvlink_devices():
    fits = {"h100": ("hopper", {"comm_hop_s": 1e-6}), "a100": ("ampere", {"comm_hop_s": 4e-6})}
    links = {"h100": "NVLink 4", "a100": "NVLink 3"}
    eff, _ = fitted.derive_efficiency("hopper", fits, link="NVLink 4", links=links)
    assert eff["comm_hop_s"] == 1e-6
    eff, _ = fitted.derive_efficiency("blackwell", fits, link="NVLink 5", links=links)
    assert eff["comm_hop_s"] == pytest.approx(2e-6, rel=1e-3)


def test_moe_rows_map_the_same_for_every_engine():
    # the MoE call carries no engine: a row's mapping is the same for every engine
    s = aic._moe({"moe_dtype": "bfloat16", "hidden_size": 2048, "inter_size": 768,
                  "num_experts": 128, "topk": 8, "moe_tp_size": 1, "moe_ep_size": 4,
                  "num_tokens": 64, "kernel_source": "x", "power_law_alpha": 0.0,
                  "system": "h100_sxm", "backend": "sglang", "latency_ms": 0.1})  # fmt: skip
    assert isinstance(s, Sample) and s.call == ("bf16", 64, 2048, 768, 128, 8, 4, 0.0, True)


def test_step_unpermute_pays_the_other_ranks_rows_with_ep_only():
    from servesim.cost.step import Aggregates, CostContext, breakdown
    from servesim.specs.config import Parallelism
    from servesim.specs.model import load_model

    agg = Aggregates(decode_seqs=256, decode_ctx=256 * 1000, sampled=256)
    model = load_model("qwen3-30b-a3b")

    def unpermute(hw, comm="allgather", **par):
        # TP attention with EP experts and no all-to-all: every rank holds every token
        eng = engine_kernels("vllm", hw, 2.0)._replace(moe_comm=comm)
        ctx = CostContext(model, hw, Parallelism(**par), BF16, 0.0, 1.0, eng)
        return next(o for o in breakdown(ctx, "colocated", agg) if o.name == "moe_unpermute")

    plain, passes = _hw(elementwise_memory=0.5), _hw(elementwise_memory=0.5, moe_token_passes=2.0)
    ep_plain, ep_passes = unpermute(plain, tp=4, ep=4), unpermute(passes, tp=4, ep=4)
    # after an all-to-all (DeepEP) a rank receives only its routed rows: nothing more to pass over
    a2a = [unpermute(hw, "alltoall", tp=4, ep=4).seconds for hw in (plain, passes)]
    assert a2a[0] == a2a[1]
    k, h = model.experts_per_token, model.hidden_size
    other = 256 * k - math.ceil(256 * k / 4)  # routed rows of the other three ranks
    want = 2.0 * other * h * 2 / (plain.memory_bw * 0.5)
    assert ep_passes.seconds - ep_plain.seconds == pytest.approx(want, rel=1e-9)
    assert unpermute(passes, tp=4).seconds == unpermute(plain, tp=4).seconds  # no EP: no others


def test_fp8_moe_runs_the_block_scaled_fit_and_per_tensor_rows_score_their_own():
    fp8 = DTypes("fp8", "fp8", "bf16")
    block = {"moe_compute@fp8_block": 0.6, "moe_memory@fp8_block": 0.8}
    tensor = {"moe_compute@fp8": 0.2, "moe_memory@fp8": 0.3}
    both, only_block, only_tensor = _hw(**block, **tensor), _hw(**block), _hw(**tensor)
    args = (4096, 16, 2048, 7168)
    t = roofline.grouped_gemm_time(both, *args, fp8).seconds
    assert t == roofline.grouped_gemm_time(only_block, *args, fp8).seconds
    assert t < roofline.grouped_gemm_time(only_tensor, *args, fp8).seconds
    # an aiconfigurator per-tensor fp8 row is predicted with the @fp8 keys, a block row with its own
    row = ("fp8", 4096, 2048, 768, 128, 8, 1, 0.0, True)
    s = Sample("moe.fp8", "g", (), "h100_sxm/vllm", 1e-3, row)
    assert aic.predict(both, s) == aic.predict(only_tensor, s)
    blk = s._replace(family="moe.fp8_block", call=("fp8_block", *row[1:]))
    assert aic.predict(both, blk) == aic.predict(only_block, blk)
