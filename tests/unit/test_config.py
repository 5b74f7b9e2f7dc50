"""specs.config: the run config, overrides, engine profiles, round trip, RNG streams."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from servesim.specs.common import SpecError
from servesim.specs.config import (
    DEFAULT_CONFIG,
    ENGINE_PROFILES,
    apply_override,
    config_to_dict,
    load_config,
    rng_streams,
)


def _cfg(**pool):
    return {
        "model": "llama-3.1-8b",
        "deployment": {"pools": [{"role": "colocated", "hardware": "h100-sxm", **pool}]},
        "workload": {
            "arrivals": {"process": "poisson", "rate": 2.0},
            "lengths": {
                "input": {"dist": "fixed", "mean": 100},
                "output": {"dist": "fixed", "mean": 10},
            },
            "num_requests": 10,
        },
    }


def test_config_default_loads_llama8b_on_one_h100():
    cfg = load_config()
    pool = cfg.deployment.pools[0]
    assert cfg.model.name == "llama-3.1-8b"
    assert pool.hardware.name == "h100-sxm" and pool.instances == 1
    assert pool.scheduler.policy == "sarathi"
    assert dict(cfg.slo.ttft_ms) == {"p90": 500.0} and dict(cfg.slo.tpot_ms) == {"p99": 50.0}
    assert cfg.seed == 0 and cfg.source == "<default>"
    assert DEFAULT_CONFIG["workload"]["trace"]["path"].endswith("azure_conv_sample.csv")


def test_config_round_trip_through_dict_is_identity():
    for data in (None, _cfg(instances=3, parallelism={"tp": 2}, scheduler={"engine": "trtllm"})):
        cfg = load_config(data)
        again = load_config(config_to_dict(cfg))
        assert dataclasses.replace(again, source=cfg.source) == cfg


def test_config_round_trip_through_yaml_file(tmp_path):
    import yaml

    cfg = load_config(_cfg(scheduler={"engine": "sglang", "max_num_batched_tokens": 4096}))
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(cfg)))
    again = load_config(path)
    assert again.source == str(path)
    assert dataclasses.replace(again, source=cfg.source) == cfg


def test_config_overrides_dotted_keys_with_list_index():
    cfg = load_config(
        _cfg(), {"deployment.pools.0.instances": "4", "workload.arrivals.rate": 5, "seed": 7}
    )
    assert cfg.deployment.pools[0].instances == 4
    assert cfg.workload.arrivals.rate == 5.0
    assert cfg.seed == 7


def test_config_override_index_out_of_range_is_spec_error():
    with pytest.raises(SpecError, match="out of range"):
        load_config(_cfg(), {"deployment.pools.3.instances": 2})


def test_config_override_unknown_key_is_spec_error():
    with pytest.raises(SpecError, match="unknown key"):
        load_config(_cfg(), {"deployment.pools.0.scheduler.max_seqs": 2})


def test_config_apply_override_leaves_input_untouched():
    data = _cfg()
    out = apply_override(data, "deployment.pools.0.instances", 2, "<t>")
    assert "instances" not in data["deployment"]["pools"][0]
    assert out["deployment"]["pools"][0]["instances"] == 2


@pytest.mark.parametrize(
    ("pool", "match"),
    [
        ({"scheduler": {"policy": "fifo"}}, "must be one of"),
        ({"instances": 0}, ">= 1"),
        ({"parallelism": {"tp": 3}}, "attention heads"),
        ({"parallelism": {"ep": 2}}, "MoE"),
        ({"scheduler": {"max_num_seqs": 512, "max_num_batched_tokens": 256}}, ">= max_num_seqs"),
        ({"scheduler": {"gpu_memory_utilization": 1.5}}, "<= 1"),
        ({"role": "ffn"}, "pool roles"),
        ({"colour": "red"}, "unknown key"),
        ({"micro_batches": 2}, "only an attention pool"),
    ],
)
def test_config_bad_pool_is_one_line_spec_error(pool, match):
    with pytest.raises(SpecError, match=match) as info:
        load_config(_cfg(**pool))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("link", ["kv_link", "af_link"])
def test_config_link_without_its_pools_is_spec_error_not_ignored(link):
    data = _cfg()
    data["deployment"][link] = {"bandwidth_GBps": 50}
    with pytest.raises(SpecError, match=f"deployment.{link}"):
        load_config(data)


def test_config_unknown_model_and_hardware_are_spec_errors():
    with pytest.raises(SpecError):
        load_config({**_cfg(), "model": "no-such-model"})
    with pytest.raises(SpecError):
        load_config(_cfg(hardware="no-such-gpu"))


def test_config_unknown_top_level_key_is_spec_error():
    with pytest.raises(SpecError, match="unknown key"):
        load_config({**_cfg(), "modle": "x"})


def test_config_engine_profile_fills_unset_keys_only():
    cfg = load_config(_cfg(scheduler={"engine": "vllm", "max_num_seqs": 64}))
    s = cfg.deployment.pools[0].scheduler
    assert s.engine == "vllm" and s.max_num_seqs == 64
    assert (
        s.max_num_batched_tokens == ENGINE_PROFILES["vllm"]["scheduler"]["max_num_batched_tokens"]
    )
    assert s.enable_prefix_caching is True
    trt = load_config(_cfg(scheduler={"engine": "trtllm"})).deployment.pools[0].scheduler
    assert trt.policy == "orca" and trt.reserve_output is True
    sgl = load_config(_cfg(scheduler={"engine": "sglang"})).deployment.pools[0].scheduler
    assert sgl.max_num_seqs is None and sgl.policy == "prefill_first"  # no mixed chunks
    # vLLM picks smaller batch defaults on A100s (and GPUs under 70 GiB)
    a100 = (
        load_config(_cfg(hardware="a100-sxm", scheduler={"engine": "vllm"}))
        .deployment.pools[0]
        .scheduler
    )
    assert (a100.max_num_seqs, a100.max_num_batched_tokens) == (256, 2048)


def test_config_overhead_defaults_to_hardware_profile():
    cfg = load_config(_cfg())
    pool = cfg.deployment.pools[0]
    assert pool.overhead_s == pool.hardware.overhead_s
    assert load_config(_cfg(overhead_s=0.0)).deployment.pools[0].overhead_s == 0.0


def test_config_slo_and_sim_blocks_parse():
    cfg = load_config(
        {
            **_cfg(),
            "slo": {"ttft_ms": {"p99": 800, "mean": 200}, "e2el_ms": 9000},
            "sim": {"step_log": "runs", "fast_forward": False},
        }
    )
    assert cfg.slo.ttft_ms == (("mean", 200.0), ("p99", 800.0))
    assert cfg.slo.e2el_ms == (("p90", 9000.0),)
    assert cfg.sim.step_log == "runs" and cfg.sim.fast_forward is False
    with pytest.raises(SpecError):
        load_config({**_cfg(), "slo": {"ttft_ms": {"p42": 1}}})


def test_config_rng_streams_are_named_deterministic_and_independent():
    a, b = rng_streams(5), rng_streams(5)
    assert list(a) == ["arrivals", "lengths", "router", "moe"]
    for k in a:
        assert np.array_equal(a[k].random(4), b[k].random(4))
    c = rng_streams(5)
    assert not np.array_equal(c["arrivals"].random(4), c["lengths"].random(4))
    assert not np.array_equal(
        rng_streams(6)["router"].random(4), rng_streams(5)["router"].random(4)
    )
