"""The shipped A100/H100 profiles against measured timings, on rows held out of their fit.

The aims (docs/accuracy.md): GEMMs MAPE <= 6%, decode attention <= 10%, prefill attention <= 15%,
all-reduce <= 15% for messages >= 1 MiB. Where the shipped fit misses an aim, the test holds the
documented limit instead, so a regression still fails; docs/accuracy.md says why.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from servesim.cost.calibrate import FamilyError, calibrate

FILES = ("vidur_linear_ops.csv", "vidur_attention.csv", "vidur_collectives.csv")

# (hardware, family) -> MAPE bound on held-out rows: the shipped error plus a small margin, never
# above the aim; where the aim is missed, the documented limit (comment).
BOUNDS = {
    ("a100-sxm", "gemm"): 0.057,  # shipped 5.3%
    ("a100-sxm", "attn_decode"): 0.08,  # 7.1%
    (
        "a100-sxm",
        "attn_prefill",
    ): 0.13,  # 12.0%; the H100 fit's efficiencies, none of these rows fitted
    ("a100-sxm", "allreduce>=1MiB"): 0.085,  # 7.6%
    ("h100-sxm", "attn_prefill"): 0.05,  # 4.1%
    ("h100-sxm", "allreduce>=1MiB"): 0.09,  # 7.9%
    (
        "h100-sxm",
        "gemm",
    ): 0.065,  # 6.1%; limit: aim 6%, cuBLAS kernel choice makes mid-M times jagged
    ("h100-sxm", "attn_decode"): 0.10,  # 9.5%; one model, transcribed rows
    ("a100-sxm", "p2p"): 0.10,  # 8.8%
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
    scored = _scored(str(shared_data), hardware)
    for family in ("gemm", "attn_decode", "allreduce>=1MiB", "p2p"):
        assert scored[family].after.mape < scored[family].before.mape, family
