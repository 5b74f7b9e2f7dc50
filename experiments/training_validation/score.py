"""Score `servesim.train` against published training throughput (data.csv, each row with its source).

    python experiments/training_validation/score.py [--csv out.csv]

Prints one line per row (predicted vs measured tokens/s per GPU, memory and fit) and the error per
source. Measured values are converted to tokens/s per GPU by the rule in `measured_as`:
  tps              tokens/s per GPU as published
  step_time        tokens per step / step time / GPUs (computed in data.csv's note)
  gpu_hours_per_T  1e12 / (GPU-hours per trillion tokens x 3600)
  tflops_megatron  TFLOP/s per GPU / (96 l h^2 (1 + s/6h + V/16lh)) per token: arXiv 2104.04473's
                   formula (it counts full recomputation, which these runs used)
  tflops_model     TFLOP/s per GPU / servesim's model FLOPs per token (6N + causal-halved attention;
                   the Llama 3 paper does not state its convention)
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from servesim.specs.model import load_model, parse_hf_config  # noqa: E402
from servesim.training import train  # noqa: E402
from servesim.training.flops import model_flops_per_token  # noqa: E402

HERE = Path(__file__).resolve().parent


def gpt_model(spec: str):
    """`gpt:h=..;l=..;a=..` -> a Megatron GPT (vocab 51200, learned positions 2048)."""
    kv = dict(item.split("=") for item in spec[4:].split(";"))
    h, layers, a = int(kv["h"]), int(kv["l"]), int(kv["a"])
    cfg = {"architectures": ["GPT2LMHeadModel"], "n_embd": h, "n_layer": layers, "n_head": a,
           "vocab_size": int(kv.get("v", 51200)), "n_positions": 2048}  # fmt: skip
    return parse_hf_config(cfg, "data.csv", name=f"gpt-{h}x{layers}")


def measured(row: dict, model) -> float:
    value, kind = float(row["measured_tokens_per_s_per_gpu"]), row["measured_as"]
    s = int(row["seq_len"])
    if kind == "tflops_megatron":
        h, n, V = model.hidden_size, model.num_layers, model.vocab_size
        per_token = 96 * n * h * h * (1 + s / (6 * h) + V / (16 * n * h))
        return value * 1e12 / per_token
    if kind == "tflops_model":
        return value * 1e12 / model_flops_per_token(model, s)
    return value


def run(path: Path = HERE / "data.csv") -> list[dict]:
    out = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            m = (
                gpt_model(row["model"])
                if row["model"].startswith("gpt:")
                else load_model(row["model"])
            )
            est = train(
                m, row["hardware"], devices=int(row["devices"]), tp=int(row["tp"]),
                pp=int(row["pp"]), cp=int(row["cp"]), ep=int(row["ep"]), vp=int(row["vp"]),
                seq_len=int(row["seq_len"]), global_batch=int(row["global_batch"]),
                micro_batch=int(row["micro_batch"]), recompute=row["recompute"],
                zero=row["zero"], dtype=row["dtype"], framework=row["framework"],
                schedule=row["schedule"],
            )  # fmt: skip
            rec = {"source": row["source"], "model": m.name, "hardware": row["hardware"],
                   "devices": int(row["devices"]), "ran": row["ran"],
                   "predicted": est.tokens_per_s_per_device,
                   "memory_GiB": est.memory_per_device_bytes / 2**30, "fits": est.fits,
                   "bottleneck": est.bottleneck}  # fmt: skip
            if row["measured_tokens_per_s_per_gpu"]:
                meas = measured(row, m)
                rec.update(measured=meas, error=est.tokens_per_s_per_device / meas - 1.0)
            if row.get("measured_memory_GiB"):
                mem = float(row["measured_memory_GiB"])
                rec.update(measured_memory_GiB=mem, memory_error=rec["memory_GiB"] / mem - 1.0)
            out.append(rec)
    return out


def summary(rows: list[dict]) -> dict:
    by: dict[str, list[float]] = {}
    for r in rows:
        if "error" in r:
            by.setdefault(r["source"], []).append(abs(r["error"]))
    errs = [e for v in by.values() for e in v]
    fit_ok = sum((r["fits"] == (r["ran"] == "yes")) for r in rows)
    mem = [abs(r["memory_error"]) for r in rows if "memory_error" in r]
    return {"median_abs_error": statistics.median(errs),
            "per_source": {k: (len(v), statistics.median(v)) for k, v in by.items()},
            "fit_agreement": (fit_ok, len(rows)), "memory_rows": len(mem),
            "memory_median_abs_error": statistics.median(mem) if mem else None}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", help="write the per-row table here")
    args = ap.parse_args()
    rows = run()
    print(f"{'source':22s} {'model':18s} {'hw':10s} {'GPUs':>6s} {'pred':>8s} {'meas':>8s} "
          f"{'err':>7s} {'GiB':>6s} fits ran")  # fmt: skip
    for r in rows:
        meas = f"{r['measured']:8.1f}" if "measured" in r else "       -"
        err = f"{r['error']:+7.1%}" if "error" in r else "      -"
        print(f"{r['source']:22s} {r['model'][:18]:18s} {r['hardware']:10s} {r['devices']:6d} "
              f"{r['predicted']:8.1f} {meas} {err} {r['memory_GiB']:6.1f} {str(r['fits']):5s} {r['ran']}")  # fmt: skip
    s = summary(rows)
    print(f"\nmedian |error| {s['median_abs_error']:.1%}")
    for k, (n, e) in s["per_source"].items():
        print(f"  {k:22s} rows {n:2d}  median |error| {e:.1%}")
    print(f"memory fit agrees with what ran: {s['fit_agreement'][0]}/{s['fit_agreement'][1]}")
    for r in rows:
        if "memory_error" in r:
            print(f"  memory {r['model']:16s} {r['devices']:5d} GPUs: predicted "
                  f"{r['memory_GiB']:5.1f} GiB, published {r['measured_memory_GiB']:5.1f} "
                  f"({r['memory_error']:+.0%})")  # fmt: skip
    print(
        f"memory per device: median |error| {s['memory_median_abs_error']:.0%} "
        f"over {s['memory_rows']} published readings"
    )
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=sorted({k for r in rows for k in r}))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
