"""Generate the bundled sample traces (synthetic; no row is copied from any public trace).

    python traces/make_samples.py                 # write the samples from the recorded parameters
    python traces/make_samples.py --refit DIR     # re-fit the parameters to the Azure 2023 traces in DIR
                                                  # (AzureLLMInferenceTrace_{conv,code}.csv), print them

The parameters below were fitted to the Azure LLM inference traces 2023 (Azure/AzurePublicDataset,
data/AzureLLMInferenceTrace_{conv,code}.csv, CC-BY-4.0; Patel et al., "Splitwise", ISCA 2024):
lengths as a three-component lognormal mixture of log(tokens) fitted by EM and clipped to the
trace's observed range; arrivals as a gamma renewal process with the trace's rate and CV of
inter-arrival times (conv), or on/off bursts (code: quiet gaps longer than 10 s separate bursts).
The same length parameters are the `lengths: {preset: azure-conv|azure-code}` distributions in
servesim/workload/synthetic.py; keep the two in step. traces/README.md lists the resulting
statistics next to the real traces'.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from servesim.workload.synthetic import LENGTH_PRESETS  # noqa: E402

SEED = 20231116
# Arrivals fitted to the real traces (refit prints these):
# conv: 19,366 requests in 3,501.7 s -> 5.530 req/s, CV of inter-arrival times 1.094.
CONV_ARRIVALS = {"rate": 5.530, "cv": 1.094}
# code: 8,819 requests, 45 gaps > 10 s (2,377 s of 3,436 s). Inside bursts: mean gap 0.1207 s,
# CV 3.008; between bursts: gaps lognormal (log-mean and log-sd below), ~192 requests per burst.
CODE_ARRIVALS = {
    "burst_gap_mean_s": 0.1207,
    "burst_gap_cv": 3.008,
    "requests_per_burst": 8818 / 45,
    "quiet_log_mean": 3.621,
    "quiet_log_sd": 0.815,
    "quiet_to_busy": 2377.4 / (3435.9 - 2377.4),
}
ROWS = {"conv": 2000, "code": 2000, "mooncake": 1000}
START_NS = 1735689600 * 10**9  # 2025-01-01 00:00:00 UTC: a neutral clock for the samples


def fit_mixture(x: np.ndarray, k: int = 3, iters: int = 500) -> list[list[float]]:
    """k-component Gaussian mixture of log(x) by EM: [[weight, mu, sigma], ...].

    Three components: two leave the conversation prompts' median 23% low and p99 50% high;
    three match p10/p50/p90 within about 10% (see traces/README.md).
    """
    y = np.log(np.maximum(x, 1))
    w, mu, sd = (
        np.full(k, 1.0 / k),
        np.percentile(y, np.linspace(10, 90, k)),
        np.full(k, y.std() / k),
    )
    for _ in range(iters):
        dens = w / (sd * np.sqrt(2 * np.pi)) * np.exp(-0.5 * ((y[:, None] - mu) / sd) ** 2)
        r = dens / dens.sum(axis=1, keepdims=True)
        nk = r.sum(axis=0)
        w, mu = nk / len(y), (r * y[:, None]).sum(axis=0) / nk
        sd = np.sqrt((r * (y[:, None] - mu) ** 2).sum(axis=0) / nk).clip(0.05)
    return [
        [round(float(a), 4), round(float(b), 4), round(float(c), 4)] for a, b, c in zip(w, mu, sd)
    ]


def refit(folder: Path) -> dict:
    from servesim.workload.traces import frame_stats, load_trace

    out = {}
    for name in ("conv", "code"):
        df = load_trace(folder / f"AzureLLMInferenceTrace_{name}.csv", "azure")
        gaps = np.diff(df["arrival_s"].to_numpy())
        quiet = gaps[gaps > 10]
        busy = gaps[gaps <= 10]
        out[name] = {
            "stats": frame_stats(df),
            "input": {
                "mixture": fit_mixture(df["prompt_tokens"].to_numpy()),
                "min": int(df["prompt_tokens"].min()),
                "max": int(df["prompt_tokens"].max()),
            },
            "output": {
                "mixture": fit_mixture(df["output_tokens"].to_numpy()),
                "min": int(df["output_tokens"].min()),
                "max": int(df["output_tokens"].max()),
            },
            "quiet_gaps": len(quiet),
            "quiet_log_mean": float(np.log(quiet).mean()) if len(quiet) else None,
            "quiet_log_sd": float(np.log(quiet).std()) if len(quiet) else None,
            "busy_gap_mean_s": float(busy.mean()),
            "busy_gap_cv": float(busy.std() / busy.mean()),
        }
    return out


def _sample_lengths(preset: str, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    from servesim.workload.synthetic import sample_mixture

    p = LENGTH_PRESETS[preset]
    return sample_mixture(p["input"], rng, n), sample_mixture(p["output"], rng, n)


def _gamma_gaps(rng, n, mean, cv):
    k = 1.0 / cv**2
    return rng.gamma(k, mean / k, n)


def _azure_csv(path: Path, arrival_s: np.ndarray, inp: np.ndarray, out: np.ndarray) -> None:
    ns = START_NS + np.round(arrival_s * 1e9 / 100).astype(np.int64) * 100  # 100 ns resolution
    stamps = pd.to_datetime(ns, unit="ns").strftime("%Y-%m-%d %H:%M:%S.%f")
    # Azure writes 7 fractional digits (100 ns); strftime gives 6 (us) -> append the 100 ns digit
    frac7 = (ns // 100) % 10
    stamps = [f"{s}{d}" for s, d in zip(stamps, frac7)]
    pd.DataFrame({"TIMESTAMP": stamps, "ContextTokens": inp, "GeneratedTokens": out}).to_csv(
        path, index=False
    )


def make_conv(rng: np.random.Generator, n: int) -> None:
    gaps = _gamma_gaps(rng, n - 1, 1.0 / CONV_ARRIVALS["rate"], CONV_ARRIVALS["cv"])
    arrival = np.concatenate([[0.0], np.cumsum(gaps)])
    inp, out = _sample_lengths("azure-conv", rng, n)
    _azure_csv(HERE / "azure_conv_sample.csv", arrival, inp, out)


def make_code(rng: np.random.Generator, n: int) -> None:
    c = CODE_ARRIVALS
    gaps = _gamma_gaps(rng, n - 1, c["burst_gap_mean_s"], c["burst_gap_cv"])
    # as many quiet gaps per request as the real trace (45 in 8,818 gaps), at random places
    quiet = rng.choice(n - 1, size=round((n - 1) / c["requests_per_burst"]), replace=False)
    busy_s = gaps.sum() - gaps[quiet].sum()
    gaps[quiet] = np.exp(rng.normal(c["quiet_log_mean"], c["quiet_log_sd"], len(quiet)))
    # with ~10 quiet gaps their sum is noisy: scale them to the real quiet/busy time ratio
    gaps[quiet] *= c["quiet_to_busy"] * busy_s / gaps[quiet].sum()
    arrival = np.concatenate([[0.0], np.cumsum(gaps)])
    inp, out = _sample_lengths("azure-code", rng, n)
    _azure_csv(HERE / "azure_code_sample.csv", arrival, inp, out)


def make_mooncake(rng: np.random.Generator, n: int) -> None:
    """Illustrative multi-turn chat with shared system prompts (not fitted to the Mooncake trace).

    8 system prompts of 1-4 blocks (512 tokens each, as Mooncake's hash_ids); conversations of
    up to 5 turns whose context grows by each turn's new input and output; Poisson arrivals at
    2 req/s. A block id identifies the whole prefix up to the end of that block.
    """
    block = 512
    system = [list(range(s * 8, s * 8 + rng.integers(1, 5))) for s in range(8)]
    next_id = 1000
    lines, t, convs = [], 0.0, []
    new_in, outs = _sample_lengths("azure-conv", rng, n)
    for i in range(n):
        t += rng.exponential(0.5)
        if not convs or rng.random() < 0.35 or len(convs) < 4:
            sys_ids = system[int(rng.integers(len(system)))]
            convs.append({"ids": list(sys_ids), "tokens": len(sys_ids) * block, "turns": 0})
        conv = convs[int(rng.integers(len(convs)))]
        prompt = conv["tokens"] + int(new_in[i])
        need = -(-prompt // block)
        while len(conv["ids"]) < need:
            conv["ids"].append(next_id)
            next_id += 1
        lines.append(
            {
                "timestamp": int(t * 1000),
                "input_length": prompt,
                "output_length": int(outs[i]),
                "hash_ids": conv["ids"][:need],
            }
        )
        conv["tokens"] = prompt + int(outs[i])
        conv["turns"] += 1
        if conv["turns"] >= 5:
            convs.remove(conv)
    with (HERE / "mooncake_sample.jsonl").open("w") as fh:
        fh.writelines(json.dumps(rec) + "\n" for rec in lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--refit", type=Path, help="folder with the Azure 2023 traces; print fitted parameters"
    )
    args = ap.parse_args()
    if args.refit:
        print(json.dumps(refit(args.refit), indent=1))
        return
    seeds = np.random.SeedSequence(SEED).spawn(3)
    make_conv(np.random.default_rng(seeds[0]), ROWS["conv"])
    make_code(np.random.default_rng(seeds[1]), ROWS["code"])
    make_mooncake(np.random.default_rng(seeds[2]), ROWS["mooncake"])


if __name__ == "__main__":
    main()
