"""The request list of a virtual `vllm bench serve` run, drawn as the client draws it.

vLLM's client (vllm/benchmarks/serve.py, ``get_request``) precomputes one delay per request:
a gamma draw with shape = burstiness and scale = 1 / (rate x burstiness) (exponential for
burstiness 1, constant 1/rate for burstiness inf, 0 for rate inf), accumulates them, and, when
no ramp-up is set, rescales the cumulative delays so that the last request is sent at exactly
``num_prompts / rate`` ("to close the 1-2% gap ... for stabilizing the throughput"). With
``--ramp-up-strategy`` the rate of request i is ``start + (end - start) x i/(n-1)`` (linear) or
``start x (end/start)^(i/(n-1))`` (exponential), and nothing is rescaled.

Lengths: the random dataset as vLLM samples it (integers uniform in
``[floor(len x (1-r)), ceil(len x (1+r))]``, output at least 1, plus ``random_prefix_len`` tokens
of one prefix shared by every request), ``prefix_repetition`` (``num_prefixes`` prefixes of
``prefix_len`` tokens, each followed by ``suffix_len`` private tokens), or a ShareGPT/custom file
(workload/datasets.py).

The list is written as a generic JSONL trace (arrival, prompt_tokens, output_tokens,
prefix_hashes) into ``$SERVESIM_CACHE/bench/`` (default ``~/.cache/servesim/bench``) under a
name taken from its content hash, so the same arguments give the same file and the run config
that refers to it stays reproducible.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from servesim._files import write_atomic
from servesim.specs.common import SpecError

HASH_BLOCK = 16  # tokens per prefix-hash block of a generic trace
# stream keys of SeedSequence(seed): our own, apart from the workload's (0, 1, 16)
_ARRIVAL_KEY, _LENGTH_KEY = 40, 41


def ramp_rates(n: int, strategy: str | None, start: float | None, end: float | None,
               rate: float) -> np.ndarray:  # fmt: skip
    """vLLM's _get_current_request_rate for every request index."""
    if strategy is None:
        return np.full(n, float(rate))
    progress = np.arange(n) / max(n - 1, 1)
    if strategy == "linear":
        return start + (end - start) * progress
    if strategy == "exponential":
        return start * (end / start) ** progress
    raise SpecError("bench", "ramp_up_strategy", strategy, "must be linear or exponential")


def vllm_arrivals(
    n: int,
    rate: float,
    burstiness: float = 1.0,
    *,
    seed: int = 0,
    ramp: tuple[str, float, float] | None = None,
) -> np.ndarray:
    """Send times (s from the benchmark start) of ``n`` requests, as vLLM's get_request."""
    rates = ramp_rates(n, *(ramp or (None, None, None)), rate)
    if np.any(rates <= 0):
        raise SpecError("bench", "ramp_up_start_rps", float(rates.min()), "rates must be > 0")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_ARRIVAL_KEY,)))
    if math.isinf(burstiness):
        delays = np.where(np.isinf(rates), 0.0, 1.0 / rates)
    else:
        finite = np.where(np.isinf(rates), 1.0, rates)
        draws = rng.gamma(shape=burstiness, scale=1.0 / (finite * burstiness), size=n)
        delays = np.where(np.isinf(rates), 0.0, draws)
    t = np.cumsum(delays)
    if ramp is None and n and t[-1] != 0:
        t = t * ((n / rate) / t[-1])  # vLLM's rescaling: the last request at n / rate
    return t


def random_lengths(a: Mapping[str, Any], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """vLLM's RandomDataset lengths (before the shared prefix)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_LENGTH_KEY,)))
    r = float(a["random_range_ratio"])
    out = []
    for mean in (int(a["random_input_len"]), int(a["random_output_len"])):
        lo, hi = math.floor(mean * (1 - r)), math.ceil(mean * (1 + r))
        out.append(rng.integers(max(lo, 1), max(hi, 1) + 1, size=n))
    return out[0], out[1]


def request_table(a: Mapping[str, Any], lengths: tuple[np.ndarray, np.ndarray],
                  prefix: list[tuple[int, ...]] | None) -> dict[str, list]:  # fmt: skip
    """Columns of the trace: arrivals for the run's rate/ramp, the given lengths and hashes."""
    n = len(lengths[0])
    ramp = None
    if a.get("ramp_up_strategy"):
        ramp = (a["ramp_up_strategy"], float(a["ramp_up_start_rps"]), float(a["ramp_up_end_rps"]))
    t = vllm_arrivals(
        n, float(a["request_rate"]), float(a["burstiness"]), seed=int(a["seed"]), ramp=ramp
    )
    cols: dict[str, list] = {
        "arrival": [float(x) for x in t],
        "prompt_tokens": [int(x) for x in lengths[0]],
        "output_tokens": [max(int(x), 1) for x in lengths[1]],
    }
    if prefix is not None:
        cols["prefix_hashes"] = [list(h) for h in prefix]
    return cols


def prefix_hashes(n: int, prefix_len: int, groups: int, seed: int) -> list[tuple[int, ...]]:
    """Block ids of ``groups`` distinct shared prefixes of ``prefix_len`` tokens, assigned to the
    ``n`` requests as vLLM's prefix_repetition dataset does (``n // groups`` each, in turn)."""
    blocks = prefix_len // HASH_BLOCK
    base = 1 << 40  # apart from ids a workload's own prefixes use
    ids = [tuple(range(base + g * 1_000_003, base + g * 1_000_003 + blocks)) for g in range(groups)]
    return [ids[min(i * groups // max(n, 1), groups - 1)] for i in range(n)]


def cache_dir() -> Path:
    """$SERVESIM_CACHE/bench, else ~/.cache/servesim/bench."""
    root = os.environ.get("SERVESIM_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "servesim") / "bench"


def write_trace(cols: Mapping[str, list], folder: str | Path | None = None) -> Path:
    """The columns as a JSONL trace named by its content hash; written once."""
    n = len(cols["arrival"])
    lines = [json.dumps({k: cols[k][i] for k in cols}) for i in range(n)]
    text = "\n".join(lines) + "\n"
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]
    path = Path(folder) if folder is not None else cache_dir()
    path = path / f"requests-{digest}.jsonl"
    if not path.is_file():
        try:
            write_atomic(path, text)
        except OSError as exc:
            raise SpecError(
                "bench", "cache", str(path.parent),
                f"cannot write the request list there ({exc.strerror or exc}); set SERVESIM_CACHE",
            ) from None  # fmt: skip
    return path
