"""Request streams for the engine: `build(spec, seed)` turns a WorkloadSpec into a Workload.

Open loop (a trace or an arrival process): `Workload.open_loop()` yields RequestSpec sorted by
arrival, lazily, in chunks, so a million requests stream in little memory. Closed loop
(`clients`): the engine keeps `closed_loop.concurrency` requests in flight and asks
`next_lengths()` for each new one; an open-loop workload may cap the requests outstanding
(`max_concurrency`), which the engine enforces. Randomness: one Generator per stream ("arrivals", "lengths",
"prefix") from SeedSequence(seed); same seed, same stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from servesim.specs.workload import ClientSpec, WorkloadSpec
from servesim.workload import synthetic
from servesim.workload.synthetic import CHUNK, HASH_BLOCK_TOKENS, PromptShaper

__all__ = ["HASH_BLOCK_TOKENS", "RequestSpec", "Workload", "build", "streams"]


class RequestSpec(NamedTuple):
    """What a workload yields, sorted by arrival_s."""

    arrival_s: float
    prompt_tokens: int
    output_tokens: int  # >= 1
    session_id: int = -1  # multi-turn session (router affinity, prefix reuse)
    # hash i identifies the prompt's first 16*(i+1) tokens; ids cover the reusable leading part
    # of the prompt (full 16-token blocks); blocks past the last id are private to the request
    prefix_hashes: tuple[int, ...] = ()
    priority: int = 0  # scheduler queue "priority": lower values are admitted first
    ttft_slo_ms: float | None = None  # queue "slo": this request's TTFT target (None: the config's)


# Children of SeedSequence(seed) by spawn key, as SeedSequence(seed).spawn(n) numbers them:
# arrivals 0 and lengths 1 (router 2 and moe 3 belong to the engine); 16 is ours for prefixes.
_STREAM_KEYS = {"arrivals": 0, "lengths": 1, "prefix": 16}


def streams(seed: int) -> dict[str, np.random.Generator]:
    """The workload's Generators: "arrivals", "lengths", "prefix"."""
    return {
        name: np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(key,)))
        for name, key in _STREAM_KEYS.items()
    }


