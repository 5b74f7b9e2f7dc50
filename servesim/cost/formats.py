"""Measured-timing formats ``servesim calibrate`` reads besides its long format.

- long format (calibrate.py ``_KINDS``): one row per (op, shape) with ``measured_ms_median``;
- vidur's own wide profiling files (``data/profiling/compute/<device>/<model>/mlp.csv``,
  ``.../attention.csv``, ``data/profiling/network/<device>/all_reduce.csv``, ``send_recv.csv``):
  one row per shape and one ``time_stats.<op>.median`` column per op, converted here to the long
  format (the device is read from the path, the model from the folders under the device);
- aiconfigurator's kernel tables (servesim/cost/aic.py; detected by their ``system``,
  ``backend``, ``sm_version``, ``latency_ms`` columns).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from servesim.specs.common import SpecError

_STAT = "time_stats."
LINEAR_WIDE = ("n_head", "n_kv_head", "n_embd", "n_expanded_embd", "num_tokens",
               "num_tensor_parallel_workers")  # fmt: skip
ATTENTION_WIDE = ("n_embd", "n_q_head", "n_kv_head", "num_tensor_parallel_workers", "batch_size",
                  "prefill_chunk_size", "kv_cache_size", "is_prefill")  # fmt: skip
COLLECTIVE_WIDE = ("num_workers", "size", "devices_per_node")


def is_wide(columns: Any) -> bool:
    return any(str(c).startswith(_STAT) and str(c).endswith(".median") for c in columns)


def _ops(df: pd.DataFrame) -> list[str]:
    return [c[len(_STAT) : -len(".median")] for c in df.columns
            if c.startswith(_STAT) and c.endswith(".median")]  # fmt: skip


def _device_and_model(path: Path) -> tuple[str, str]:
    """vidur's layout: .../compute/<device>/<org>/<model>/mlp.csv, .../network/<device>/x.csv,
    or .../profiling/<device>/x.csv."""
    parts = path.resolve().parts
    for anchor in ("compute", "network", "profiling"):
        if anchor in parts:
            i = len(parts) - 1 - parts[::-1].index(anchor)
            rest = parts[i + 1 : -1]
            if rest:
                return rest[0], "/".join(rest[1:]) or path.stem
    return "unknown", path.parent.name or path.stem


def wide_to_long(df: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """vidur's wide time_stats file as the long format; unknown layouts raise SpecError."""
    p = Path(path)
    device, model = _device_and_model(p)
    cols = set(df.columns)
    ops = _ops(df)
    if set(LINEAR_WIDE) <= cols:
        gated = df["use_gated_mlp"] if "use_gated_mlp" in cols else True
        base = pd.DataFrame({
            "device": device, "model": model, "tp": df["num_tensor_parallel_workers"],
            "num_tokens": df["num_tokens"], "n_embd": df["n_embd"], "n_head": df["n_head"],
            "n_kv_head": df["n_kv_head"], "n_expanded_embd": df["n_expanded_embd"],
            "gated": gated,
        })  # fmt: skip
        return _melt(base, df, ops)
    if set(ATTENTION_WIDE) <= cols:
        tp = df["num_tensor_parallel_workers"]
        prefill = df["is_prefill"].astype(str).str.lower().isin(("true", "1"))
        q = df["n_q_head"] // tp
        base = pd.DataFrame({
            "device": device, "model": model, "batch_size": df["batch_size"],
            "prefill_chunk_size": df["prefill_chunk_size"], "kv_cache_size": df["kv_cache_size"],
            "q_heads_per_gpu": q, "kv_heads_per_gpu": (df["n_kv_head"] // tp).clip(lower=1),
            "head_dim": df["n_embd"] // df["n_q_head"], "n_embd": df["n_embd"],
        })  # fmt: skip
        op = prefill.map({True: "attn_prefill", False: "attn_decode"})
        t = [df[f"{_STAT}{o}.median"].where(op == o) for o in ("attn_prefill", "attn_decode")
             if f"{_STAT}{o}.median" in cols]  # fmt: skip
        if not t:
            raise SpecError(str(p), "columns", "time_stats.attn_prefill/attn_decode.median",
                            "missing (vidur attention file)")  # fmt: skip
        base["op"] = op
        base["measured_ms_median"] = pd.concat(t, axis=1).bfill(axis=1).iloc[:, 0]
        return base.dropna(subset=["measured_ms_median"])
    if set(COLLECTIVE_WIDE) <= cols:
        per = df["devices_per_node"]
        base = pd.DataFrame({
            "network_device": device, "num_workers": df["num_workers"], "devices_per_node": per,
            "num_nodes": [math.ceil(n / d) for n, d in zip(df["num_workers"], per)],
            "size_bytes": df["size"],
        })  # fmt: skip
        return _melt(base, df, ops)
    raise SpecError(str(p), "columns", "time_stats.*.median",
                    "a wide vidur file needs the shape columns of mlp.csv ("
                    + ", ".join(LINEAR_WIDE) + "), attention.csv (" + ", ".join(ATTENTION_WIDE)
                    + ") or a collective file (" + ", ".join(COLLECTIVE_WIDE) + ")")  # fmt: skip


def _melt(base: pd.DataFrame, df: pd.DataFrame, ops: list[str]) -> pd.DataFrame:
    frames = []
    for op in ops:
        part = base.copy()
        part["op"] = op
        part["measured_ms_median"] = df[f"{_STAT}{op}.median"]
        frames.append(part.dropna(subset=["measured_ms_median"]))
    return pd.concat(frames, ignore_index=True)
