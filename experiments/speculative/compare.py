"""Simulated vs published speculative-decoding speedups (docs/accuracy.md, "Speculative decoding").

    python experiments/speculative/compare.py      # ~1 min on 2 shared cores; writes results.md

The simulator gets the acceptance length each measurement reported (a constant per-token rate
with 1 + a + ... + a^k equal to it), so the comparison checks the step cost (draft passes,
verification over k+1 tokens) and the engine, not the acceptance model.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

import published as P  # noqa: E402

import servesim  # noqa: E402
from servesim.specs.speculative import rate_for_length  # noqa: E402


def config(model, hw, conc, n, tp=1, ep=1, spec=None, isl=128, osl=256, seqs=256, dtype="bf16"):
    pool = {"role": "colocated", "hardware": hw, "parallelism": {"tp": tp, "ep": ep},
            "scheduler": {"policy": "sarathi", "max_num_seqs": seqs}}  # fmt: skip
    if spec:
        pool["speculative"] = spec
    return {"model": model, "dtype": dtype, "seed": 0, "deployment": {"pools": [pool]},
            "workload": {"clients": {"concurrency": conc}, "num_requests": n,
                         "lengths": {"input": {"dist": "fixed", "mean": isl},
                                     "output": {"dist": "fixed", "mean": osl}}}}  # fmt: skip


def spec_of(method, k, al):
    return {"method": method, "num_speculative_tokens": k,
            "acceptance": {"rate": round(rate_for_length(al, k), 6)}}  # fmt: skip


def summary(cfg):
    return servesim.simulate(cfg, progress=False).summary


def batch1() -> tuple[list[str], list[float]]:
    d = P.LLAMA8B_BS1
    base = summary(config(d["model"], d["hardware"], 1, 24))["tpot_ms_mean"]
    rows = [f"| vanilla | - | - | {d['vanilla_tpot_ms']:.2f} | {base:.2f} | - | - | - |"]
    errs = []
    best = {}
    for method in ("eagle", "eagle3"):
        sim_tpot = {}
        for k, (al, tpot) in sorted(d[method].items()):
            s = summary(config(d["model"], d["hardware"], 1, 24, spec=spec_of(method, k, al)))
            sim_tpot[k] = s["tpot_ms_mean"]
            meas, sim = d["vanilla_tpot_ms"] / tpot, base / s["tpot_ms_mean"]
            err = sim / meas - 1
            errs.append(err)
            rows.append(f"| {method} | {k} | {al:.2f} | {tpot:.2f} | {s['tpot_ms_mean']:.2f} | "
                        f"{meas:.2f}x | {sim:.2f}x | {err:+.1%} |")  # fmt: skip
        best[method] = min(sim_tpot, key=sim_tpot.get)
    rows.append("")
    rows.append("Best k (lowest TPOT): measured " + ", ".join(
        f"{m} {d['best_k'][m]}" for m in best) + "; simulated " + ", ".join(
        f"{m} {k}" for m, k in best.items()))  # fmt: skip
    return rows, errs


def batched(entry, conc, n, **kw) -> tuple[str, float]:
    e = entry
    base = summary(config(e["model"], e["hardware"], conc, n, **kw))
    spec = summary(config(e["model"], e["hardware"], conc, n,
                          spec=spec_of(e["method"], e["k"], e["acceptance_length"]), **kw))  # fmt: skip
    sim = spec["output_throughput"] / base["output_throughput"]
    err = sim / e["speedup"] - 1
    row = (f"| {e['model']} {e['hardware']} | {e['method']} k={e['k']} | {conc} | "
           f"{e['speedup']:.2f}x | {sim:.2f}x | {err:+.1%} |")  # fmt: skip
    return row, err


def main() -> None:
    out = ["# Speculative decoding: simulated vs published", "",
           "## Batch 1: Llama-3.1-8B, one H100, MT-bench (vLLM issue #20780)", "",
           "| method | k | acceptance length | TPOT measured ms | TPOT simulated ms | speedup "
           "measured | speedup simulated | error |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    rows, errs = batch1()
    out += rows
    mae = sum(abs(e) for e in errs) / len(errs)
    out += ["", f"Speedup error: mean |error| {mae:.1%}, max |error| {max(map(abs, errs)):.1%} "
            f"over {len(errs)} points.", "",
            "## Larger batches (throughput speedup)", "",
            "| deployment | method | batch | measured | simulated | error |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    r1, _ = batched(P.EAGLE3_BS64, 64, 192)
    e = P.DSV3_MTP
    r2, _ = batched(e, e["batch"], 128, tp=e["tp"], ep=e["ep"], dtype="fp8")
    out += [r1, r2, ""]
    text = "\n".join(out)
    (HERE / "results.md").write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
