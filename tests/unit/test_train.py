"""servesim.train: hand-computed FLOPs, bubble, ZeRO memory, collective volume; properties of
memory and step time; time-to-train arithmetic; config files, search and the CLI's bad input."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import servesim
from servesim.cli import main
from servesim.specs.common import SpecError
from servesim.specs.hardware import load_hardware
from servesim.specs.model import parse_hf_config
from servesim.training import collectives as coll
from servesim.training.config import load_train_config
from servesim.training.flops import matmul_params, model_flops_per_token
from servesim.training.layout import make_layout
from servesim.training.memory import memory, stage_params
from servesim.training.search import search_layouts

H, L, HEADS, KV, FF, V = 1024, 8, 16, 4, 4096, 32000


def tiny():
    return parse_hf_config({"architectures": ["LlamaForCausalLM"], "hidden_size": H,
                            "num_hidden_layers": L, "num_attention_heads": HEADS,
                            "num_key_value_heads": KV, "intermediate_size": FF,
                            "vocab_size": V}, "test", name="tiny")  # fmt: skip


def test_model_flops_6nd_plus_attention_by_hand():
    m, s = tiny(), 4096
    hd = H // HEADS
    attn_w = 2 * H * H + 2 * H * KV * hd  # q, o and k, v projections
    n = L * (attn_w + 3 * H * FF) + V * H  # matmul weights incl. LM head, no embedding lookup
    assert matmul_params(m) == n
    attn = 2 * HEADS * (2 * hd) * (s / 2) * L  # QK^T and PV over the causal half
    assert model_flops_per_token(m, s) == pytest.approx(3 * (2 * n + attn))
    assert model_flops_per_token(m, s, causal_halved=False) == pytest.approx(3 * (2 * n + 2 * attn))


def test_bubble_formula():
    est = servesim.train(tiny(), "h100-sxm", devices=64, tp=2, pp=4, vp=2, seq_len=2048,
                         global_batch=64, micro_batch=1)  # fmt: skip
    m = est.layout.microbatches
    assert m == 64 // 8
    assert est.bubble_fraction == pytest.approx((4 - 1) / (2 * m))
    row = est.breakdown[est.breakdown.op == "bubble"].iloc[0]
    per_micro = (est.breakdown.loc[est.breakdown.phase.isin(["forward", "backward", "recompute"]),
                                   "seconds"].sum()) / m  # fmt: skip
    assert row.seconds >= (4 - 1) / 2 * per_micro  # the bubble is (pp-1)/vp micro-batch times


@pytest.mark.parametrize("zero", ["0", "1", "2", "3"])
def test_zero_memory_per_stage(zero):
    m = tiny()
    lo = make_layout(m, devices=8, seq_len=2048, global_batch=8, zero=zero)
    p = stage_params(m, lo).dense
    assert p == pytest.approx(m.params_total)  # one stage, no TP: every weight
    mem = memory(m, lo)
    d = 8
    want = {
        "0": (2 * p, 4 * p, 12 * p),
        "1": (2 * p, 4 * p, 12 * p / d),
        "2": (2 * p, 4 * p / d, 12 * p / d),
        "3": (2 * p / d, 4 * p / d, 12 * p / d),
    }[zero]
    weights = mem.weights - (2 * 2 * p / L if zero == "3" else 0.0)  # two gathered layers
    assert (weights, mem.gradients, mem.optimizer) == pytest.approx(want)


def test_allreduce_volume_is_2_n_minus_1_over_n():
    hw = load_hardware("h100-sxm")
    n, S = 8, 1e9
    up, out = coll._bw(hw)
    ring = coll.allreduce(hw, 2 * S, n, n) - coll.allreduce(hw, S, n, n)
    assert ring == pytest.approx(2 * (n - 1) / n * S / up)
    flat = coll.allreduce(hw, 2 * S, n, 1) - coll.allreduce(hw, S, n, 1)  # one per domain: NICs
    assert flat == pytest.approx(2 * (n - 1) / n * S / out)
    # two levels: the NIC part carries 1/g of the buffer
    two = coll.allreduce(hw, 2 * S, 64, 8) - coll.allreduce(hw, S, 64, 8)
    assert two == pytest.approx(2 * 7 / 8 * S / up + 2 * 7 / 8 * S / 8 / out)


def test_more_dp_never_raises_state_memory_under_zero3():
    m = tiny()
    states = []
    for dp in (2, 4, 8, 16, 32):
        mem = memory(m, make_layout(m, devices=dp, seq_len=2048, global_batch=32, zero="3"))
        states.append(mem.weights + mem.gradients + mem.optimizer)
    assert all(b <= a for a, b in zip(states, states[1:]))


def test_recompute_lowers_activation_memory_and_raises_step_time():
    kw = dict(devices=8, tp=8, seq_len=8192, global_batch=16, micro_batch=1)
    none, sel, full = (servesim.train("llama-3.1-8b", "h100-sxm", recompute=r, **kw)
                       for r in ("none", "selective", "full"))  # fmt: skip
    acts = [e.memory_breakdown["activations"] for e in (none, sel, full)]
    assert acts[0] > acts[1] > acts[2]
    assert none.step_s < sel.step_s < full.step_s
    assert full.hfu > full.mfu and none.hfu == pytest.approx(none.mfu)


def test_a_layout_that_does_not_fit_says_so():
    est = servesim.train("llama-3.1-70b", "h100-sxm", gpus=8, seq_len=8192, global_batch=8,
                         zero=1)  # fmt: skip
    assert not est.fits and est.headroom_bytes < 0
    assert est.memory_per_device_bytes > load_hardware("h100-sxm").memory_bytes


def test_time_to_train_gpu_hours_energy_cost():
    est = servesim.train("llama-3.1-8b", "h100-sxm", devices=64, seq_len=8192, global_batch=128,
                         zero="fsdp", tokens=1e11)  # fmt: skip
    steps = math.ceil(1e11 / (128 * 8192))
    assert est.time_to_train_s == pytest.approx(steps * est.step_s)
    assert est.gpu_hours == pytest.approx(64 * est.time_to_train_s / 3600)
    assert est.cost_usd == pytest.approx(3.00 * est.gpu_hours)  # profile price, $3.00/h
    hw = load_hardware("h100-sxm")
    assert hw.idle_W * 64 * est.time_to_train_s / 3.6e6 < est.energy_kwh
    assert est.energy_kwh < (hw.tdp_W + 300) * 64 * est.time_to_train_s * 1.56 / 3.6e6


def test_zero3_and_fsdp_are_the_same_and_gpus_aliases_devices():
    kw = dict(seq_len=2048, global_batch=16)
    a = servesim.train("llama-3.1-8b", "h100-sxm", devices=16, zero=3, **kw)
    b = servesim.train("llama-3.1-8b", "h100-sxm", gpus=16, zero="fsdp", **kw)
    assert a.step_s == b.step_s and a.memory_per_device_bytes == b.memory_per_device_bytes
    assert a.layout.dp == 16


def test_moe_ep_alltoall_and_mla_are_costed():
    est = servesim.train("deepseek-v3", "h800-sxm", devices=2048, pp=16, ep=64, seq_len=4096,
                         global_batch=15360, dtype="fp8-block", schedule="dualpipe")  # fmt: skip
    assert est.fits
    plain = servesim.train("deepseek-v3", "h800-sxm", devices=2048, pp=16, ep=64, seq_len=4096,
                           global_batch=15360, dtype="fp8-block")  # fmt: skip
    assert plain.exposed_comm_s["ep"] > est.exposed_comm_s["ep"]  # DualPipe hides the all-to-all


def test_context_parallel_splits_activation_memory():
    kw = dict(devices=8, seq_len=65536, global_batch=4, recompute="full", zero="fsdp")
    one = servesim.train("llama-3.1-8b", "h100-sxm", cp=1, **{**kw, "global_batch": 8})
    two = servesim.train("llama-3.1-8b", "h100-sxm", cp=2, **kw)
    assert two.memory_breakdown["activations"] < one.memory_breakdown["activations"]
    assert two.exposed_comm_s["cp"] >= 0.0


def test_deterministic():
    kw = dict(devices=64, tp=4, pp=2, seq_len=4096, global_batch=64, tokens=1e10)
    a = servesim.train("llama-3.1-8b", "h100-sxm", **kw)
    b = servesim.train("llama-3.1-8b", "h100-sxm", **kw)
    assert a.to_dict() == b.to_dict()


@pytest.mark.parametrize("kw, field", [
    (dict(devices=1001, tp=8), "devices"),
    (dict(devices=64, tp=3), "tp"),
    (dict(devices=64, ep=2), "ep"),
    (dict(devices=64, global_batch=100), "global_batch"),
    (dict(devices=64, zero=5), "zero"),
    (dict(devices=64, recompute="some"), "recompute"),
    (dict(devices=64, pp=2, vp=2, schedule="dualpipe"), "schedule"),
])  # fmt: skip
def test_bad_layouts_raise_one_spec_error(kw, field):
    args = dict(seq_len=2048, global_batch=64) | kw
    with pytest.raises(SpecError, match=field):
        servesim.train("llama-3.1-8b", "h100-sxm", **args)


def test_config_file(tmp_path):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(
        "model: llama-3.1-8b\ndtype: bf16\nseed: 1\ncost: {pricing: cloud}\n"
        "training:\n  hardware: h100-sxm\n  gpus: 16\n  parallelism: {tp: 2, pp: 1}\n"
        "  seq_len: 4096\n  global_batch: 32\n  zero: fsdp\n  tokens: 1.0e+10\n"
    )
    kw = load_train_config(cfg)
    est = servesim.train(**kw)
    assert est.layout.tp == 2 and est.layout.dp == 8 and est.gpu_hours > 0
    cfg.write_text("model: llama-3.1-8b\ntraining:\n  hardware: h100-sxm\n  gpu: 8\n")
    with pytest.raises(SpecError, match="training.gpu"):
        load_train_config(cfg)


def test_search_ranks_fitting_layouts_with_a_pareto_front():
    frame = search_layouts("llama-3.1-8b", ["h100-sxm", "a100-sxm"], [16], seq_len=4096,
                           global_batch=64, tokens=1e11, top=5)  # fmt: skip
    assert len(frame) == 5 and frame["memory_GiB"].max() < 80
    assert list(frame["days"]) == sorted(frame["days"])
    assert frame["pareto"].any() and frame["reason"].str.contains("fits with").all()
    cheap = search_layouts("llama-3.1-8b", ["h100-sxm", "a100-sxm"], [16], seq_len=4096,
                           global_batch=64, tokens=1e11, objective="cost", top=3)  # fmt: skip
    assert list(cheap["cost_usd"]) == sorted(cheap["cost_usd"])


@pytest.mark.parametrize("argv", [
    ["train", "--model", "llama-3.1-70b", "--hw", "h100-sxm", "--gpus", "1001", "--tp", "8",
     "--seq-len", "8192", "--global-batch", "512"],
    ["train", "--model", "llama-3.1-8b", "--hw", "a100-sxm", "--gpus", "8", "--seq-len", "4096",
     "--global-batch", "8", "--dtype", "fp8"],
    ["train", "--model", "llama-3.1-8b", "--hw", "h100-sxm", "--gpus", "8"],
    ["train", "--search", "--model", "llama-3.1-8b", "--hw", "h100-sxm", "--devices", "x",
     "--seq-len", "4096", "--global-batch", "8"],
    ["train", "experiments/training_validation/llama3_405b_8k.yaml", "--tp", "4"],
])  # fmt: skip
def test_cli_bad_input_is_one_line_exit_2(argv, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_cli_table_and_json(capsys):
    argv = [
        "train",
        "--model",
        "llama-3.1-8b",
        "--hw",
        "h100-sxm",
        "--devices",
        "16",
        "--tp",
        "2",
        "--seq-len",
        "4096",
        "--global-batch",
        "32",
        "--tokens",
        "1e10",
    ]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "MFU / HFU" in out and "time to train" in out
    with pytest.raises(SystemExit):
        main(argv + ["--format", "json"])
    import json

    data = json.loads(capsys.readouterr().out)
    assert {"step_s", "tokens_per_s_per_device", "mfu", "hfu", "fits", "gpu_hours",
            "cost_usd", "breakdown"} <= set(data)  # fmt: skip


def test_moe_alltoall_sends_a_token_once_per_remote_node():
    hw = load_hardware("h100-sxm")
    up, out = coll._bw(hw)
    fixed = coll.moe_alltoall(hw, 1, 1e-9, 8, 64, 8)  # latency and launch only
    tokens, row, k = 4096, 7168.0, 8
    t = coll.moe_alltoall(hw, tokens, row, k, 64, 8) - fixed
    nodes = 8 * (1 - (7 / 8) ** k) * 7 / 8  # expected distinct remote nodes per token
    fan_out = 64 * (1 - (63 / 64) ** k) * (64 - 8) / 64 + 64 * (1 - (63 / 64) ** k) * 7 / 64
    assert t == pytest.approx(
        max(tokens * row * fan_out / up, tokens * row * nodes / out), rel=1e-6
    )
    assert coll.expected_distinct(8, 8) < 8  # top-8 over 8 nodes rarely hits every node


def test_search_for_a_target_time_scans_device_counts():
    frame = search_layouts("llama-3.1-8b", ["h100-sxm"], None, seq_len=4096, global_batch=64,
                           tokens=1e9, target_days=1.0, objective="cost", top=3)  # fmt: skip
    assert (frame["days"] <= 1.0).all() and frame["devices"].min() == 8
    with pytest.raises(SpecError, match="target"):
        search_layouts("llama-3.1-8b", ["h100-sxm"], None, seq_len=4096, global_batch=64)


def test_train_takes_the_layout_arguments_with_make_layouts_defaults():
    """servesim.train hands its layout arguments to make_layout by name (LAYOUT_ARGS): the two
    signatures must name the same arguments with the same defaults."""
    import inspect

    from servesim.training.estimate import train
    from servesim.training.layout import LAYOUT_ARGS

    t, m = inspect.signature(train).parameters, inspect.signature(make_layout).parameters
    assert set(LAYOUT_ARGS) <= set(t)
    for name in LAYOUT_ARGS:
        if name != "devices":  # required by make_layout; train derives it (gpus alias)
            assert t[name].default == m[name].default, name
