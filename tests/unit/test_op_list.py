"""The one operator list (cost/ops.py): weights, activation reserve, roofline rows, step time and
the attention/FFN link all derive from it, so an operator added there shows up in each."""

from __future__ import annotations

import json

import pytest

from servesim.analysis import batch_aggregates, roofline
from servesim.cost import afstep, memory, ops
from servesim.cost.optime import TIME_OF
from servesim.cost.step import CostContext, breakdown, clear_caches, step_cost
from servesim.specs.config import Parallelism
from servesim.specs.dtypes import DTypes
from servesim.specs.hardware import load_hardware
from servesim.specs.model import load_model

BF16, FP8 = DTypes(), DTypes("fp8", "fp8", "fp8")
H100 = load_hardware("h100-sxm")
LLAMA = load_model("llama-3.1-8b")  # 32 layers, hidden 4096, 32/8 heads of 128, MLP 14336
# a prefill chunk of 512 and 16 decoding sequences
AGG = batch_aggregates(prefill=[(512, 0)], decode=[(16, 1000)])


@pytest.fixture
def fresh_caches():
    clear_caches()
    yield
    clear_caches()


def _toy(model, rank: int = 64) -> ops.Op:
    """A LoRA-like down-projection in every dense-MLP layer: one GEMM of rank x hidden."""
    return ops.Op("toy_adapter", "gemm", ops.FFN, model.num_layers, ops.TOKENS,
                  dims=((rank, model.hidden_size),), scope=ops.DENSE,
                  params=rank * model.hidden_size, param_bytes=2.0,
                  act_bytes=rank * 2.0)  # fmt: skip


def test_llama_weights_are_the_sum_of_the_operators_hand_computed():
    h, L, v = 4096, 32, 128256
    attn = h * (32 + 2 * 8) * 128 + 32 * 128 * h  # qkv_proj + o_proj
    layer = attn * 2 + 2 * h * 2 + 3 * h * 14336 * 2  # + norms (16-bit) + gate, up, down
    edges = 2 * v * h * 2  # embedding and (untied) LM head
    one = memory.weight_bytes_per_device(LLAMA, BF16, Parallelism())
    assert one == L * layer + edges
    # pp = 2: the largest stage holds 16 layers and one of the two tables
    assert memory.weight_bytes_per_device(LLAMA, BF16, Parallelism(pp=2)) == 16 * layer + v * h * 2
    # roles: attention holds everything but the MLP, ffn the MLP
    att = memory.weight_bytes_per_device(LLAMA, BF16, Parallelism(), "attention")
    ffn = memory.weight_bytes_per_device(LLAMA, BF16, Parallelism(), "ffn")
    assert ffn == L * 3 * h * 14336 * 2 and att + ffn == one


def test_moe_stage_counts_its_moe_layers_first():
    ds = load_model("deepseek-v3")  # 61 layers: 3 dense, 58 MoE
    par = Parallelism(tp=8, pp=4, ep=8)  # largest stage: 16 layers, all counted MoE
    mo = ops.model_ops(ds, FP8, par)
    per_layer = {s: 0.0 for s in (ops.LAYER, ops.DENSE, ops.MOE)}
    first = last = 0.0
    for op in mo.ops:
        w = op.params * op.param_bytes
        if op.scope == ops.FIRST:
            first += w
        elif op.scope == ops.LAST:
            last += w
        elif op.params:
            per_layer[op.scope] += w
    want = 16 * (per_layer[ops.LAYER] + per_layer[ops.MOE]) + max(first, last)
    assert memory.weight_bytes_per_device(ds, FP8, par) == want
    assert per_layer[ops.DENSE] > 0  # the dense layers exist but sit on another stage


def test_activation_reserve_hand_computed():
    h, tokens = 4096, 8192
    per_token = 4 * h + (32 + 16) * 128 + 3 * 14336  # residual stream, QKV, widest MLP x3
    want = tokens * per_token * 2 + 256 * 128256 * 4  # + fp32 logits of 256 rows
    assert memory.activation_reserve_bytes(LLAMA, BF16, Parallelism(), tokens) == want


