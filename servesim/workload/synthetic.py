"""Synthetic workloads: arrival processes, length distributions, prefix sharing and sessions.

Everything is drawn with numpy in chunks (CHUNK requests at a time) from the Generators the
caller passes in, so a million-request stream needs memory for one chunk only, and the same seed
gives the same stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np

from servesim.specs.common import SpecError
from servesim.specs.workload import ArrivalSpec, LengthDist, LengthsSpec, PrefixSpec, SessionSpec

CHUNK = 8192
# Prefix hashes are per 16-token block (vLLM's default KV block size): hash i identifies the
# prompt's first 16*(i+1) tokens, as vLLM's chained block hashes do.
HASH_BLOCK_TOKENS = 16

# Length distributions fitted to the Azure LLM inference traces 2023 (Azure/AzurePublicDataset,
# data/AzureLLMInferenceTrace_{conv,code}.csv, CC-BY-4.0; Splitwise, ISCA 2024) by
# traces/make_samples.py --refit: three-component mixtures of log(tokens) [weight, mu, sigma],
# clipped to the range the trace shows. Input and output are drawn independently (the traces'
# correlation of log lengths is 0.09 for conv and 0.00 for code).
LENGTH_PRESETS: dict[str, dict[str, dict]] = {
    "azure-conv": {  # fitted to 19,366 requests
        "input": {
            "mixture": [[0.6321, 6.2709, 1.0025], [0.2912, 6.9773, 0.0581], [0.0767, 8.3144, 0.05]],
            "min": 2,
            "max": 14050,
        },
        "output": {
            "mixture": [[0.2921, 4.7252, 1.0116], [0.4277, 4.5728, 0.3581], [0.2802, 6.0064, 0.05]],
            "min": 7,
            "max": 1000,
        },
    },
    "azure-code": {  # fitted to 8,819 requests
        "input": {
            "mixture": [[0.315, 5.5336, 1.2875], [0.6311, 7.5674, 0.6326], [0.0539, 8.9006, 0.05]],
            "min": 3,
            "max": 7437,
        },
        "output": {
            "mixture": [
                [0.0958, 1.8448, 0.0747],
                [0.5736, 2.4502, 0.3432],
                [0.3307, 3.6476, 0.8777],
            ],
            "min": 6,
            "max": 1899,
        },
    },
}


# ------------------------------------------------------------------------------------------------
# Arrivals


def arrival_chunks(
    spec: ArrivalSpec, rng: np.random.Generator, chunk: int = CHUNK
) -> Iterator[np.ndarray]:
    """Endless arrival times (seconds, sorted), one numpy array per chunk."""
    if spec.process == "constant":
        return _constant(spec.rate, chunk)
    if spec.process == "poisson":
        return _renewal(lambda n: rng.exponential(1.0 / spec.rate, n), chunk)
    if spec.process == "gamma":
        k = 1.0 / spec.cv**2  # shape; CV of a gamma variable is 1/sqrt(k)
        return _renewal(lambda n: rng.gamma(k, 1.0 / (spec.rate * k), n), chunk)
    if spec.process == "diurnal":
        return _diurnal(spec, rng, chunk)
    if spec.process == "bursty":
        return _bursty(spec, rng, chunk)
    raise SpecError("workload", "arrivals.process", spec.process, "unknown process")


def _constant(rate: float, chunk: int) -> Iterator[np.ndarray]:
    start = 0
    while True:  # from the index, not a running sum: no drift over millions of requests
        yield np.arange(start, start + chunk, dtype=np.float64) / rate
        start += chunk


def _renewal(
    gaps: Callable[[int], np.ndarray], chunk: int, first_at_zero: bool = True
) -> Iterator[np.ndarray]:
    """Cumulative gaps. By default the first request arrives at 0, as benchmark_serving sends
    its first request at once and then sleeps."""
    last = 0.0
    first = first_at_zero
    while True:
        g = gaps(chunk)
        if first:
            g[0] = 0.0
            first = False
        t = last + np.cumsum(g)
        last = float(t[-1])
        yield t


def _diurnal(spec: ArrivalSpec, rng: np.random.Generator, chunk: int) -> Iterator[np.ndarray]:
    """Rate mean*(1 - a cos(2 pi (t - phase)/period)), a = (p-1)/(p+1): peak/trough = p, the
    trough at phase_s, mean over a period = rate. Drawn by thinning a Poisson process at the peak."""
    p = spec.peak_to_trough
    a = (p - 1.0) / (p + 1.0)
    peak = spec.rate * (1.0 + a)
    w = 2.0 * math.pi / spec.period_s
    for cand in _renewal(lambda n: rng.exponential(1.0 / peak, n), chunk, first_at_zero=False):
        keep = rng.random(len(cand)) * (1.0 + a) < 1.0 - a * np.cos(w * (cand - spec.phase_s))
        yield cand[keep]


def _bursty(spec: ArrivalSpec, rng: np.random.Generator, chunk: int) -> Iterator[np.ndarray]:
    """Poisson at `rate` during on_s, silence for off_s, repeating (starts on, at 0).

    Drawn on the clock of on-time only, then mapped to wall time by adding one off_s per
    completed on period.
    """
    for u in _renewal(lambda n: rng.exponential(1.0 / spec.rate, n), chunk):
        yield u + np.floor(u / spec.on_s) * spec.off_s


# ------------------------------------------------------------------------------------------------
# Lengths

Sampler = Callable[[np.random.Generator, int], np.ndarray]


def uniform_bounds(mean: float, range_ratio: float, output: bool) -> tuple[int, int]:
    """vLLM's random dataset (vllm/benchmarks/datasets.py, RandomDataset.get_sampling_params, main
    at 0056b87): integers in [floor(mean(1-r)), ceil(mean(1+r))], both ends included; the output
    low end at least 1. The products are rounded to 9 decimals before floor/ceil, where vLLM's
    float noise can add one token at the top. (vLLM also subtracts the tokenizer's special tokens from the input mean;
    servesim has no tokenizer.)"""
    # rounded first so that float noise (100 * 1.1 = 110.00000000000001) does not widen the range
    lo = math.floor(round(mean * (1.0 - range_ratio), 9))
    hi = math.ceil(round(mean * (1.0 + range_ratio), 9))
    if output:
        lo, hi = max(lo, 1), max(hi, 1)
    return max(lo, 1), max(hi, 1)


def sample_mixture(params: dict, rng: np.random.Generator, n: int) -> np.ndarray:
    """Lognormal mixture {mixture: [[w, mu, sigma], ...], min, max} -> integer lengths."""
    comps = np.asarray(params["mixture"], dtype=np.float64)
    pick = rng.choice(len(comps), size=n, p=comps[:, 0] / comps[:, 0].sum())
    z = rng.standard_normal(n)
    x = np.exp(comps[pick, 1] + comps[pick, 2] * z)
    return np.clip(np.rint(x), params["min"], params["max"]).astype(np.int64)


def dist_sampler(
    dist: LengthDist, side: str, column: Callable[[str, str | None, str], np.ndarray]
) -> Sampler:
    """A function (rng, n) -> int64 lengths for one LengthDist; `column(path, format, side)` reads
    a trace's prompt or output lengths (for empirical and fitted lognormal)."""
    lo, hi = dist.min, dist.max

    def clip(x: np.ndarray) -> np.ndarray:
        return np.clip(x, lo, hi if hi is not None else None).astype(np.int64)

    if dist.dist == "fixed":
        value = int(clip(np.array([round(dist.mean)]))[0])
        return lambda rng, n: np.full(n, value, dtype=np.int64)
    if dist.dist == "uniform":
        a, b = uniform_bounds(dist.mean, dist.range_ratio, side == "output")
        return lambda rng, n: clip(rng.integers(a, b + 1, n))
    if dist.dist == "empirical":
        values = column(dist.path, dist.format, side)
        return lambda rng, n: clip(values[rng.integers(0, len(values), n)])
    # lognormal: `mean` is the mean of the lengths, so mu = ln(mean) - sigma^2/2
    if dist.path is not None:
        logs = np.log(np.maximum(column(dist.path, dist.format, side), 1))
        mu, sigma = float(logs.mean()), float(logs.std())
    else:
        sigma = dist.sigma
        mu = math.log(dist.mean) - sigma * sigma / 2.0
    return lambda rng, n: clip(np.rint(np.exp(mu + sigma * rng.standard_normal(n))))


