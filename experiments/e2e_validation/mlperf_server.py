"""MLPerf Inference v4.1 server scenario, Llama-2-70B on DGX H100 (4 x TP2, FP8, TensorRT-LLM):
measured mean TTFT / TPOT at a Poisson load near capacity against the simulation.

    python experiments/e2e_validation/mlperf_server.py [--rate 75] [--hw h100-sxm]

Measured (closed/NVIDIA/results/DGX-H100_H100-SXM-80GBx8_TRT/llama2-70b-99.9/Server/performance/
run_1/mlperf_log_summary.txt in github.com/mlcommons/inference_results_v4.1, commit a2f5d66):
75.10 scheduled samples/s, 21,606 output tokens/s, mean first-token latency 276 ms, mean time per
output token 155 ms. Deployment (closed/NVIDIA/configs/llama2-70b/Server/__init__.py,
H100_SXM_80GB_TP2x4): tensor_parallelism 2, 4 instances, use_fp8, gpu_batch_size 1024,
kvcache_free_gpu_mem_frac 0.90.

Lengths: the log gives the mean output (21,606 / 74.42 = 290 tokens); the OpenOrca prompt lengths
are not in the log: estimate: mean 294 tokens, uniform over +-90% (an assumption, stated in the
output). This is a diagnostic, not a scored row of measurements.csv.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

MEASURED = {"output_tok_s": 21605.79, "ttft_ms": 275.9, "tpot_ms": 155.0}


def config(rate: float, hw: str, seconds: float) -> dict:
    return {
        "model": "llama-2-70b",
        "dtype": {"weights": "fp8", "activations": "fp8", "kv_cache": "fp8"},
        "deployment": {
            "pools": [
                {
                    "hardware": hw,
                    "instances": 4,
                    "engine": "trtllm@0.12",  # MLPerf v4.1 (Aug 2024): a 0.x TensorRT-engine build
                    "parallelism": {"tp": 2},
                    "scheduler": {"max_num_seqs": 1024, "gpu_memory_utilization": 0.9},
                }
            ],
            "router": "least_loaded",
        },
        "workload": {
            "arrivals": {"process": "poisson", "rate": rate},
            "lengths": {
                "input": {"dist": "uniform", "mean": 294, "range_ratio": 0.9},
                "output": {"dist": "uniform", "mean": 290, "range_ratio": 0.95},
            },
            "num_requests": int(rate * seconds),
        },
        "seed": 0,
    }


# The measured run's length: LoadGen's min_duration 2,400,000 ms (the log's "Test Parameters
# Used"); every summary metric covers the whole run, fill and drain included.
RUN_SECONDS = 2400.0

# Measured operating point per instance (4 instances): Little's law gives the requests running,
# N = rate x (TTFT + (output - 1) x TPOT); each step also prefills the prompts that arrived during it.
INSTANCES, PROMPT, OUTPUT = 4, 294, 290


def operating_point(rate: float, ttft_s: float, tpot_s: float) -> tuple[float, float, float]:
    """(running requests, mean context, prompt tokens prefilled per step) of one instance."""
    per = rate / INSTANCES
    running = per * (ttft_s + (OUTPUT - 1) * tpot_s)
    return running, PROMPT + OUTPUT / 2, per * tpot_s * PROMPT


def step_at(hw: str, running: float, context: float, prefill: float) -> tuple[float, dict]:
    """Simulated step time (s) and its largest operators at an operating point, with the pool's
    engine kernels: the same cost model the run uses, without the load feedback."""
    from servesim.analysis import batch_aggregates
    from servesim.cost.step import CostContext, breakdown, step_cost
    from servesim.specs.config import Parallelism
    from servesim.specs.dtypes import DTYPE_BYTES, DTypes
    from servesim.specs.engines import engine_kernels
    from servesim.specs.hardware import load_hardware
    from servesim.specs.model import load_model

    spec = load_hardware(hw).for_engine("trtllm@0.12")
    dt = DTypes("fp8", "fp8", "fp8")
    ctx = CostContext(load_model("llama-2-70b"), spec, Parallelism(tp=2), dt, spec.overhead_s, 1.0,
                      engine_kernels("trtllm@0.12", spec, DTYPE_BYTES["fp8"], DTYPE_BYTES["fp8"]))  # fmt: skip
    prompts = max(1, round(prefill / PROMPT))
    agg = batch_aggregates([(PROMPT, 0)] * prompts, [(round(running), round(context))])
    ops = sorted(breakdown(ctx, "colocated", agg), key=lambda o: -o.seconds * o.count)
    return step_cost(ctx, "colocated", agg).seconds, {o.name: o.seconds * o.count for o in ops[:6]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=75.0)
    ap.add_argument("--rates", default="", help="comma-separated rates: print the load curve")
    ap.add_argument("--hw", default="h100-sxm", help="hardware id or profile path (what-ifs)")
    # the run's length matters near capacity: a short run is mostly fill and drain
    ap.add_argument("--seconds", type=float, default=RUN_SECONDS, help="simulated arrival span")
    a = ap.parse_args()
    import servesim

    s = servesim.simulate(config(a.rate, a.hw, a.seconds)).summary
    sim = {"output_tok_s": s["output_throughput"], "ttft_ms": s["ttft_ms_mean"],
           "tpot_ms": s["tpot_ms_mean"]}  # fmt: skip
    print(f"rate {a.rate} req/s on {a.hw}; KV peak use {s.get('kv_usage_max', float('nan')):.2f}")
    for k, m in MEASURED.items():
        print(f"  {k:<13} sim {sim[k]:>9.1f}  measured {m:>9.1f}  ({sim[k] / m - 1:+.0%})")
    # the step at the measured operating point, free of the load feedback (Little's law)
    n, c, p = operating_point(75.10, MEASURED["ttft_ms"] / 1e3, MEASURED["tpot_ms"] / 1e3)
    t, ops = step_at(a.hw, n, c, p)
    print(f"measured operating point: {n:.0f} running per instance, context {c:.0f}, "
          f"{p:.0f} prompt tokens per step; simulated step {t * 1e3:.1f} ms vs measured TPOT "
          f"{MEASURED['tpot_ms']:.0f} ms ({t * 1e3 / MEASURED['tpot_ms'] - 1:+.0%})")  # fmt: skip
    print("  largest operators: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in ops.items()))
    if a.rates:
        print("\n| rate req/s | output tok/s | TTFT ms | TPOT ms | KV peak |")
        print("|---:|---:|---:|---:|---:|")
        for r in (float(x) for x in a.rates.split(",")):
            q = servesim.simulate(config(r, a.hw, a.seconds)).summary
            print(f"| {r:g} | {q['output_throughput']:.0f} | {q['ttft_ms_mean']:.0f} | "
                  f"{q['tpot_ms_mean']:.0f} | {q.get('kv_usage_max', float('nan')):.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