@lru_cache(maxsize=16)
def _trace_lengths(path: str, fmt: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(prompt, output) lengths of a trace, read once per process (empirical / fitted lengths)."""
    from servesim.workload.fasttrace import trace_columns

    df = trace_columns(path, fmt)
    inp = df["prompt_tokens"]
    out = df["output_tokens"]
    inp.flags.writeable = out.flags.writeable = False
    return inp, out


class Workload:
    """One workload, ready to stream. Build with `build(spec, seed)`."""

    def __init__(self, spec: WorkloadSpec, seed: int):
        self.spec = spec
        self.seed = seed
        self._rng = streams(seed)
        self._lengths = (
            synthetic.lengths_sampler(spec.lengths, _trace_lengths) if spec.lengths else None
        )
        self._shaper = PromptShaper(spec.prefix, spec.sessions, self._rng["prefix"])
        self._trace = self._load_trace() if spec.trace is not None else None
        self._buffer: Iterator[RequestSpec] = iter(())

    # -- what the engine reads -------------------------------------------------------------------

    @property
    def closed_loop(self) -> ClientSpec | None:
        return self.spec.clients

    @property
    def num_requests(self) -> int | None:
        """Requests this workload issues (None: until duration_s)."""
        if self._trace is not None:
            return len(self._trace)
        return self.spec.num_requests

    @property
    def duration_s(self) -> float | None:
        return self.spec.duration_s

    @property
    def max_concurrency(self) -> int | None:
        """Open loop: most requests outstanding at once (None: no cap)."""
        return self.spec.max_concurrency

    def open_loop(self) -> Iterator[RequestSpec] | None:
        """A fresh lazy iterator over the requests, sorted by arrival; None for closed loop."""
        if self.spec.clients is not None:
            return None
        streams_now = streams(self.seed)  # every call replays the same stream
        if self._trace is not None:
            return self._trace_requests(
                streams_now["lengths"], PromptShaper(None, None, streams_now["prefix"])
            )
        shaper = PromptShaper(self.spec.prefix, self.spec.sessions, streams_now["prefix"])
        return self._synthetic_requests(streams_now["arrivals"], streams_now["lengths"], shaper)

    def next_lengths(self) -> RequestSpec:
        """Closed loop: the next request's lengths (arrival_s = 0; the engine sets the time)."""
        req = next(self._buffer, None)
        if req is None:
            zero = np.zeros(CHUNK)
            self._buffer = self._requests(zero, self._rng["lengths"], self._shaper)
            req = next(self._buffer)
        return req

    # -- internals -------------------------------------------------------------------------------

    def _requests(
        self, times: np.ndarray, rng: np.random.Generator, shaper: PromptShaper
    ) -> Iterator[RequestSpec]:
        inp, out = self._lengths(rng, len(times))
        if shaper.active:
            full, sids, hashes = shaper.shape(inp, out)
            return map(RequestSpec, times.tolist(), full, out.tolist(), sids, hashes)
        return map(RequestSpec, times.tolist(), inp.tolist(), out.tolist())

    def _synthetic_requests(self, arr_rng, len_rng, shaper) -> Iterator[RequestSpec]:
        limit = self.spec.num_requests
        horizon = self.spec.duration_s
        issued = 0
        for times in synthetic.arrival_chunks(self.spec.arrivals, arr_rng):
            if horizon is not None and len(times) and times[-1] >= horizon:
                times = times[times < horizon]
                horizon_hit = True
            else:
                horizon_hit = False
            if limit is not None and issued + len(times) >= limit:
                times = times[: limit - issued]
                horizon_hit = True
            issued += len(times)
            if len(times):
                yield from self._requests(times, len_rng, shaper)
            if horizon_hit:
                return

    def _load_trace(self):
        from servesim.workload.fasttrace import trace_columns

        t = self.spec.trace
        df = trace_columns(
            t.path,
            t.format,
            speedup=t.speedup,
            start_s=t.start_s,
            duration_s=t.duration_s,
            sample=t.sample,
            seed=self.seed,
            max_input=t.max_input,
            max_output=t.max_output,
            columns=dict(t.columns) if t.columns else None,
            time_unit=t.time_unit,
            max_requests=self.spec.num_requests,  # the rest of a long trace is not parsed
        )
        if self.spec.duration_s is not None:
            df = df.take(df["arrival_s"] < self.spec.duration_s)
        if self.spec.num_requests is not None:
            df = df.take(slice(None, self.spec.num_requests))
        return df

    def _trace_requests(self, len_rng, shaper) -> Iterator[RequestSpec]:
        df = self._trace
        block = df.attrs.get("hash_block_tokens", HASH_BLOCK_TOKENS)
        for start in range(0, len(df), CHUNK):
            part = df.take(slice(start, start + CHUNK))
            times = part["arrival_s"]
            if self._lengths is not None:  # synthetic lengths on the trace's clock
                yield from self._requests(times, len_rng, shaper)
                continue
            prompt = part["prompt_tokens"].tolist()
            hashes = part["prefix_hashes"]
            if block != HASH_BLOCK_TOKENS:
                hashes = [synthetic.expand_hashes(h, block, p) for h, p in zip(hashes, prompt)]
            yield from map(
                RequestSpec,
                times.tolist(),
                prompt,
                part["output_tokens"].tolist(),
                part["session_id"].tolist(),
                hashes,
                part["priority"].tolist() if "priority" in part else [0] * len(part),
                _own_targets(part),
            )


def _own_targets(part) -> list:
    """Per-request TTFT targets (ms) of a trace slice; None where the file gives none."""
    if "ttft_slo_ms" not in part:
        return [None] * len(part)
    return [None if t != t else t for t in part["ttft_slo_ms"].tolist()]


def build(spec: WorkloadSpec, seed: int) -> Workload:
    """The request stream of `spec`; reads a trace now, so a bad file fails before the run."""
    return Workload(spec, seed)