def test_af_link_comes_from_the_link_operators():
    link = [op for op in ops.model_ops(LLAMA, FP8, Parallelism()).ops if op.part == ops.LINK]
    assert [op.name for op in link] == ["af_dispatch", "af_combine"]
    assert [op.bytes_per_row for op in link] == [4096 * 1, 4096 * 2]  # fp8 out, bf16 back
    # one way, the mean of the two directions, one copy per token (dense FFN)
    assert afstep.af_activation_bytes(100, LLAMA, FP8) == 100 * 4096 * 1.5
    assert afstep.af_link(LLAMA, FP8)[1] == 32
    # no role's step runs them
    names = {r.name for role in ("colocated", "attention", "ffn")
             for r in breakdown(CostContext(LLAMA, H100, Parallelism(), FP8, 0.0), role, AGG)}  # fmt: skip
    assert not names & {"af_dispatch", "af_combine"}


def test_a_toy_operator_reaches_weights_roofline_and_step_time(monkeypatch, fresh_caches):
    """docs/internals.md, "Adding an operator": one entry in ops.py, nothing else."""
    par = Parallelism()
    ctx = CostContext(LLAMA, H100, par, BF16, 0.0)
    w0 = memory.weight_bytes_per_device(LLAMA, BF16, par)
    ffn0 = memory.weight_bytes_per_device(LLAMA, BF16, par, "ffn")
    a0 = memory.activation_reserve_bytes(LLAMA, BF16, par)
    t0 = step_cost(ctx, "colocated", AGG).seconds
    cap0 = memory.kv_capacity_tokens(ctx, 0.9, "colocated")

    ffn_ops = ops._ffn_ops
    monkeypatch.setattr(ops, "_ffn_ops", lambda m, *a: ffn_ops(m, *a) + [_toy(m)])
    clear_caches()

    toy = 32 * 64 * 4096 * 2  # layers x rank x hidden x 2 bytes
    assert memory.weight_bytes_per_device(LLAMA, BF16, par) == w0 + toy
    assert memory.weight_bytes_per_device(LLAMA, BF16, par, "ffn") == ffn0 + toy
    assert memory.activation_reserve_bytes(LLAMA, BF16, par) == a0 + 8192 * 64 * 2
    assert memory.kv_capacity_tokens(ctx, 0.9, "colocated") < cap0

    df = roofline(LLAMA, H100, prefill=[(512, 0)], decode=[(16, 1000)], overhead_s=0.0)
    row = df[df["name"] == "toy_adapter"].iloc[0]
    m = 512 + 16  # every new token
    assert row["count"] == 32 and row["flops"] == 2.0 * m * 64 * 4096
    assert row["bytes"] == 64 * 4096 * 2 + m * (4096 + 64) * 2  # weights once, rows in and out
    t1 = step_cost(ctx, "colocated", AGG).seconds
    assert t1 == pytest.approx(t0 + 32 * row["seconds"], rel=1e-12) and t1 > t0
    assert "toy_adapter" in {r.name for r in breakdown(ctx, "ffn", AGG)}
    assert "toy_adapter" not in {r.name for r in breakdown(ctx, "attention", AGG)}


def test_a_new_kind_needs_its_one_time_function(monkeypatch, fresh_caches):
    toy = ops.Op("toy_scan", "toy_kind", ops.ATTENTION, 32, ops.TOKENS, bytes_per_row=1e3)
    attn_ops = ops._attention_ops
    monkeypatch.setattr(ops, "_attention_ops", lambda *a: attn_ops(*a) + [toy])
    clear_caches()
    ctx = CostContext(LLAMA, H100, Parallelism(), BF16, 0.0)
    with pytest.raises(AssertionError, match="toy_kind"):
        step_cost(ctx, "colocated", AGG)
    # one time function: 1 us per 1000 rows, memory bound
    monkeypatch.setitem(TIME_OF, "toy_kind", lambda plan, op, m: (0.0, m * op.bytes_per_row,
                                                                  m * 1e-9, "memory", 0.0))  # fmt: skip
    clear_caches()
    rows = {r.name: r for r in breakdown(ctx, "colocated", AGG)}
    assert rows["toy_scan"].seconds == 528 * 1e-9 and rows["toy_scan"].count == 32
    total = sum(r.count * r.seconds for r in rows.values())
    assert step_cost(ctx, "colocated", AGG).seconds == pytest.approx(total, rel=1e-12)


