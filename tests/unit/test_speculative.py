"""Speculative decoding: acceptance model, step cost, engine (steps, tokens, KV), metrics, config."""

from __future__ import annotations

import math

import numpy as np
import pytest

from servesim.sim.cluster import run
from servesim.sim.testing import ClientSpec, ListWorkload, linear_step_cost, placeholder_workload
from servesim.specs.common import SpecError
from servesim.specs.config import config_to_dict, load_config
from servesim.specs.speculative import expected_length, rate_for_length

BASE, TOK, SEQ, CTX = 2e-3, 2e-5, 1e-4, 1e-7
COST = linear_step_cost(base_s=BASE, prefill_token_s=TOK, decode_seq_s=SEQ, ctx_token_s=CTX)


def cfg(spec=None, policy="sarathi", role_pools=None, seed=0, model="llama-3.1-8b", **sched):
    sched = {"max_num_seqs": 256, **sched}
    pool = {"role": "colocated", "hardware": "h100-sxm", "scheduler": {"policy": policy, **sched}}
    if spec is not None:
        pool["speculative"] = spec
    data = {"model": model, "deployment": {"pools": role_pools or [pool]},
            "workload": placeholder_workload(), "seed": seed}  # fmt: skip
    return load_config(data)


def eagle(rate, k=3, **kw):
    return {"method": "eagle3", "num_speculative_tokens": k, "acceptance": {"rate": rate}, **kw}


def one(prompt, output, spec=None, **kw):
    return run(cfg(spec, **kw), step_fn=COST, workload=ListWorkload([(0.0, prompt, output)]),
               kv_blocks=1000)  # fmt: skip


# ------------------------------------------------------------------------ acceptance model


def test_expected_length_is_the_geometric_sum_and_rate_for_length_inverts_it():
    assert expected_length([0.5] * 3) == pytest.approx(1 + 0.5 + 0.25 + 0.125)
    assert expected_length([0.9, 0.5]) == pytest.approx(1 + 0.9 + 0.45)
    for k, a in ((1, 0.875), (3, 0.6), (7, 0.8)):
        assert rate_for_length(expected_length([a] * k), k) == pytest.approx(a, abs=1e-9)


def test_dataset_acceptance_reproduces_the_published_length():
    c = cfg({"method": "eagle3", "num_speculative_tokens": 7,
             "acceptance": {"dataset": "mt-bench"}})  # fmt: skip
    sp = c.deployment.pools[0].speculative
    assert sp.expected_length == pytest.approx(3.54, abs=1e-6)  # vLLM issue #20780, k=7
    c = cfg(
        {"method": "eagle3", "num_speculative_tokens": 3, "acceptance": {"dataset": "mt-bench"}}
    )
    assert c.deployment.pools[0].speculative.expected_length == pytest.approx(2.79, abs=1e-6)
    # DeepSeek-V3's MTP: 85-90% second-token acceptance at k=1
    c = cfg({"method": "mtp", "num_speculative_tokens": 1, "acceptance": {"dataset": "mixed"}},
            model="deepseek-v3")  # fmt: skip
    assert c.deployment.pools[0].speculative.per_position == pytest.approx((0.875,))


def test_speculative_config_round_trips():
    c = cfg(eagle(0.7, disable_by_batch_size=32))
    again = load_config(config_to_dict(c))
    assert again.deployment.pools[0].speculative == c.deployment.pools[0].speculative


# ------------------------------------------------------------------------ engine, by hand


def _decode_rows(raw):
    n = np.asarray(raw.steps["decode_seqs"])
    return np.flatnonzero(n > 0)


def test_acceptance_zero_is_slower_by_exactly_the_draft_and_verify_overhead():
    prompt, output, k = 100, 9, 3
    plain = one(prompt, output)
    spec = one(prompt, output, eagle(0.0, k))
    assert len(_decode_rows(spec)) == len(_decode_rows(plain)) == output - 1
    overhead = 0.0
    for j in range(output - 1):
        ctx = prompt + j  # tokens in KV before decode step j
        verify = BASE + TOK * (k + 1)  # one chunk of k+1 tokens
        draft = k * (BASE + SEQ + CTX * (ctx + 1))
        overhead += verify + draft - (BASE + SEQ + CTX * (ctx + 1))
    assert overhead > 0

    def decode_s(raw):
        return raw.requests["finish_s"][0] - raw.requests["first_token_s"][0]

    assert decode_s(spec) - decode_s(plain) == pytest.approx(overhead, rel=1e-12)
    s = spec.spec
    assert s["emitted"] == output - 1 and s["seq_steps"] == output - 1


