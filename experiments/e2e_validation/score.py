"""Score servesim against the public end-to-end measurements in measurements.csv.

    python experiments/e2e_validation/score.py [--max-requests N] [--rows 1,2,5] [--out DIR]

Every row is simulated as the source ran it, with the deployment's engine profile
(``engine:`` of the pool) and nothing tuned per row:

- ``offline`` (trtllm-bench / vLLM benchmark_throughput): every request sent at t = 0 with fixed
  ISL/OSL; throughput = output tokens / (last finish - first arrival) / GPUs, as trtllm-bench's
  "Per GPU Output Throughput". The published runs use 1,000-30,000 requests; the simulation
  uses ``min(published, --max-requests)`` (default 30,000: every published count). With fixed
  lengths an offline run proceeds in waves of the running batch, and the last, partial wave
  weighs more the fewer requests there are: 1,000 (an earlier default) under-stated
  large-memory deployments, whose batch reaches 1,000-2,000, and 3,000 ran 128/128 on H100 as
  one partial wave of trtllm-bench's 4,096-sequence batch (-8%; the published 30,000: +3%,
  1 s).
- ``closed_loop`` (NIM, genai-perf): ``concurrency`` clients, steady-state window as in
  experiments/nim_validation.
- ``static_batch`` (vLLM benchmark_latency): one batch of ``concurrency`` prompts at t = 0, all
  admitted together; metric = time until the last finishes.
- ``ep_step`` (wide-EP profiles, e.g. SGLang's DeepSeek-V3 on 96 H100): one engine step at a
  fixed batch per device, ``concurrency`` = prompt tokens per device (``osl`` 0: a prefill
  step of ``isl``-token prompts) or decoding sequences per device (``isl`` = their KV length);
  metric = tokens per second per 8-GPU node. The step's cost model only: no scheduler.

Writes DIR/results.csv (row, metric, measured, simulated, signed error) and DIR/summary.md
(median |error| per metric; median signed error by dense/MoE, TP degree, GPU generation).
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE.parents[1] / "experiments" / "nim_validation"))

METRIC_CLASS = {
    "output_tok_s_per_gpu": "throughput",
    "output_tok_s": "throughput",
    "ttft_mean_ms": "ttft",
    "tpot_mean_ms": "tpot",
    "batch_latency_s": "latency",
    "ttft_ms": "ttft",
    "input_tok_s_per_node": "throughput",
    "output_tok_s_per_node": "throughput",
}


# The TensorRT-LLM release a source ran where it predates 1.0 (servesim.specs.engines.VERSIONS:
# the 0.x TensorRT-engine runtime has no overlap scheduler): the v0.5 latency tables, and NIM 1.0
# (estimate: a 0.x TensorRT-engine build, the NIM LLM containers before the PyTorch backend
# became TensorRT-LLM's default in 1.0; every 0.x selects the same profile entry). The perf
# overviews ran the PyTorch backend ("Starting with v0.19 ... the PyTorch backend").
ENGINE_VERSION = {"trtllm_perf_v0.5_low_latency": "0.5", "nim_benchmarking_1.0": "0.17"}


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def dtype_of(row: dict[str, str]) -> dict[str, str]:
    w = row["weights"]
    # fp8 checkpoints (ModelOpt FP8) quantise activations too; NVFP4 runs fp4 x fp4 GEMMs on
    # Blackwell; MXFP4 GPT-OSS experts on Hopper run as weight-only (bf16 activations).
    act = {
        "fp8": "fp8",
        "fp16": "fp16",
        "fp4": "fp4" if row["generation"] == "blackwell" else "bf16",
    }[w]
    if w == "fp4" and row["model"].startswith("gpt-oss") and row["generation"] == "blackwell":
        # GPT-OSS ships MXFP4 experts; TensorRT-LLM runs them with MXFP8 activations on
        # Blackwell (GPT-OSS deployment guide, "MoE Backend Support Matrix":
        # https://nvidia.github.io/TensorRT-LLM/deployment-guide/deployment-guide-for-gpt-oss-on-trtllm.html)
        act = "fp8"
    kv = row["kv_cache"]
    if kv == "auto":
        # NVIDIA's ModelOpt FP8 and NVFP4 checkpoints declare kv_cache_quant_algo FP8 in
        # hf_quant_config.json and TensorRT-LLM's KV dtype "auto" follows it; the MXFP4 GPT-OSS
        # checkpoints (weight-only here) declare none
        kv = "fp8" if act in ("fp8", "fp4") and row["engine"] == "trtllm" else "bf16"
    return {"weights": w, "activations": act, "kv_cache": kv}


# Sources whose published commands capture CUDA graphs with padding: both TensorRT-LLM
# perf-overview pages' llm_options.yml set cuda_graph_config enable_padding: true (batch sizes
# 1-8192) for every model, and trtllm-bench pads by default (get_settings: padding_enabled).
PADDED_GRAPHS = {"trtllm_perf_overview_v1.0", "trtllm_perf_overview_2026"}

# trtllm-bench's own scheduler limits (servesim.cost.trtllm_bench: both perf-overview pages pass
# neither --max_batch_size nor --max_num_tokens). Quantisations outside its TUNED_QUANTS (e.g.
# GPT-OSS's MXFP4) get BuildConfig's defaults, which are servesim's TensorRT-LLM defaults.
BENCH_SOURCES = {"trtllm_perf_overview_v1.0", "trtllm_perf_overview_2026"}


def bench_limits(row: dict[str, str]) -> dict[str, int]:
    """The max_num_seqs / max_num_batched_tokens trtllm-bench ran a TP-attention offline row with
    ({} for other rows, and for attention-DP rows, whose per-rank limits servesim's
    per-instance keys cannot express)."""
    if row["source"] not in BENCH_SOURCES or row["scenario"] != "offline":
        return {}
    if int(row["dp_attn"]) > 1:
        return {}
    from servesim.cost.trtllm_bench import trtllm_bench_limits
    from servesim.specs.dtypes import DTypes
    from servesim.specs.hardware import load_hardware
    from servesim.specs.model import load_model

    mxfp4 = row["weights"] == "fp4" and row["model"].startswith("gpt-oss")
    bs, tok = trtllm_bench_limits(
        load_model(row["model"]), load_hardware(row["hardware"]), DTypes(**dtype_of(row)),
        int(row["isl"]), int(row["osl"]), tp=int(row["tp"]), tuned=not mxfp4,
    )  # fmt: skip
    return {"max_num_seqs": bs, "max_num_batched_tokens": tok}


def config_of(row: dict[str, str], n: int, clients: int) -> dict[str, Any]:
    par: dict[str, int] = {"tp": int(row["tp"])}
    if row["ep"]:
        par["ep"] = int(row["ep"])
    if int(row["dp_attn"]) > 1:
        par["dp_attn"] = int(row["dp_attn"])
    version = ENGINE_VERSION.get(row["source"])
    engine = row["engine"] + (f"@{version}" if version else "")
    if row["source"] in PADDED_GRAPHS:
        engine += "+pad"
    sched: dict[str, Any] = {"engine": engine}
    if row["scenario"] == "static_batch":
        sched["max_num_seqs"] = int(row["concurrency"])
    sched.update(bench_limits(row))
    pool = {"role": "colocated", "hardware": row["hardware"], "parallelism": par,
            "scheduler": sched}  # fmt: skip
    deployment: dict[str, Any] = {"pools": [pool]}
    if row.get("redundant_experts"):  # EPLB replicas (wide-EP rows)
        deployment["moe_load"] = {"redundant_experts": int(row["redundant_experts"])}
    return {
        "model": row["model"],
        "dtype": dtype_of(row),
        "deployment": deployment,
        "workload": {
            "clients": {"concurrency": clients},
            "lengths": {
                "input": {"dist": "fixed", "mean": int(row["isl"])},
                "output": {"dist": "fixed", "mean": max(1, int(row["osl"]))},
            },
            "num_requests": n,
        },
        "seed": 0,
    }


def ep_step_row(row: dict[str, str]) -> float:
    """Tokens per second per 8-GPU node of one step at the row's fixed per-device batch."""
    from servesim.analysis import batch_aggregates
    from servesim.cost.step import CostContext, step_cost
    from servesim.sim.disagg import moe_imbalance_of
    from servesim.specs.config import load_config
    from servesim.specs.dtypes import DTYPE_BYTES
    from servesim.specs.engines import engine_kernels

    cfg = load_config(config_of(row, 1, 1))
    spec = cfg.deployment.pools[0]
    eng = engine_kernels(spec.scheduler.engine, spec.hardware, DTYPE_BYTES[cfg.dtypes.kv_cache],
                         DTYPE_BYTES[cfg.dtypes.weights], DTYPE_BYTES[cfg.dtypes.activations])  # fmt: skip
    ctx = CostContext(cfg.model, spec.hardware, spec.parallelism, cfg.dtypes, 0.0,
                      moe_imbalance_of(cfg, spec), eng,
                      cfg.deployment.moe_load.redundant_experts)  # fmt: skip
    gpus, per_dev, isl = int(row["gpus"]), int(row["concurrency"]), int(row["isl"])
    if int(row["osl"]) == 0:  # prefill: whole prompts, per_dev tokens on every device
        agg = batch_aggregates([(isl, 0)] * (per_dev * gpus // isl), ())
        role, tokens = "prefill", per_dev * gpus
    else:
        agg = batch_aggregates((), [(per_dev * gpus, isl)])
        role, tokens = "decode", per_dev * gpus
    return tokens / step_cost(ctx, role, agg).seconds / (gpus / 8)


def simulate_row(row: dict[str, str], max_requests: int) -> float:
    import servesim

    sc = row["scenario"]
    if sc == "ep_step":
        return ep_step_row(row)
    if sc == "closed_loop":
        from run_validation import steady_metrics

        c = int(row["concurrency"])
        n = max(int(math.ceil(c * 9)), 24)
        res = servesim.simulate(config_of(row, n, c))
        m = steady_metrics(res, c)
        key = {"output_tok_s": "output_tok_s", "ttft_mean_ms": "ttft_ms", "tpot_mean_ms": "itl_ms"}
        return float(m[key[row["metric"]]])
    if sc == "static_batch":
        b = int(row["concurrency"])
        res = servesim.simulate(config_of(row, b, b))
        req = res.requests
        if row["metric"] == "ttft_ms":
            return float(req["ttft_s"].mean() * 1e3)
        return float(req["finish_s"].max() - req["arrival_s"].min())
    n = min(int(row["num_requests"]), max_requests)
    res = servesim.simulate(config_of(row, n, n))
    req = res.requests
    span = float(req["finish_s"].max() - req["arrival_s"].min())
    return float(req["output_tokens"].sum()) / span / int(row["gpus"])


def group_table(results: list[dict]) -> str:
    lines = ["| group | rows | median abs err | median signed err |", "|---|---|---|---|"]

    def add(name: str, sel: list[dict]) -> None:
        errs = [r["err"] for r in sel if r["err"] is not None]
        if errs:
            lines.append(
                f"| {name} | {len(errs)} | {statistics.median(abs(e) for e in errs):.0%} "
                f"| {statistics.median(errs):+.0%} |"
            )

    add("all", results)
    for cls in ("throughput", "ttft", "tpot", "latency"):
        add(f"metric: {cls}", [r for r in results if r["class"] == cls])
    for kind in ("dense", "moe"):
        add(f"{kind}", [r for r in results if r["kind"] == kind])
    moe = [r for r in results if r["kind"] == "moe"]
    add("moe, 1 GPU", [r for r in moe if int(r["gpus"]) == 1])
    add(
        "moe, multi-GPU, TP attention (TPn)",
        [r for r in moe if r["layout"].startswith("TP") and int(r["gpus"]) > 1],
    )
    dep = [r for r in moe if r["layout"].startswith("DEP")]
    add("moe, attention DP (DEPn), <= 8 GPUs", [r for r in dep if int(r["gpus"]) <= 8])
    add("moe, wide EP (> 8 GPUs)", [r for r in dep if int(r["gpus"]) > 8])
    for g in sorted({int(r["gpus"]) for r in results}):
        add(f"GPUs per instance: {g}", [r for r in results if int(r["gpus"]) == g])
    for gen in ("ampere", "hopper", "blackwell", "cdna3"):
        add(f"generation: {gen}", [r for r in results if r["generation"] == gen])
    for src in sorted({r["source"] for r in results}):
        add(f"source: {src}", [r for r in results if r["source"] == src])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", default=str(HERE / "measurements.csv"))
    ap.add_argument("--max-requests", type=int, default=30000)
    ap.add_argument("--rows", default="", help="comma-separated row numbers (default all)")
    ap.add_argument("--out", default=str(HERE / "out"))
    args = ap.parse_args(argv)
    rows = read_rows(Path(args.table))
    if args.rows:
        keep = {int(x) for x in args.rows.split(",")}
        rows = [r for r in rows if int(r["row"]) in keep]
    results = []
    t0 = time.time()
    for r in rows:
        t = time.time()
        try:
            sim = simulate_row(r, args.max_requests)
            err = sim / float(r["value"]) - 1.0
            why = ""
        except Exception as e:  # a row the simulator cannot run is reported, not hidden
            sim, err, why = float("nan"), None, f"{type(e).__name__}: {e}"[:160]
        results.append({**r, "sim": sim, "err": err, "class": METRIC_CLASS[r["metric"]],
                        "why": why})  # fmt: skip
        e = f"{err:+.0%}" if err is not None else why
        print(f"{r['row']:>3} {r['model']:<16} {r['hardware']:<9} {r['layout']:<5} "
              f"{r['isl']:>5}/{r['osl']:<5} {r['metric']:<20} meas {float(r['value']):>9.1f} "
              f"sim {sim:>9.1f} {e}  ({time.time() - t:.1f}s)", flush=True)  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "results.csv").open("w", newline="") as f:
        cols = ["row", "source", "model", "kind", "hardware", "generation", "layout", "gpus",
                "scenario", "isl", "osl", "concurrency", "metric", "value", "sim", "err", "why"]  # fmt: skip
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in results:
            w.writerow({**r, "sim": f"{r['sim']:.4g}",
                        "err": "" if r["err"] is None else f"{r['err']:+.4f}"})  # fmt: skip
    summary = group_table(results)
    (out / "summary.md").write_text(summary + "\n")
    print(summary)
    print(f"{len(results)} rows in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