def test_every_weighted_operator_sits_in_one_stage_scope():
    """Roles split the weights exactly; a weight-carrying operator never merges across scopes."""
    for name in ("llama-3.1-8b", "deepseek-v3", "qwen3-30b-a3b", "gpt-oss-120b", "gemma-3-4b"):
        m = load_model(name)
        par = Parallelism(tp=2, ep=2) if m.num_experts else Parallelism(tp=2)
        for dt in (BF16, FP8):
            col = memory.weight_bytes_per_device(m, dt, par)
            att = memory.weight_bytes_per_device(m, dt, par, "attention")
            ffn = memory.weight_bytes_per_device(m, dt, par, "ffn")
            assert att + ffn == col, name
            for op in ops.model_ops(m, dt, par).ops:
                assert op.scope in (ops.LAYER, ops.DENSE, ops.MOE, ops.FIRST, ops.LAST, ops.BETWEEN)
                assert not op.params or op.param_bytes > 0, (name, op.name)


def test_a_weighted_operator_must_name_its_scope(monkeypatch, fresh_caches):
    """An expert-side entry that holds weights but forgot scope=MOE is refused: its weights would
    be counted on every layer of a stage instead of its MoE layers."""
    ds = load_model("deepseek-v3")  # 58 MoE layers of 61
    _, moe = ops.layer_counts(ds)
    bad = ops.Op("toy_gate", "gemm", ops.FFN, moe, ops.TOKENS, dims=((8, ds.hidden_size),),
                 params=8 * ds.hidden_size, param_bytes=2.0)  # fmt: skip
    ffn_ops = ops._ffn_ops
    monkeypatch.setattr(ops, "_ffn_ops", lambda *a: ffn_ops(*a) + [bad])
    clear_caches()
    with pytest.raises(AssertionError, match="toy_gate.*scope 'layer' has 61"):
        memory.weight_bytes(ds, BF16)
    monkeypatch.setattr(ops, "_ffn_ops", ffn_ops)
    clear_caches()
    plain = memory.weight_bytes(ds, BF16)
    monkeypatch.setattr(ops, "_ffn_ops", lambda *a: ffn_ops(*a) + [bad._replace(scope=ops.MOE)])
    clear_caches()
    assert memory.weight_bytes(ds, BF16) == plain + moe * 8 * ds.hidden_size * 2


def test_operators_table_is_the_list_with_its_weights():
    import servesim

    df = servesim.operators("deepseek-v3", tp=8, ep=8, dtype="fp8")
    par = Parallelism(tp=8, ep=8)
    want = memory.weight_bytes_per_device(load_model("deepseek-v3"), FP8, par)
    assert df["weight_bytes"].sum() == want == df.attrs["weight_bytes_per_device"]
    row = df.set_index("name").loc["moe_experts_gate_up"]
    # 256 experts / ep 8 = 32 held, each gate+up 2 x 2048 x 7168 at 1 byte, on 58 MoE layers
    assert row["params"] == 32 * 2 * 2048 * 7168 and row["weight_bytes"] == 58 * row["params"]
    assert set(df["part"]) == {"attention", "ffn"}  # the AF link only for AF roles
    att = servesim.operators("deepseek-v3", tp=8, ep=8, dtype="fp8", role="attention")
    assert set(att["part"]) == {"attention", "link"}


def test_show_model_ops_cli():
    from click.testing import CliRunner

    from servesim.cli import cli

    res = CliRunner().invoke(cli, ["show", "model", "llama-3.1-8b", "--ops", "--tp", "2"])
    assert res.exit_code == 0, res.output
    assert "qkv_proj" in res.output and "weights MB" in res.output and "8.03 GB" in res.output
    res = CliRunner().invoke(cli, ["show", "model", "llama-3.1-8b", "--ops", "--format", "json"])
    data = json.loads(res.output)
    assert data["summary"]["weight_bytes_per_device"] == sum(o["weight_bytes"] for o in data["ops"])
    # with a device: whether it fits and the KV tokens left (as `show model --hw`)
    args = ["show", "model", "llama-3.1-70b", "--ops", "--hw", "h100", "--format", "json"]
    summary = json.loads(CliRunner().invoke(cli, args).output)["summary"]
    assert summary["fits"] is False and summary["kv_capacity_tokens"] == 0


def test_show_model_ops_bad_parallelism_is_one_error_line(capsys):
    from servesim.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["show", "model", "llama-3.1-8b", "--ops", "--tp", "3"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and err[0].startswith("error:") and "tp" in err[0]