@pytest.mark.parametrize("k,output", [(1, 10), (3, 20), (3, 21), (4, 2), (2, 100)])
def test_acceptance_one_takes_ceil_output_minus_one_over_k_plus_one_decode_steps(k, output):
    raw = one(64, output, eagle(1.0, k))
    assert len(_decode_rows(raw)) == math.ceil((output - 1) / (k + 1))
    assert int(np.asarray(raw.steps["new_tokens"]).sum()) == output


def test_ngram_has_no_draft_cost():
    raw = one(64, 30, {"method": "ngram", "num_speculative_tokens": 2, "acceptance": {"rate": 0.5}})
    assert raw.spec["draft_s"] == 0.0 and raw.spec["verify_s"] > 0


# ------------------------------------------------------------------------ engine, properties


def _closed(spec, conc, n=64, seed=0, kv=4000, out=(40, 120), policy="sarathi", **kw):
    rng = np.random.default_rng(5)
    specs = [(0.0, int(p), int(o)) for p, o in zip(rng.integers(20, 300, n),
                                                   rng.integers(*out, n))]  # fmt: skip
    wl = ListWorkload(specs, clients=ClientSpec(conc), num_requests=n)
    invariants = []

    def hook(inst):
        invariants.append(inst.kv.check())

    raw = run(cfg(spec, seed=seed, policy=policy, **kw), step_fn=COST, workload=wl, kv_blocks=kv,
              step_hook=hook)  # fmt: skip
    return raw, specs, invariants


@pytest.mark.parametrize("policy", ["sarathi", "vllm", "orca", "prefill_first", "static"])
def test_tokens_are_conserved_and_kv_accounting_holds(policy):
    raw, _, inv = _closed(eagle(0.6, 3), 16, kv=600, policy=policy)  # small KV: preemptions
    req = raw.requests
    assert len(req["request_id"]) == 64 and all(inv)
    assert int(np.asarray(raw.steps["new_tokens"]).sum()) == int(req["output_tokens"].sum())
    s = raw.spec
    assert s["emitted"] + s["plain_steps"] * 0 <= int(req["output_tokens"].sum())
    assert np.all(np.asarray(raw.steps["spec_tokens"]) <= np.asarray(raw.steps["new_tokens"]))


def test_preemption_under_speculation_still_conserves_tokens():
    raw, _, inv = _closed(eagle(0.8, 4), 32, kv=300)
    assert all(inv)
    assert int(raw.requests["preemptions"].sum()) > 0
    assert int(np.asarray(raw.steps["new_tokens"]).sum()) == int(
        raw.requests["output_tokens"].sum()
    )


def test_same_seed_same_run_other_seed_other_draws():
    a, _, _ = _closed(eagle(0.6), 8, seed=3)
    b, _, _ = _closed(eagle(0.6), 8, seed=3)
    c, _, _ = _closed(eagle(0.6), 8, seed=4)
    for k in a.requests:
        assert np.array_equal(a.requests[k], b.requests[k])
    assert not np.array_equal(a.requests["finish_s"], c.requests["finish_s"])


def test_mean_acceptance_length_matches_the_product_form():
    pp = [0.9, 0.6, 0.3]
    raw, _, _ = _closed({"method": "eagle", "num_speculative_tokens": 3,
                         "acceptance": {"per_position": pp}}, 16, n=64, out=(400, 600))  # fmt: skip
    s = raw.spec
    # tokens capped at a request's end shorten a few steps; long outputs keep that small
    assert s["emitted"] / s["seq_steps"] == pytest.approx(expected_length(pp), rel=0.02)
    got = s["accepted_at"] / s["seq_steps"]
    assert got == pytest.approx(np.cumprod(pp), abs=0.02)


