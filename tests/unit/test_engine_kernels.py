"""Engine profiles reach the cost model; serving-size all-reduce; MoE communication layouts."""

from __future__ import annotations

import dataclasses
import functools
import math

import pytest
from servesim.bench import bench

from servesim.cost import comm, roofline
from servesim.cost.step import Aggregates, CostContext, breakdown, step_cost
from servesim.specs.common import SpecError
from servesim.specs.config import Parallelism, load_config
from servesim.specs.dtypes import DTypes
from servesim.specs.engines import engine_kernels, split_engine
from servesim.specs.hardware import load_hardware
from servesim.specs.model import load_model

H100 = load_hardware("h100-sxm")
BF16 = DTypes("bf16", "bf16", "bf16")
FP8 = DTypes("fp8", "fp8", "fp8")


# H100 as a profile without per-engine calibration: the engines' relative kernel factors apply
H100_ONE_FIT = dataclasses.replace(H100, engines=())


def _ctx(model: str, engine: str | None, dt=BF16, hw=H100_ONE_FIT, **par) -> CostContext:
    kv = 1.0 if dt.kv_cache == "fp8" else 2.0
    return CostContext(
        load_model(model), hw, Parallelism(**par), dt, 0.0, 1.0, engine_kernels(engine, hw, kv)
    )


@functools.lru_cache(maxsize=1)
def _moe_table(root):
    """aiconfigurator's H100 TensorRT-LLM fused-MoE rows (read once for the tests below)."""
    import pandas as pd

    d = pd.read_csv(root / "measured" / "aiconfigurator" / "moe.csv.gz")
    return d[(d.system == "h100_sxm") & (d.backend == "trtllm")]


def _ops(ctx, agg):
    return {o.name: o for o in breakdown(ctx, "colocated", agg)}


def test_version_syntax_and_errors():
    assert split_engine("vllm@0.24", "x", "engine") == ("vllm", "0.24")
    assert split_engine("trtllm", "x", "engine")[0] == "trtllm"
    with pytest.raises(SpecError, match="must be one of"):
        split_engine("tgi", "x", "engine")
    with pytest.raises(SpecError, match="start at"):
        split_engine("vllm@0.1", "x", "engine")
    # vLLM V0 ran prefill steps eagerly; V1 captures piecewise graphs around attention
    assert engine_kernels("vllm@0.6", H100, 2).mixed_graph == "none"
    assert engine_kernels("vllm@0.24", H100, 2).mixed_graph == "piecewise"


def test_pool_engine_key_is_an_alias_and_explicit_keys_win():
    base = {
        "model": "llama-3.1-8b",
        "deployment": {"pools": [{"hardware": "h100-sxm", "engine": "trtllm@1.0"}]},
        "workload": {
            "clients": {"concurrency": 1},
            "num_requests": 2,
            "lengths": {"input": 8, "output": 4},
        },
    }
    pool = load_config(base).deployment.pools[0]
    assert pool.scheduler.engine == "trtllm@1.0" and pool.scheduler.policy == "orca"
    base["deployment"]["pools"][0]["scheduler"] = {"max_num_seqs": 7}
    assert load_config(base).deployment.pools[0].scheduler.max_num_seqs == 7
    base["deployment"]["pools"][0]["scheduler"] = {"engine": "vllm"}
    with pytest.raises(SpecError, match="differs from scheduler.engine"):
        load_config(base)


