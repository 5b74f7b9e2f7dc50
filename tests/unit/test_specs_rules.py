"""Rules across config keys run once, at load: a config that loads is one the engine can run."""

from __future__ import annotations

import pytest

from servesim.sim.testing import placeholder_workload
from servesim.specs.common import SpecError
from servesim.specs.config import load_config


def _cfg(model, **par):
    pool = {"role": "colocated", "hardware": "h100-sxm", "parallelism": par}
    return {"model": model, "deployment": {"pools": [pool]}, "workload": placeholder_workload()}


def test_ep_that_does_not_divide_the_stage_fails_at_load():
    # qwen3-30b-a3b: 128 experts, so ep=8 divides the experts but not tp x dp_attn = 2 devices
    with pytest.raises(SpecError, match=r"parallelism\.ep = 8: must divide tp x dp_attn = 2"):
        load_config(_cfg("qwen3-30b-a3b", tp=2, ep=8))
    assert load_config(_cfg("qwen3-30b-a3b", tp=8, ep=8)).deployment.pools[0].parallelism.ep == 8


def test_cost_model_uses_the_same_rule_function():
    from servesim.cost import ops
    from servesim.specs import rules

    assert ops.validate_parallelism is rules.validate_parallelism


def test_af_pool_with_pipeline_stages_fails_at_load():
    pools = [
        {"role": "attention", "hardware": "h200-sxm", "parallelism": {"tp": 8}},
        {"role": "ffn", "hardware": "h200-sxm", "parallelism": {"tp": 8, "pp": 2}},
    ]
    data = {
        "model": "deepseek-v3",
        "deployment": {"pools": pools},
        "workload": placeholder_workload(),
    }
    with pytest.raises(SpecError, match=r"pools\.1\.parallelism\.pp = 2: must be 1 in an ffn pool"):
        load_config(data)