def test_disable_by_batch_size_switches_speculation_off_for_large_batches():
    raw, _, _ = _closed(eagle(0.7, disable_by_batch_size=4), 16)
    assert raw.spec["plain_steps"] > 0 and raw.spec["spec_steps"] > 0
    raw, _, _ = _closed(eagle(0.7, disable_by_batch_size=16), 16)
    assert raw.spec["plain_steps"] == 0


def test_token_budget_counts_verification_tokens():
    # 8 decodes with k=3 take 32 of a 48-token budget: a waiting prompt gets at most 16 tokens
    from servesim.sim.speculative import SpecDecodeSet  # noqa: F401 (the decode set in use)

    seen = []

    def hook(inst):
        seen.append((inst.dec.n, inst.max_tokens))

    wl = ListWorkload([(0.0, 16, 50)] * 8 + [(0.01, 400, 5)])
    run(cfg(eagle(0.5, 3), max_num_batched_tokens=48, max_num_seqs=16), step_fn=COST, workload=wl, kv_blocks=1000,
        step_hook=hook)  # fmt: skip
    assert any(n == 8 and budget == 48 - 8 * 3 for n, budget in seen)


def test_kv_capacity_shrinks_by_the_drafters_weights_and_kv():
    from servesim.cost import CostContext, kv_capacity_tokens, spec_kv_capacity_tokens

    pool = {"role": "colocated", "hardware": "h100-sxm", "parallelism": {"tp": 4},
            "speculative": {"method": "draft", "model": "llama-3.1-8b", "num_speculative_tokens": 4,
                            "draft_tensor_parallel_size": 1, "acceptance": {"rate": 0.6}}}  # fmt: skip
    c = cfg(role_pools=[pool], model="llama-3.1-70b")
    p = c.deployment.pools[0]
    ctx = CostContext(c.model, p.hardware, p.parallelism, c.dtypes, 0.0)
    plain = kv_capacity_tokens(ctx, 0.9, "colocated", 8192)
    spec = spec_kv_capacity_tokens(ctx, p.speculative, 0.9, "colocated", 8192)
    # per device: 70B/4 = 35 GB of target weights, the 8B drafter unsplit (16 GB) and its KV
    # (32 of 80 layers, unsplit: 128 KiB/token vs the target's 80 KiB/token per device)
    per_t = 327680 / 4
    per_d = 131072
    free_plain = plain * per_t
    want = int((free_plain - 16.06e9) // (per_t + per_d))
    assert spec == pytest.approx(want, rel=0.01)
    assert 0 < spec < plain * 0.5


# ------------------------------------------------------------------------ cost model


def _h100_8b_throughput(k, conc):
    """Output tokens/s of Llama-3.1-8B on one H100 (roofline cost) at ``conc`` closed-loop
    clients, EAGLE-3 with k drafts at acceptance 0.7 (k=0: no speculation)."""
    spec = eagle(0.7, k) if k else None
    wl = ListWorkload([(0.0, 256, 256)], clients=ClientSpec(conc), num_requests=2 * conc)
    raw = run(cfg(spec, seed=1), workload=wl)
    req = raw.requests
    return float(req["output_tokens"].sum() / req["finish_s"].max())


def test_throughput_maximising_k_does_not_grow_with_load():
    best = []
    for conc in (1, 32, 256):
        tput = {k: _h100_8b_throughput(k, conc) for k in (0, 1, 2, 4)}
        best.append(max(tput, key=tput.get))
    assert best[0] >= best[1] >= best[2], best
    assert best[0] >= 2 and best[2] <= 1, best  # speculation pays at batch 1, not at 256


# ------------------------------------------------------------------------ metrics


def test_itl_is_one_sample_per_step_and_tpot_reflects_acceptance():
    import servesim

    base = {"model": "llama-3.1-8b", "seed": 2,
            "deployment": {"pools": [{"role": "colocated", "hardware": "h100-sxm",
                                      "speculative": eagle(0.8, 3)}]},
            "workload": {"arrivals": {"process": "poisson", "rate": 0.5},
                         "lengths": {"input": {"dist": "fixed", "mean": 128},
                                     "output": {"dist": "fixed", "mean": 200}},
                         "num_requests": 6}}  # fmt: skip
    res = servesim.simulate(base)
    s = res.summary
    assert s["spec.acceptance_length"] > 2.5
    # one ITL sample per step: mean ITL = mean step gap ~ TPOT x tokens per step
    assert s["itl_ms_mean"] == pytest.approx(s["tpot_ms_mean"] * s["spec.acceptance_length"],
                                             rel=0.05)  # fmt: skip
    assert s["spec.draft_ms_per_step"] > 0 and s["spec.verify_ms_per_step"] > 0
    from servesim.accounting.metrics import request_itls

    itls = request_itls(res.raw)
    assert all(0 < len(x) < 199 for x in itls)


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "spec,needle",
    [
        ({"method": "medusa", "num_speculative_tokens": 2, "acceptance": {"rate": 0.5}}, "method"),
        ({"method": "eagle", "num_speculative_tokens": 0, "acceptance": {"rate": 0.5}}, "num_spec"),
        ({"method": "eagle", "num_speculative_tokens": 2, "acceptance": {"rate": 1.5}}, "rate"),
        ({"method": "eagle", "num_speculative_tokens": 2}, "acceptance"),
        ({"method": "eagle", "num_speculative_tokens": 2, "acceptance": {"per_position": [0.5]}},
         "per_position"),
        ({"method": "eagle", "num_speculative_tokens": 2, "acceptance": {"dataset": "nope"}},
         "dataset"),
        ({"method": "ngram", "num_speculative_tokens": 2, "acceptance": {"dataset": "mt-bench"}},
         "no published acceptance"),
        ({"method": "draft", "num_speculative_tokens": 2, "acceptance": {"rate": 0.5}}, "model"),
        ({"method": "eagle", "num_speculative_tokens": 2, "acceptance": {"rate": 0.5},
          "typo": 1}, "typo"),
        ({"method": "eagle", "num_speculative_tokens": 2,
          "acceptance": {"rate": 0.5, "dataset": "gsm8k"}}, "exactly one"),
    ],
)  # fmt: skip
def test_bad_speculative_keys_are_one_spec_error(spec, needle):
    with pytest.raises(SpecError, match=needle):
        cfg(spec)