def test_engines_choose_kernels_that_change_the_step():
    # Llama-3.1-8B, 64 decodes at 4k context, FP8 KV on H100: TensorRT-LLM's XQA reads FP8 KV
    # 1.5x faster than FlashAttention-3 (aiconfigurator medians), and fuses RoPE into attention
    agg = Aggregates(decode_seqs=64, decode_ctx=64 * 4096, sampled=64)
    v, t = _ctx("llama-3.1-8b", "vllm", FP8), _ctx("llama-3.1-8b", "trtllm", FP8)
    ov, ot = _ops(v, agg), _ops(t, agg)
    assert "rope" in ov and "rope" not in ot
    assert ot["attn_decode"].seconds == pytest.approx(ov["attn_decode"].seconds * 0.665)
    assert step_cost(t, "colocated", agg).seconds < step_cost(v, "colocated", agg).seconds
    # no engine: the neutral kernel model, bit for bit what a vLLM profile computes for attention
    n = _ops(_ctx("llama-3.1-8b", None, FP8), agg)
    assert n["attn_decode"].seconds == ov["attn_decode"].seconds
    # a profile calibrated on each engine's own kernels (`engines:` overlays) holds the attention
    # factors; the MoE factor stays for a weight format the profile has no fused-MoE keys for
    # (MXFP4 on Hopper: aiconfigurator has no FP4 MoE rows there) ...
    k = engine_kernels("trtllm", H100, 1.0, 0.5)
    assert k.attn_decode_scale == 1.0 and k.attn_prefill_scale == 1.0
    assert k.moe_scale == pytest.approx(1.54) and "mxfp4" in k.moe_kernel
    assert engine_kernels("trtllm", H100, 1.0, 1.0).moe_scale == 1.0  # FP8 MoE keys fitted
    # Blackwell: NVFP4 (4-bit x 4-bit) has fitted (derived) FP4 MoE keys; GPT-OSS's
    # MXFP4 x MXFP8 is another kernel, with no keys: its measured factor
    b200 = load_hardware("b200")
    assert engine_kernels("trtllm", b200, 1.0, 0.5, 0.5).moe_scale == 1.0
    w4a8 = engine_kernels("trtllm", b200, 1.0, 0.5, 1.0)
    assert w4a8.moe_scale == pytest.approx(0.82) and "mxfp8" in w4a8.moe_kernel
    # ... unless the profile (or the overlay) fits the fused MoE itself: no double count
    fitted = dataclasses.replace(H100, efficiency=(*H100.efficiency, ("moe_compute@fp4", 0.5)))
    assert engine_kernels("trtllm", fitted, 1.0, 0.5).moe_scale == 1.0


