"""servesim calibrate: reading measured CSVs, fitting, held-out error, bad input."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from servesim.cli import cli, main
from servesim.cost import calibrate as cal
from servesim.specs.common import SpecError
from servesim.specs.hardware import load_hardware

LINEAR_HEADER = ["device", "model", "tp", "num_tokens", "op", "n_embd", "n_head", "n_kv_head",
                 "n_expanded_embd", "vocab_size", "gated", "measured_ms_median"]  # fmt: skip
MODELS = {  # (n_embd, n_head, n_kv_head, n_expanded_embd): Llama-2-7B and -13B, Llama-3-8B shapes
    "m/llama-2-7b": (4096, 32, 32, 11008),
    "m/llama-2-13b": (5120, 40, 40, 13824),
    "m/llama-3-8b": (4096, 32, 8, 14336),
}
TRUE = {"gemm_compute": 0.6, "gemm_memory": 0.65, "gemm_launch_s": 8e-6, "gemm_overlap": 3.0}


def write_synthetic_linear(path: Path) -> None:
    """GEMM rows timed by the model itself with TRUE efficiencies: a fit must recover them."""
    hw = cal.with_efficiency(load_hardware("a100-sxm"), TRUE)
    rows = []
    for model, (h, heads, kvh, inter) in MODELS.items():
        for tp in (1, 2):
            for m in (1, 16, 128, 512, 2048, 8192):
                for op in ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj"):
                    row = ["a100", model, tp, m, op, h, heads, kvh, inter, 32000, True, 1.0]
                    sample = cal._linear_samples(_frame([row]))[0][0]
                    row[-1] = cal.predict(hw, sample) * 1e3
                    rows.append(row)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(LINEAR_HEADER)
        w.writerows(rows)


def _frame(rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=LINEAR_HEADER)


def test_linear_samples_map_ops_to_gemm_shapes():
    rows = [["a100", "m", 2, 64, op, 4096, 32, 8, 14336, 128256, True, 0.1]
            for op in ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")]  # fmt: skip
    samples, _ = cal._linear_samples(_frame(rows))
    assert [s.call for s in samples] == [
        (64, (32 + 16) * 128 // 2, 4096),  # fused QKV: K = n_embd, N = (heads + 2 kv) hd / tp
        (64, 4096, 2048),  # O: K = n_embd / tp
        (64, 2 * 14336 // 2, 4096),  # gate + up
        (64, 4096, 14336 // 2),  # down: K = n_expanded / tp
    ]
    assert {s.family for s in samples} == {"gemm"}


def test_calibrate_recovers_known_efficiencies(tmp_path):
    path = tmp_path / "linear.csv"
    write_synthetic_linear(path)
    result = cal.calibrate(path, "a100-sxm", fit=["gemm"], holdout="model")
    fitted = dict(result.fitted)
    for key in ("gemm_compute", "gemm_memory"):
        assert fitted[key] == pytest.approx(TRUE[key], rel=0.03)
    gemm = next(e for e in result.errors if e.family == "gemm")
    assert gemm.holdout.startswith("models held out")
    assert gemm.after.mape < 0.01 < gemm.before.mape


def test_calibrate_out_writes_a_profile_block(tmp_path):
    path = tmp_path / "linear.csv"
    write_synthetic_linear(path)
    out = tmp_path / "eff" / "a100.yaml"
    cal.calibrate(path, "a100-sxm", fit=["gemm"], out=out, max_rows=40)
    block = yaml.safe_load(out.read_text())
    assert {"efficiency", "fitted", "name", "compute"} <= set(block)  # a whole profile
    assert load_hardware(out).eff("gemm_compute") == block["efficiency"]["gemm_compute"]
    assert all(isinstance(v, float) for v in block["efficiency"].values())
    assert "gemm_compute" in block["fitted"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp file left


def test_calibrate_lowers_held_out_error_on_measured_data(shared_data):
    linear = shared_data / "measured" / "vidur_linear_ops.csv"
    # start from the defaults (plus the SM count), not from the shipped fit
    hw = dataclasses.replace(load_hardware("a100-sxm"), efficiency=(("compute_units", 108.0),))
    result = cal.calibrate(linear, hw, fit=["gemm"], max_rows=300)
    gemm = next(e for e in result.errors if e.family == "gemm")
    assert gemm.after.n > 50
    assert gemm.after.mape < gemm.before.mape


def test_calibrate_collectives_leave_out_unmodelled_topologies(shared_data):
    coll = shared_data / "measured" / "vidur_collectives.csv"
    result = cal.calibrate(coll, "h100-sxm", fit=[], max_rows=200)
    assert {e.family for e in result.errors} >= {"allreduce", "allreduce>=1MiB", "p2p"}
    assert any("pairwise" in reason for reason, _ in result.excluded)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b\n1,2\n", "missing"),
        (",".join(LINEAR_HEADER) + "\n", "no rows"),
        ("", "not a readable CSV"),
        (",".join(LINEAR_HEADER) + "\na100,m,1,1,add,4096,32,8,11008,32000,True,-1\n", "positive"),
    ],
)
def test_read_measured_bad_csv_raises_spec_error(tmp_path, text, message):
    path = _write(tmp_path / "bad.csv", text)
    with pytest.raises(SpecError, match=message):
        cal.read_measured(path)


def test_calibrate_bad_arguments_raise_spec_error(tmp_path):
    path = tmp_path / "linear.csv"
    write_synthetic_linear(path)
    with pytest.raises(SpecError, match="holdout"):
        cal.calibrate(path, "a100-sxm", holdout="models")
    with pytest.raises(SpecError, match="unknown group"):
        cal.calibrate(path, "a100-sxm", fit=["gemms"])
    with pytest.raises(SpecError, match="no rows measured on h100-sxm"):
        cal.calibrate(path, "h100-sxm")
    with pytest.raises(SpecError, match="file not found"):
        cal.calibrate(tmp_path / "missing.csv", "a100-sxm")


def test_calibrate_cli_prints_error_table(tmp_path):
    path = tmp_path / "linear.csv"
    write_synthetic_linear(path)
    res = CliRunner().invoke(
        cli, ["calibrate", str(path), "--hw", "a100", "--fit", "gemm", "--max-rows", "40"]
    )
    assert res.exit_code == 0, res.output
    assert (
        "gemm" in res.output
        and "MAPE before" in res.output
        and "fitted: gemm_compute=" in res.output
    )


def test_calibrate_cli_bad_csv_exits_2(tmp_path, capsys):
    path = _write(tmp_path / "bad.csv", "a,b\n1,2\n")
    with pytest.raises(SystemExit) as exc:
        main(["calibrate", str(path), "--hw", "a100-sxm"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