def test_speculation_on_a_prefill_pool_is_rejected():
    pools = [{"role": "prefill", "hardware": "h100-sxm", "speculative": eagle(0.5)},
             {"role": "decode", "hardware": "h100-sxm"}]  # fmt: skip
    with pytest.raises(SpecError, match="colocated or decode"):
        cfg(role_pools=pools)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["run", "--spec-method", "eagle3", "--num-speculative-tokens", "3",
          "--spec-acceptance-rate", "2", "-q"], "acceptance.rate"),
        (["run", "--spec-method", "eagle3", "--spec-acceptance-rate", "0.5", "-q"],
         "num_speculative_tokens"),
        (["bench", "--spec-method", "lookahead", "--num-speculative-tokens", "2",
          "--spec-acceptance-rate", "0.5"], "method"),
    ],
)  # fmt: skip
def test_cli_bad_speculative_flags_are_one_line_exit_2(args, needle, capsys):
    from servesim.cli import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err


def test_prefill_decode_split_speculates_on_the_decode_pool():
    pools = [{"role": "prefill", "hardware": "h100-sxm"},
             {"role": "decode", "hardware": "h100-sxm", "speculative": eagle(0.7, 2)}]  # fmt: skip
    c = load_config({"model": "llama-3.1-8b", "deployment": {"pools": pools},
                     "workload": placeholder_workload(), "seed": 1})  # fmt: skip
    rng = np.random.default_rng(2)
    specs = [(float(t), int(p), int(o)) for t, p, o in zip(np.cumsum(rng.exponential(0.05, 40)),
             rng.integers(50, 500, 40), rng.integers(2, 200, 40))]  # fmt: skip
    raw = run(c, workload=ListWorkload(specs))
    req = raw.requests
    assert len(req["request_id"]) == 40
    assert int(np.asarray(raw.steps["new_tokens"]).sum()) == int(req["output_tokens"].sum())
    s = raw.spec
    # the first token comes from the prefill pool; the decode pool emits the rest
    assert s["emitted"] == int(req["output_tokens"].sum()) - 40
    assert 1 + 0.7 + 0.49 > s["emitted"] / s["seq_steps"] > 1.9


