"""The shipped A100/H100 profiles against microsoft/vidur's measured timings (2024-era fp16
kernels), on rows held out of the model split.

Since 2026-12-03 the shipped profiles are fitted on aiconfigurator's timings of today's engine
kernels (docs/accuracy.md; tests/unit/test_aic_calibration.py re-scores those), so this is a
cross-source check: none of these rows was fitted. The bounds are the measured error plus a
small margin (a regression guard); the old kernels differ where noted.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from servesim.cost.calibrate import FamilyError, calibrate

FILES = ("vidur_linear_ops.csv", "vidur_attention.csv", "vidur_collectives.csv")

# (hardware, family) -> MAPE bound on held-out rows: the measured cross-source error + margin.
BOUNDS = {
    ("a100-sxm", "gemm"): 0.095,  # 8.2% (cuBLAS 2024 fp16 vs today's bf16 kernels)
    ("a100-sxm", "attn_decode"): 0.12,  # 10.9%
    ("a100-sxm", "attn_prefill"): 0.18,  # 16.6%
    # vidur's eager 2024 NCCL on DGX boxes vs the fit on aiconfigurator's nccl-tests rows (own
    # held-out 11-15%): 27.5% / 16.7% (23.6% / 12.7% before the ring-hop refit)
    ("a100-sxm", "allreduce>=1MiB"): 0.30,
    ("h100-sxm", "gemm"): 0.10,  # 9.1%
    # vidur's H100 attention rows are a fork's FlashAttention wrapper, 3-5x slower than the
    # FlashAttention-3 kernels engines run today (69.1% / 38.3%): the old rows, not the model
    ("h100-sxm", "attn_prefill"): 0.72,
    ("h100-sxm", "attn_decode"): 0.40,
    ("h100-sxm", "allreduce>=1MiB"): 0.19,
    ("a100-sxm", "p2p"): 0.10,  # 8.8% (p2p keeps the vidur fit: no aiconfigurator rows)
    ("h100-sxm", "p2p"): 0.10,  # 9.2%
}


@functools.lru_cache(maxsize=4)
def _scored(data_dir: str, hardware: str) -> dict[str, FamilyError]:
    """The shipped profile scored (not refitted) on the rows the model holdout keeps out."""
    measured = [Path(data_dir) / "measured" / f for f in FILES]
    result = calibrate(measured, hardware, holdout="model", fit=[])
    return {e.family: e for e in result.errors}


@pytest.mark.parametrize(("hardware", "family"), sorted(BOUNDS))
def test_accuracy_shipped_profile_meets_bound_on_held_out_rows(shared_data, hardware, family):
    err = _scored(str(shared_data), hardware)[family]
    assert err.after.n >= 5
    assert err.after.mape <= BOUNDS[(hardware, family)], err


@pytest.mark.parametrize("hardware", ["a100-sxm", "h100-sxm"])
def test_accuracy_shipped_profile_beats_defaults_where_fitted(shared_data, hardware):
    # GEMMs transfer across sources; p2p is still the vidur fit. Attention and all-reduce do
    # not: the 2024 kernels and eager NCCL calls are not what the profiles now describe.
    # (On A100 the datasheet defaults happen to sit at 6.0% on these 2024 fp16 GEMMs, the
    # aiconfigurator fit at 8.5%: today's bf16 kernels are faster at small M.)
    scored = _scored(str(shared_data), hardware)
    for family in ("gemm", "p2p") if hardware == "h100-sxm" else ("p2p",):
        assert scored[family].after.mape < scored[family].before.mape, family
