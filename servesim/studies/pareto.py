"""The Pareto front of a table of candidates: shared by plan (its fronts) and report (their
figures), so that neither imports the other."""

from __future__ import annotations

import math

import pandas as pd


def pareto(
    df: pd.DataFrame, x: str, y: str, *, max_x: bool = False, max_y: bool = False
) -> pd.DataFrame:
    """Rows not dominated in (x, y); minimise both unless max_x/max_y."""
    d = df.dropna(subset=[x, y])
    if d.empty:
        return d
    sx = -d[x] if max_x else d[x]
    sy = -d[y] if max_y else d[y]
    order = sorted(range(len(d)), key=lambda i: (sx.iloc[i], sy.iloc[i]))
    keep, best = [], math.inf
    for i in order:
        if sy.iloc[i] < best:
            keep.append(i)
            best = sy.iloc[i]
    return d.iloc[keep].reset_index(drop=True)
