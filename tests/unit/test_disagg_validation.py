"""Bad disaggregated deployments: one clear line, exit code 2."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from servesim.cli import main
from servesim.sim.cluster import run
from servesim.sim.testing import ListWorkload
from servesim.specs.common import SpecError
from servesim.specs.config import load_config

WORKLOAD = {
    "arrivals": {"process": "poisson", "rate": 1.0},
    "lengths": {"input": {"dist": "fixed", "mean": 64}, "output": {"dist": "fixed", "mean": 8}},
    "num_requests": 2,
}


def _pool(role, hw="h100-sxm", **par):
    return {"role": role, "hardware": hw, "parallelism": par or {"tp": 1}}


def _exit(tmp_path, capsys, model, pools, dtype="fp8", **dep):
    path = tmp_path / "cfg.yaml"
    cfg = {
        "model": model,
        "dtype": dtype,
        "deployment": {"pools": pools, **dep},
        "workload": WORKLOAD,
    }
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(SystemExit) as exc:
        main(["run", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    return exc.value.code, err


def test_disagg_prefill_without_decode_pool_exits_2(tmp_path, capsys):
    code, err = _exit(tmp_path, capsys, "llama-3.1-8b", [_pool("prefill")])
    assert code == 2 and err.count("\n") == 0
    assert "decode + prefill" in err


def test_disagg_ffn_without_attention_pool_exits_2(tmp_path, capsys):
    code, err = _exit(tmp_path, capsys, "deepseek-v3", [_pool("prefill"), _pool("ffn")])
    assert code == 2 and "pool roles" in err


def test_disagg_ep_not_dividing_experts_exits_2(tmp_path, capsys):
    pools = [
        _pool("attention", "h200-sxm", tp=8),
        _pool("ffn", "h200-sxm", tp=1, dp_attn=8, ep=6),
    ]
    code, err = _exit(tmp_path, capsys, "deepseek-v3", pools)
    assert code == 2 and "256 experts" in err and err.count("\n") == 0


def test_disagg_kv_not_fitting_decode_pool_exits_2(tmp_path, capsys):
    # Llama-3.1-70B in BF16 is ~141 GB of weights: it cannot sit on one 80 GB H100 decode instance
    pools = [_pool("prefill", tp=4), _pool("decode")]
    code, err = _exit(tmp_path, capsys, "llama-3.1-70b", pools, dtype="bf16")
    assert code == 2 and "does not fit" in err and "decode" in err


def test_disagg_ffn_pool_with_pipeline_stages_exits_2(tmp_path, capsys):
    pools = [_pool("attention", "h200-sxm", tp=8), _pool("ffn", "h200-sxm", tp=8, pp=2)]
    code, err = _exit(tmp_path, capsys, "deepseek-v3", pools)
    assert code == 2 and "pp" in err and err.count("\n") == 0


def test_disagg_model_without_ffn_part_raises_spec_error():
    cfg = load_config(
        {
            "model": "llama-3.1-8b",
            "deployment": {"pools": [_pool("attention"), _pool("ffn")]},
            "workload": WORKLOAD,
        }
    )
    bare = dataclasses.replace(cfg.model, intermediate_size=0)
    cfg = dataclasses.replace(cfg, model=bare)
    with pytest.raises(SpecError, match="no MLP or experts"):
        run(cfg, workload=ListWorkload([(0.0, 10, 2)]), kv_blocks=100)


def test_disagg_request_too_long_for_decode_instance_is_dropped_or_an_error_when_strict():
    cfg = load_config(
        {
            "model": "llama-3.1-8b",
            "deployment": {"pools": [_pool("prefill"), _pool("decode")]},
            "workload": WORKLOAD,
        }
    )
    # the prompt fits the prefill instance (7 blocks), prompt + output not a decode one (20)
    raw = run(cfg, workload=ListWorkload([(0.0, 100, 400), (0.1, 10, 2)]), kv_blocks=20)
    assert raw.dropped == {"failed_kv_capacity": 1} and raw.issued == 2
    strict = dataclasses.replace(cfg, sim=dataclasses.replace(cfg.sim, strict=True))
    with pytest.raises(SpecError, match="decode instance"):
        run(strict, workload=ListWorkload([(0.0, 100, 400)]), kv_blocks=20)
