"""Reproduce the accuracy table of docs/accuracy.md: fit the A100 and H100 efficiencies on the
measured vidur data and report the error on held-out rows, per operator family.

    .venv/bin/python experiments/accuracy/run.py [--data DIR] [--out DIR]

DIR defaults to $SERVESIM_SHARED_DATA or ../shared/data (vidur commit 7d47513, data/profiling,
collected as CSV in measured/). Writes, under --out (default experiments/accuracy/out):
results.json (every number), table.md (the Markdown table), and <hw>.efficiency.yaml (the block
pasted into hw_profiles/<hw>.yaml). Takes well under a minute.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

from servesim.cost.calibrate import (
    DEVICE_PROFILES,
    FIT_GROUPS,
    calibrate,
    error_stats,
    read_measured,
    write_atomic,
)
from servesim.specs.hardware import load_hardware

REPO = Path(__file__).resolve().parents[2]
FILES = ("vidur_linear_ops.csv", "vidur_attention.csv", "vidur_collectives.csv")
# SM counts (datasheet numbers, also in the profiles): the quantisation terms need them.
UNITS = {"a100-sxm": 108, "h100-sxm": 132}  # A100 / H100 whitepapers: 108 SMs; 132 SMs (SXM5)
# The A100 prefill rows are 19 chunks of 64 tokens (FlashInfer): too narrow to identify prefill
# efficiencies that must also hold for long prompts. The A100 takes the H100's fitted prefill
# efficiencies instead (fractions of peak of the same kernel family) and is scored on its rows.
SKIP = {"a100-sxm": {"attn_prefill"}, "h100-sxm": set()}
TRANSFER = {
    "a100-sxm": ("h100-sxm", ("attn_compute", "attn_causal", "attn_overlap", "attn_row_keys"))
}
AIMS = {"gemm": 0.06, "attn_decode": 0.10, "attn_prefill": 0.15, "allreduce>=1MiB": 0.15}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_data = os.environ.get("SERVESIM_SHARED_DATA") or str(REPO.parent / "shared" / "data")
    ap.add_argument("--data", default=default_data)
    ap.add_argument("--out", default=str(REPO / "experiments" / "accuracy" / "out"))
    args = ap.parse_args()
    measured = [Path(args.data) / "measured" / f for f in FILES]
    out = Path(args.out)
    results = {}
    fitted: dict[str, dict[str, float]] = {}
    for name in ("h100-sxm", "a100-sxm"):
        hw = load_hardware(name)
        given = {"compute_units": float(UNITS[name])}
        if name in TRANSFER:
            source, keys = TRANSFER[name]
            given.update({k: fitted[source][k] for k in keys})
        base = dataclasses.replace(hw, efficiency=tuple(sorted(given.items())))
        groups = [g for g, _, _ in FIT_GROUPS if g not in SKIP[name]]
        result = calibrate(measured, base, holdout="model", fit=groups)
        fitted[name] = dict(result.efficiency)
        results[name] = result.to_dict()
        if name in TRANSFER:  # none of this device's prefill rows was fitted: score them all
            final = dataclasses.replace(hw, efficiency=result.efficiency)
            rows = [s for s in read_measured(measured[1])[1] if s.family == "attn_prefill"]
            rows = [s for s in rows if DEVICE_PROFILES.get(s.device) == name]
            results[name]["errors"].append(
                {"family": "attn_prefill (all rows)", "device": name, "holdout": "all rows",
                 "before": error_stats(base_defaults(hw), rows)._asdict(),
                 "after": error_stats(final, rows)._asdict()}
            )  # fmt: skip
        write_atomic(out / f"{name}.efficiency.yaml", result.to_yaml())
    write_atomic(out / "results.json", json.dumps(results, indent=2) + "\n")
    table = markdown_table(results)
    write_atomic(out / "table.md", table)
    print(table)


def base_defaults(hw):
    return dataclasses.replace(hw, efficiency=())


def markdown_table(results: dict) -> str:
    lines = [
        "| op family | device | held-out rows | MAPE before | MAPE after | median after | p90 after | aim |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, res in results.items():
        for e in res["errors"]:
            aim = AIMS.get(e["family"])
            b, a = e["before"], e["after"]
            lines.append(
                f"| {e['family']} | {name} | {a['n']} | {b['mape']:.1%} | **{a['mape']:.1%}** "
                f"| {a['median']:.1%} | {a['p90']:.1%} | {f'<= {aim:.0%}' if aim else '-'} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