def lengths_sampler(
    spec: LengthsSpec, pairs: Callable[[str, str | None], tuple[np.ndarray, np.ndarray]]
) -> Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]:
    """(rng, n) -> (prompt, output) length arrays. `pairs(path, format)` reads a trace's lengths."""
    if spec.preset is not None:
        p = LENGTH_PRESETS[spec.preset]
        return lambda rng, n: (
            sample_mixture(p["input"], rng, n),
            sample_mixture(p["output"], rng, n),
        )
    if spec.empirical is not None:  # joint resampling keeps the input/output correlation
        inp, out = pairs(spec.empirical, spec.format)
        return lambda rng, n: _take(rng, n, inp, out)

    def column(path: str, fmt: str | None, side: str) -> np.ndarray:
        return pairs(path, fmt)[0 if side == "input" else 1]

    fin = dist_sampler(spec.input, "input", column)
    fout = dist_sampler(spec.output, "output", column)
    return lambda rng, n: (fin(rng, n), fout(rng, n))


def _take(rng: np.random.Generator, n: int, inp: np.ndarray, out: np.ndarray):
    idx = rng.integers(0, len(inp), n)
    return inp[idx], out[idx]


# ------------------------------------------------------------------------------------------------
# Prefix sharing and multi-turn sessions

# Hash namespaces (all < 2**63): shared system prompts, sessions.
_BLOCKS = 1 << 20  # blocks per prompt (16M tokens) before namespaces would overlap
_GROUP_BASE = 1 << 61
_SESSION_BASE = 1 << 62


