"""Simulate NVIDIA's published NIM benchmark and compare point by point.

Measured: Llama-3.3-70B-Instruct FP8 on 2 x H100 80GB (TP2), NIM 1.8.0 (TensorRT-LLM),
ISL 5000 / OSL 500, fixed concurrency 1..250 (genai-perf): output tokens/s, mean TTFT, mean ITL.
Source: NVIDIA NIM LLM Benchmarking guide 1.0.0, Performance page; the rows are in
../shared/data/measured/e2e_nim_h100_tp2.csv (not part of this repository).

    python experiments/nim_validation/run_validation.py [--requests-per-client 8] [--write-readme]

Each point runs `concurrency` closed-loop clients with fixed 5000/500 lengths through one
colocated TP2 instance with the `trtllm` engine profile. The first `concurrency` requests (all sent
at t = 0, a cold start genai-perf does not have in steady state) and those still running after
the last arrival (the drain) are dropped; the rest give the steady-state figures, output tok/s by
Little's law (see `steady_metrics`). genai-perf's ITL is per request (latency - TTFT) / (output tokens - 1),
averaged, which is servesim's TPOT.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
MEASURED = "measured/e2e_nim_h100_tp2.csv"
ISL, OSL = 5000, 500


def point_config(concurrency: int, num_requests: int, seed: int = 0) -> dict[str, Any]:
    """The run config of one measured point."""
    return {
        "model": "llama-3.3-70b",
        # NIM's FP8 TensorRT-LLM profile: FP8 weights and activations; FP8 KV cache assumed
        "dtype": {"weights": "fp8", "activations": "fp8", "kv_cache": "fp8"},
        "deployment": {
            "pools": [
                {
                    "role": "colocated",
                    "hardware": "h100-sxm",
                    "instances": 1,
                    "parallelism": {"tp": 2},
                    # NIM 1.0 ran a 0.x TensorRT-engine build of TensorRT-LLM (no overlap scheduler)
                    "scheduler": {"engine": "trtllm@0.17"},
                }
            ]
        },
        "workload": {
            "clients": {"concurrency": int(concurrency)},
            "lengths": {
                "input": {"dist": "fixed", "mean": ISL},
                "output": {"dist": "fixed", "mean": OSL},
            },
            "num_requests": int(num_requests),
        },
        "seed": seed,
    }


def steady_metrics(result: Any, concurrency: int) -> dict[str, float]:
    """Steady-state figures of a closed-loop run, comparable with genai-perf's.

    Every client is busy from t = 0 to the last arrival (after it clients stop sending and the
    batch drains). The kept requests are those that arrive after the initial burst (the first
    `concurrency` requests, sent together at t = 0) and finish before the last arrival, so each
    one ran at full load from its first to its last token. Requests still running after the last
    arrival are dropped: fewer prefills interrupt their decodes, which would bias ITL low.

    genai-perf's output token throughput is the total output tokens of the measured requests
    over (last response - first request); over a long steady stretch that is the closed loop's
    `concurrency x tokens per request / request latency` (Little's law, no think time here),
    which is what is computed. Counting the tokens emitted between two instants instead depends
    on where the instants fall: with fixed lengths the simulated clients run in lockstep, the
    prefills come in bursts, and a window from one arrival to another over-weights the bursts.
    """
    from servesim.studies.steady import steady_window  # the same window as `bench --steady-state`

    keep, window = steady_window(result.requests, concurrency)
    tokens = float(keep["output_tokens"].sum())
    return {
        "output_tok_s": concurrency * tokens / float(keep["e2el_s"].sum()),
        "ttft_ms": float(keep["ttft_s"].mean() * 1e3),
        "itl_ms": float(keep["tpot_s"].mean() * 1e3),
        "requests": int(len(keep)),
        "window": window,
    }


def simulate_point(
    concurrency: int, requests_per_client: float = 8.0, min_requests: int = 24
) -> dict:
    import servesim

    n = max(int(math.ceil(concurrency * (1 + requests_per_client))), min_requests)
    result = servesim.simulate(point_config(concurrency, n))
    out = steady_metrics(result, concurrency)
    out["kv_usage_max"] = result.summary.get("kv_usage_max")
    out["preemptions"] = result.summary.get("preemptions")
    return out


def load_measured(data_dir: Path) -> list[dict[str, float]]:
    with open(data_dir / MEASURED, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [
        {
            "concurrency": int(r["concurrency"]),
            "output_tok_s": float(r["output_throughput_tok_s"]),
            "ttft_ms": float(r["ttft_mean_ms"]),
            "itl_ms": float(r["itl_mean_ms"]),
        }
        for r in rows
    ]


def compare(
    measured: list[dict], requests_per_client: float = 8.0, points: list[int] | None = None
) -> list[dict]:
    rows = []
    for m in measured:
        c = m["concurrency"]
        if points and c not in points:
            continue
        s = simulate_point(c, requests_per_client)
        row = {"concurrency": c}
        for key in ("output_tok_s", "ttft_ms", "itl_ms"):
            row[f"sim_{key}"] = s[key]
            row[f"meas_{key}"] = m[key]
            row[f"err_{key}"] = (s[key] - m[key]) / m[key]
        row["kv_usage_max"] = s["kv_usage_max"]
        rows.append(row)
        print(_fmt_row(row), file=sys.stderr, flush=True)
    return rows


def _fmt_row(r: dict) -> str:
    return (
        f"| {r['concurrency']} | {r['sim_output_tok_s']:.0f} | {r['meas_output_tok_s']:.0f} | "
        f"{100 * r['err_output_tok_s']:+.0f}% | {r['sim_ttft_ms']:.0f} | {r['meas_ttft_ms']:.0f} | "
        f"{100 * r['err_ttft_ms']:+.0f}% | {r['sim_itl_ms']:.1f} | {r['meas_itl_ms']:.1f} | "
        f"{100 * r['err_itl_ms']:+.0f}% |"
    )


def table(rows: list[dict]) -> str:
    head = (
        "| concurrency | sim tok/s | NIM tok/s | err | sim TTFT ms | NIM TTFT ms | err | "
        "sim ITL ms | NIM ITL ms | err |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head] + [_fmt_row(r) for r in rows]
    mape = {
        k: 100 * sum(abs(r[f"err_{k}"]) for r in rows) / len(rows)
        for k in ("output_tok_s", "ttft_ms", "itl_ms")
    }
    lines.append(
        f"| MAPE | | | {mape['output_tok_s']:.0f}% | | | {mape['ttft_ms']:.0f}% | | | "
        f"{mape['itl_ms']:.0f}% |"
    )
    return "\n".join(lines)


BEGIN, END = "<!-- table:begin -->", "<!-- table:end -->"


def write_readme(text: str) -> None:
    path = HERE / "README.md"
    doc = path.read_text(encoding="utf-8")
    a, b = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    path.write_text(doc[:a] + "\n" + text + "\n" + doc[b:], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--requests-per-client", type=float, default=8.0)
    ap.add_argument("--points", type=int, nargs="*", help="concurrency values (default: all)")
    ap.add_argument("--write-readme", action="store_true", help="put the table into README.md")
    args = ap.parse_args(argv)
    rows = compare(load_measured(args.data), args.requests_per_client, args.points)
    text = table(rows)
    print(text)
    if args.write_readme:
        write_readme(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