def test_moe_kernel_factor_reproduces_measured_fused_moe(shared_data):
    # TensorRT-LLM's Triton MXFP4 MoE on H100 (GPT-OSS-20B shape: 32 experts, top 4, 2880 wide)
    # from aiconfigurator's table: the engine factor on servesim's routed-expert operators gives
    # the measured latency within 15% at every batch from 8 routed rows per expert up
    d = _moe_table(shared_data)
    d = d[(d.system == "h100_sxm") & (d.backend == "trtllm") & (d.moe_dtype == "w4a16_mxfp4")]
    d = d[(d.distribution == "balanced") & (d.num_experts == 32) & (d.moe_ep_size == 1)]
    d = d[(d.moe_tp_size == 1) & (d.num_tokens >= 64)]
    assert len(d) >= 10
    m = load_model("gpt-oss-20b")
    hw = H100.for_engine("trtllm")
    eng = engine_kernels("trtllm", hw, 2.0, 0.5)
    ctx = CostContext(m, hw, Parallelism(), DTypes("fp4", "bf16", "bf16"), 0.0, 1.0, eng)
    names = ("moe_permute", "moe_experts_gate_up", "moe_act", "moe_experts_down", "moe_unpermute")
    errs = []
    for r in d.itertuples():
        ops = _ops(ctx, Aggregates(decode_seqs=r.num_tokens, decode_ctx=r.num_tokens, sampled=1))
        model_ms = sum(ops[n].seconds for n in names) * 1e3
        errs.append(model_ms / r.latency_ms - 1)
    errs.sort()
    assert abs(errs[len(errs) // 2]) < 0.1 and max(abs(e) for e in errs) < 0.3


def test_bench_engine_flag_changes_results_for_the_right_reasons():
    kw = dict(model="llama-3.1-8b", hw="h100-sxm", tp=2, num_prompts=64,
              random_input_len=512, random_output_len=64)  # fmt: skip
    res = {e: bench(engine=e, **kw) for e in ("vllm", "sglang", "trtllm")}
    tpots = {e: r["mean_tpot_ms"] for e, r in res.items()}
    assert len(set(tpots.values())) == 3, tpots
    ran = {e: r["servesim"]["engines"][0] for e, r in res.items()}
    assert ran["trtllm"]["attention_backend"] == "trtllm-fmha/xqa" and ran["trtllm"]["rope_fused"]
    assert ran["vllm"]["engine"].startswith("vllm@") and ran["vllm"]["mixed_step_graphs"] == (
        "piecewise"
    )
    # the engine's scheduler defaults apply under bench's embedded config too
    assert res["trtllm"]["servesim"]["pools"][0]["scheduler"] == {"engine": "trtllm"}


def test_custom_allreduce_one_shot_two_shot():
    # the engine's constants: a profile without its own custom-all-reduce fit (car_* keys)
    hw = dataclasses.replace(
        H100, efficiency=tuple(e for e in H100.efficiency if e[0][:4] != "car_")
    )
    k = engine_kernels("vllm", hw, 2)
    small = comm.tp_allreduce_time(hw, 16 * 1024, 8, k)
    # decode-size messages: a few microseconds (measured 5.3 us for vLLM TP8 16 KB on H100)
    assert 3e-6 < small < 8e-6
    # TP8 costs more than TP2 at every size, and time grows with the message
    for size in (8e3, 256e3, 4e6):
        assert comm.tp_allreduce_time(hw, size, 8, k) > comm.tp_allreduce_time(hw, size, 2, k)
    # the minimum of the two algorithms: one-shot for small, two-shot for large messages
    bw = hw.scaleup_bw_GBps * 1e9 * k.ar_bw_eff
    big = 4e6
    two = 2 * (k.ar_base_s + 7 * k.ar_peer_s) + 2 * 7 / 8 * big / bw
    assert comm.tp_allreduce_time(hw, big, 8, k) == pytest.approx(two)
    # over the engine's size cap it is NCCL's ring
    assert comm.tp_allreduce_time(hw, 64e6, 8, k) == comm.allreduce_time(hw, 64e6, 8, graph=True)


def test_custom_allreduce_matches_measured(shared_data):
    pd = pytest.importorskip("pandas")
    path = shared_data / "measured" / "aiconfigurator" / "custom_allreduce.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} not present")
    d = pd.read_csv(path)
    for eng, impl in (("vllm", "vllm_graph"), ("sglang", "sglang_graph"), ("trtllm", "trtllm")):
        rows = d[(d.system == "h100_sxm") & (d.impl == impl) & (d.message_bytes <= 8 * 2**20)]
        k = engine_kernels(eng, H100, 2)
        hw = H100.for_engine(eng)  # what a pool with this engine runs (its calibrated overlay)
        errs = [
            abs(comm.tp_allreduce_time(hw, r.message_bytes, r.num_gpus, k) / (r.latency_ms * 1e-3) - 1)
            for r in rows.itertuples()
        ]  # fmt: skip
        assert sum(errs) / len(errs) < 0.15, (eng, sum(errs) / len(errs))


def test_dp_attention_with_tp_experts_pays_gather_and_scatter():
    # Qwen3-30B-A3B, attention DP 4, experts sharded over the 4 devices (ep 1): before this the
    # layout was charged no communication at all
    agg = Aggregates(decode_seqs=256, decode_ctx=256 * 1000, sampled=256)
    ctx = _ctx("qwen3-30b-a3b", "sglang", dp_attn=4)
    ops = _ops(ctx, agg)
    assert ops["dp_allgather"].seconds > 0 and ops["dp_reducescatter"].seconds > 0
    assert "tp_allreduce" not in ops
    h = ctx.model.hidden_size
    assert ops["dp_allgather"].bytes == 256 * h * 2  # every dp group's tokens, gathered
    # experts expert-parallel: SGLang's default still gathers (each device then runs its own
    # experts on the tokens routed to them); with DeepEP the all-to-all moves the tokens
    ops_ag = _ops(_ctx("qwen3-30b-a3b", "sglang", dp_attn=4, ep=4), agg)
    assert "ep_dispatch" not in ops_ag and ops_ag["dp_allgather"].seconds > 0
    ops_ep = _ops(_ctx("qwen3-30b-a3b", "sglang+deepep", dp_attn=4, ep=4), agg)
    assert "dp_allgather" not in ops_ep and ops_ep["ep_dispatch"].seconds > 0
    # TensorRT-LLM uses all-to-all on an NVL72-class NVLink domain (MNNVL), not on HGX H100
    gb200 = load_hardware("gb200")
    assert engine_kernels("trtllm", gb200, 1).moe_comm == "alltoall"
    assert engine_kernels("trtllm", H100, 1).moe_comm == "allgather"


def test_ep_alltoall_deduplicates_per_node():
    hw = H100
    tokens, h = 4096, 7168
    msg = tokens * h * 1.0
    # inside one node: a token goes once to each distinct device hosting one of its experts
    t8, link8 = comm.ep_alltoall(hw, msg, 8, 8)
    hit = 1 - (1 - 1 / 8) ** 8
    assert link8 == pytest.approx(msg * 7 * hit)
    # across 4 nodes (EP32): normal mode sends a token once per remote node over the NIC (plus a
    # notify round); large batches take it even where the low-latency kernels are allowed
    normal, link_n = comm.ep_alltoall(hw, msg, 32, 8)
    assert comm.ep_alltoall(hw, msg, 32, 8, low_latency=True)[0] == normal
    dom_hit = 1 - (1 - 1 / 4) ** 8
    nic = msg * 3 * dom_hit / (hw.scaleout_bw_GBps * 1e9 * 0.70)
    assert normal >= nic + 2 * hw.scaleout_latency_us * 1e-6
    # a tiny decode batch (2 tokens per rank): direct sends skip the notify round and win
    # (and need no NVLink forwarding at the destination)
    small = 2 * h * 1.0
    n_small, bytes_n = comm.ep_alltoall(hw, small, 32, 8)
    l_small, bytes_l = comm.ep_alltoall(hw, small, 32, 8, low_latency=True)
    assert l_small < n_small and bytes_l > 0 and bytes_n > 0
    assert math.isfinite(normal) and link_n > 0


def test_planner_and_matrix_apply_the_engine():
    from servesim.bench import matrix_points

    import servesim

    res = servesim.plan(
        "llama-3.1-8b", rate=2.0, isl=256, osl=32, max_sims=1, engine="trtllm",
        slo={"ttft_ms": {"p90": 2000}},
    )  # fmt: skip
    text = str(res.to_dict())
    assert "'engine': 'trtllm'" in text
    common, _ = matrix_points(
        {"prefix": "m", "engine": "sglang", "tp": [1], "isl_osl": [[128, 16]], "conc": [2]}
    )
    assert common["engine"] == "sglang"  # passed to every point's bench run


def test_two_batch_overlap_hides_communication():
    # DeepSeek-V3 prefill, 16 GPUs over two H100 nodes (EP16, attention DP 16): the all-to-all
    # crosses the NIC; two micro-batches hide it under the other's compute
    n = 32 * 4096
    agg = Aggregates(prefill_tokens=n, prefill_seqs=32, prefill_attn=32 * 4096 * 4097 // 2,
                     sampled=32)  # fmt: skip
    plain = _ctx("deepseek-v3", "sglang", FP8, dp_attn=16, ep=16)
    tbo = _ctx("deepseek-v3", "sglang+tbo", FP8, dp_attn=16, ep=16)
    a, b = step_cost(plain, "colocated", agg), step_cost(tbo, "colocated", agg)
    assert a.comm_s > 0 and b.seconds < a.seconds
    # never better than the busier of the two parts run back to back with nothing exposed
    assert b.seconds >= max(b.compute_s + b.memory_s, a.comm_s)
    # memory-bound decode reads the weights once per micro-batch: overlap can cost more there
    dec = Aggregates(decode_seqs=512, decode_ctx=512 * 2000, sampled=512)
    assert step_cost(tbo, "colocated", dec).memory_s > step_cost(plain, "colocated", dec).memory_s
    with pytest.raises(SpecError, match="options after"):
        split_engine("sglang+fast", "x", "engine")


def test_redundant_experts_eplb_balance_the_busiest_rank():
    from servesim.cost.afstep import moe_imbalance

    # 2 experts of loads 2/3 and 1/3 on 2 ranks: 4/3 without redundancy; with 2 extra slots the
    # hot expert gets 3 replicas of 2/9 each, packed 1/3 + 2/9 | 2/9 + 2/9 -> (5/9) x 2 = 10/9
    assert moe_imbalance(2, 2, "zipf", 1.0) == pytest.approx(4 / 3)
    assert moe_imbalance(2, 2, "zipf", 1.0, redundant=2) == pytest.approx(10 / 9)
    # DeepSeek-V3 routing skew s = 1 over EP32: 32 redundant experts cut the busiest rank's load
    plain = moe_imbalance(256, 32, "zipf", 1.0)
    eplb = moe_imbalance(256, 32, "zipf", 1.0, redundant=32)
    assert 1.0 <= eplb < plain
    with pytest.raises(SpecError, match="must divide"):
        moe_imbalance(256, 32, "zipf", 1.0, redundant=5)


def test_redundant_experts_take_memory():
    from servesim.cost.memory import kv_capacity_tokens

    # DeepSeek-V3 FP8, DEP32 on H100, BF16 KV: 32 EPLB replicas over 32 ranks put one more
    # routed expert (3 x 7168 x 2048 bytes) on every device in each of the 58 MoE layers;
    # the KV cache loses exactly those bytes: 2.554 GB / (61 layers x 576 x 2 B) per device
    m, par = load_model("deepseek-v3"), Parallelism(tp=1, ep=32, dp_attn=32)
    dt = DTypes("fp8", "fp8", "bf16")
    plain = CostContext(m, H100, par, dt, 0.0)
    eplb = plain._replace(redundant_experts=32)
    lost = kv_capacity_tokens(plain, 0.9, "colocated") - kv_capacity_tokens(eplb, 0.9, "colocated")
    per_dev = 58 * 3 * 7168 * 2048 / (61 * 576 * 2)
    assert lost / 32 == pytest.approx(per_dev, abs=1)
    # the attention role of an AF deployment holds no experts
    assert kv_capacity_tokens(eplb, 0.9, "attention") == kv_capacity_tokens(plain, 0.9, "attention")


def test_eplb_replicas_let_ep_divide_experts_plus_replicas():
    # DeepSeek-V3's 256 experts over EP72 (SGLang's 96-H100 deployment): only with 32 EPLB
    # replicas (288 = 4 x 72); the error names both numbers when they do not divide
    base = {
        "model": "deepseek-v3",
        "dtype": {"weights": "fp8", "activations": "fp8", "kv_cache": "bf16"},
        "deployment": {"pools": [{"hardware": "h100-sxm", "engine": "sglang+deepep",
                                  "parallelism": {"tp": 1, "ep": 72, "dp_attn": 72}}]},
        "workload": {"clients": {"concurrency": 1}, "num_requests": 1,
                     "lengths": {"input": {"dist": "fixed", "mean": 8},
                                 "output": {"dist": "fixed", "mean": 2}}},
    }  # fmt: skip
    with pytest.raises(SpecError, match="must divide the 256 experts"):
        load_config(base)
    base["deployment"]["moe_load"] = {"redundant_experts": 30}
    with pytest.raises(SpecError, match="256 \\+ 30 redundant experts"):
        load_config(base)
    base["deployment"]["moe_load"] = {"redundant_experts": 32}
    cfg = load_config(base)
    pool = cfg.deployment.pools[0]
    ctx = CostContext(cfg.model, pool.hardware, pool.parallelism, cfg.dtypes, 0.0, 1.0,
                      engine_kernels(pool.scheduler.engine, pool.hardware, 2.0, 1.0), 32)  # fmt: skip
    dec = Aggregates(decode_seqs=72 * 256, decode_ctx=72 * 256 * 2000, sampled=72 * 256)
    ops = _ops(ctx, dec)
    assert ops["ep_dispatch"].seconds > 0 and step_cost(ctx, "decode", dec).seconds > 0


def test_ep_rank_holding_every_token_matches_fused_moe(shared_data):
    # With attention DP and an all-gather (no all-to-all) every EP rank holds all tokens; the
    # passes its MoE kernels make over the other ranks' rows are the fitted moe_token_passes
    # (roofline.moe_other_rows_time): Qwen3-235B (128 experts, top 8, hidden 4096) DEP n on H100
    # with TensorRT-LLM, block-scaled FP8 (the simulator's FP8 MoE keys), measured by
    # aiconfigurator with every token on the rank; the routed-expert operators within 20%
    # (median; +17% with the 2026-12-03 refit, whose held-out MoE MAPE is 16-31%,
    # docs/accuracy.md) of the measured fused MoE at EP 8-32, from 256 tokens
    d = _moe_table(shared_data)
    d = d[(d.system == "h100_sxm") & (d.backend == "trtllm") & (d.moe_dtype == "fp8_block")]
    d = d[(d.kernel_source == "moe_torch_flow_cutlass") & (d.distribution == "balanced")]
    d = d[(d.hidden_size == 4096) & (d.inter_size == 1536) & (d.num_experts == 128)]
    d = d[(d.moe_tp_size == 1) & d.moe_ep_size.isin([8, 16, 32]) & (d.num_tokens >= 256)]
    m, hw = load_model("qwen3-235b-a22b"), H100.for_engine("trtllm")
    names = ("moe_permute", "moe_experts_gate_up", "moe_act", "moe_experts_down",
             "moe_unpermute")  # fmt: skip
    errs = []
    for ep, g in d.groupby("moe_ep_size"):
        ctx = CostContext(m, hw, Parallelism(tp=1, ep=ep, dp_attn=ep), FP8, 0.0, 1.0,
                          engine_kernels("trtllm", hw, 1.0, 1.0))  # fmt: skip
        for r in g.groupby("num_tokens").latency_ms.median().reset_index().itertuples():
            ops = _ops(ctx, Aggregates(decode_seqs=r.num_tokens, decode_ctx=r.num_tokens,
                                       sampled=r.num_tokens))  # fmt: skip
            # the measurement also routes (top-k) every token on the rank; an engine routes its
            # own tokens before the gather (the model's moe_topk)
            route = roofline.elementwise_time(hw, r.num_tokens * (128 * 4 + 8 * 8)).seconds
            errs.append((sum(ops[n].seconds for n in names) + route) * 1e3 / r.latency_ms - 1)
    assert len(errs) >= 30
    assert abs(sorted(errs)[len(errs) // 2]) < 0.20


def test_deepep_runs_deepgemm_not_the_overlay_fused_moe():
    # SGLang's fused-MoE overlay keys describe its Triton kernel; with DeepEP it runs DeepGEMM's
    # grouped GEMMs, for which the profile's pooled MoE keys stand in
    plain, deepep = H100.for_engine("sglang"), H100.for_engine("sglang@0.5+deepep+tbo")
    overlay = dict(dict(H100.engines)["sglang"])
    moe = [k for k in overlay if k.startswith("moe_")]
    assert moe, "the shipped H100 profile fits SGLang's fused MoE"
    base, d, p = dict(H100.efficiency), dict(deepep.efficiency), dict(plain.efficiency)
    assert all(d.get(k) == base.get(k) for k in moe)
    assert any(p[k] != base.get(k) for k in moe)
    # everything else of the overlay still applies (attention, all-reduce)
    rest = [k for k in overlay if not k.startswith("moe_")]
    assert rest and all(d[k] == p[k] for k in rest)