def test_planner_searches_speculation_and_prunes_by_the_speculative_tpot_floor():
    from servesim.studies.plan import plan

    seen = []

    def runner(config):
        pool = config["deployment"]["pools"][-1]
        seen.append(pool.get("speculative"))
        tpot = 5.0 if pool.get("speculative") else 12.0
        return {"tpot_ms_p90": tpot, "ttft_ms_p90": 100.0, "output_throughput": 100.0,
                "goodput_fraction": 1.0}  # fmt: skip

    spec = {"method": "eagle3", "num_speculative_tokens": 3, "acceptance": {"rate": 0.7}}
    res = plan("llama-3.1-8b", runner=runner, rate=1.0, isl=256, osl=128, tp=[1], caps=[64],
               slo={"tpot_ms": {"p90": 8}}, speculative=[None, spec], max_sims=4)  # fmt: skip
    # the plain family's TPOT floor (~8.7 ms on one H100) is above 8 ms: pruned, never simulated
    assert seen and all(s == spec for s in seen)
    assert any("pruned" in n for n in res.notes)
    assert res.top.iloc[0]["speculative"] == "eagle3-k3"
    with pytest.raises(SpecError, match="method"):
        plan("llama-3.1-8b", runner=runner, rate=1.0, speculative=[{"method": "x"}])


def test_a_request_that_fills_the_whole_kv_still_runs_with_lookahead():
    # prompt + output - 1 = 63 tokens = exactly 4 blocks of 16: drafts past the last token would
    # need a fifth block (there is none); the lookahead stops at the request's last token
    raw = run(cfg(eagle(0.5, 4)), step_fn=COST, workload=ListWorkload([(0.0, 40, 24)]),
              kv_blocks=4)  # fmt: skip
    assert raw.requests["output_tokens"][0] == 24 and raw.requests["preemptions"][0] == 0


def test_bench_result_has_vllms_speculative_keys_and_block():
    import servesim
    from servesim.studies.bench import format_summary

    res = servesim.bench(spec_method="eagle3", num_speculative_tokens=3, spec_acceptance_rate=0.6,
                         num_prompts=12, random_input_len=128, random_output_len=200)  # fmt: skip
    drafts = res["spec_decode_num_drafts"]
    assert res["spec_decode_draft_tokens"] == 3 * drafts
    pos = res["spec_decode_per_position_acceptance_rates"]
    assert pos == pytest.approx([0.6, 0.36, 0.216], abs=0.03)
    assert res["spec_decode_acceptance_length"] == pytest.approx(1 + sum(pos))
    assert res["spec_decode_acceptance_rate"] == pytest.approx(100 * sum(pos) / 3)
    text = format_summary(res)
    assert "Speculative Decoding" in text and "Position 2:" in text
    plain = servesim.bench(num_prompts=4, random_input_len=128, random_output_len=20)
    assert not any(k.startswith("spec_decode_") for k in plain)


def test_mtp_drafter_memory_counts_every_resident_mtp_module():
    import dataclasses

    from servesim.cost.speculative import draft_memory
    from servesim.cost.step import CostContext
    from servesim.specs.config import Parallelism
    from servesim.specs.dtypes import DTypes
    from servesim.specs.hardware import load_hardware
    from servesim.specs.model import load_model
    from servesim.specs.speculative import parse_speculative

    model = load_model("deepseek-v3")
    assert model.mtp_layers == 1  # the model card's num_nextn_predict_layers
    spec = parse_speculative(
        {"method": "mtp", "num_speculative_tokens": 2, "acceptance": {"rate": 0.8}}, model, "t", "s"
    )
    dt = DTypes("fp8", "bf16", "bf16")
    hw, par = load_hardware("h200-sxm"), Parallelism(tp=8, ep=8)
    one = draft_memory(CostContext(model, hw, par, dt, 0.0), spec)
    two = draft_memory(
        CostContext(dataclasses.replace(model, mtp_layers=2), hw, par, dt, 0.0), spec
    )
    assert two[1] == 2 * one[1]  # KV per token: one cache per resident module
    assert one[0] < two[0] < 2 * one[0]  # a second layer; embeddings and LM head are shared