class PromptShaper:
    """Adds shared prefixes and session history to drawn lengths; gives session ids and block
    hashes. Stateful (sessions carry their context), so requests must pass through in order.

    Hashes cover the part of a prompt that another request can reuse: with `prefix` alone, the
    shared prefix's full blocks (the rest is never shared, and the engine treats blocks without
    an id as private); with `sessions`, the whole prompt, which later turns extend. Tuples are
    shared and extended, not rebuilt, so long conversations stay cheap.
    """

    __slots__ = ("prefix", "sessions", "rng", "_groups", "_slots", "_next_session")

    def __init__(
        self, prefix: PrefixSpec | None, sessions: SessionSpec | None, rng: np.random.Generator
    ):
        self.prefix = prefix
        self.sessions = sessions
        self.rng = rng
        self._groups: list[tuple[int, ...]] = []
        if prefix is not None:
            ns = prefix.shared_tokens // HASH_BLOCK_TOKENS
            bases = [_GROUP_BASE + _BLOCKS * g for g in range(prefix.groups)]
            self._groups = [tuple(range(b, b + ns)) for b in bases]
        # per open conversation: [session_id, turns_done, context_tokens, hashes]
        self._slots: list[list] = []
        self._next_session = 0
        if sessions is not None:
            self._slots = [self._new_session() for _ in range(sessions.concurrent)]

    @property
    def active(self) -> bool:
        return self.prefix is not None or self.sessions is not None

    def _new_session(self) -> list:
        sid = self._next_session
        self._next_session += 1
        start = self._groups[int(self.rng.integers(len(self._groups)))] if self._groups else ()
        return [sid, 0, 0, start]

    def shape(
        self, prompt: np.ndarray, output: np.ndarray
    ) -> tuple[list[int], list[int], list[tuple[int, ...]]]:
        """New-token prompt lengths -> full prompt lengths, session ids, block hashes."""
        n = len(prompt)
        shared = self.prefix.shared_tokens if self.prefix else 0
        if self.sessions is None:
            groups = self._groups
            hashes = [groups[g] for g in self.rng.integers(len(groups), size=n).tolist()]
            return (prompt + shared).tolist(), [-1] * n, hashes
        picks = self.rng.integers(self.sessions.concurrent, size=n).tolist()
        full, sids, hashes = [], [], []
        turns_max = self.sessions.turns
        for new, out, k in zip(prompt.tolist(), output.tolist(), picks):
            slot = self._slots[k]
            sid, turns, ctx, prev = slot
            p = (ctx or shared) + new  # the first turn starts with the shared prefix, if any
            # a conversation's context only grows, so its block b keeps its content across turns
            blocks = p // HASH_BLOCK_TOKENS
            if blocks > len(prev):
                own = _SESSION_BASE + _BLOCKS * sid
                prev = prev + tuple(range(own + len(prev), own + blocks))
            full.append(p)
            sids.append(sid)
            hashes.append(prev)
            slot[1], slot[2], slot[3] = turns + 1, p + out, prev
            if turns + 1 >= turns_max:
                self._slots[k] = self._new_session()
        return full, sids, hashes


def expand_hashes(ids: tuple[int, ...], block_tokens: int, prompt_tokens: int) -> tuple[int, ...]:
    """Block ids of `block_tokens` tokens (Mooncake: 512) -> ids per 16-token block, full blocks only.

    Sub-block j of id h becomes h*k + j (k = block_tokens/16), so equal ids still mean equal prefixes.
    """
    if not ids or block_tokens == HASH_BLOCK_TOKENS:
        return ids
    k = block_tokens // HASH_BLOCK_TOKENS
    blocks = min(prompt_tokens // HASH_BLOCK_TOKENS, len(ids) * k)
    return tuple(ids[b // k] * k + b % k for b in range(blocks))
