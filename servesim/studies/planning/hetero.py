"""Heterogeneous prefill/decode: prefill pools on one device, decode pools on another.

With mode `pd` and two or more hardware types, every ordered pair of different devices is
tried with the same batching cap, each side at its smallest fitting layout (fewest devices per
instance): prefill rate from the prefill device's family, decode rate from the decode device's.
The search then sizes the P and D counts as for homogeneous PD.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def hetero_families(fams: list[Any]) -> list[Any]:
    smallest: dict[tuple[str, int], Any] = {}
    for f in fams:
        if f.mode != "pd" or f.dec is not None:
            continue
        key = (f.hardware, f.cap)
        if key not in smallest or f.tp * f.pp < smallest[key].tp * smallest[key].pp:
            smallest[key] = f
    out = []
    for (hw_p, cap), fp in sorted(smallest.items()):
        for (hw_d, cap_d), fd in sorted(smallest.items()):
            if hw_d != hw_p and cap_d == cap:
                out.append(dataclasses.replace(fp, decode_rps=fd.decode_rps, dec=fd))
    return out


def devices(f: Any, shape: Mapping[str, int]) -> int:
    return shape["prefill"] * f.tp * f.pp + shape["decode"] * f.dec.tp * f.dec.pp


def hour_usd(f: Any, shape: Mapping[str, int]) -> float:
    """$/hour of a heterogeneous shape at the ordering prices (for the search's estimate)."""
    return (shape["prefill"] * f.tp * f.pp * f.price_hour
            + shape["decode"] * f.dec.tp * f.dec.pp * f.dec.price_hour)  # fmt: skip


def name(hardware: str) -> str:
    """A catalog id as is; a profile path (a user accelerator) by its file stem."""
    return Path(hardware).stem if str(hardware).endswith((".yaml", ".yml")) else str(hardware)


def label(f: Any) -> str:
    return f"{name(f.hardware)}+{name(f.dec.hardware)}"


def decode_pool(f: Any, n: int, sched: Mapping[str, Any]) -> dict[str, Any]:
    d = f.dec
    return {"role": "decode", "hardware": d.hardware, "instances": n,
            "parallelism": {"tp": d.tp, "pp": d.pp, "ep": d.ep},
            "scheduler": {**sched, "max_num_batched_tokens": d.mbt}}  # fmt: skip


def text(f: Any, shape: Mapping[str, int]) -> str:
    d = f.dec
    return (f"{shape['prefill']} x {f.hardware} TP{f.tp}" + (f" PP{f.pp}" if f.pp > 1 else "")
            + f" prefill + {shape['decode']} x {d.hardware} TP{d.tp}"
            + (f" PP{d.pp}" if d.pp > 1 else "") + f" decode, max_num_seqs {f.cap}")  # fmt: skip
