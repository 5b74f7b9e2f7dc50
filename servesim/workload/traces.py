"""Request traces: readers (Azure 2023/2024, Mooncake, BurstGPT, generic CSV/JSONL), statistics, and
the registry and download cache of the public traces.

Every reader returns the same DataFrame: `arrival_s` (float, first request at 0, sorted),
`prompt_tokens`, `output_tokens` (int64, output >= 1), `session_id` (int64, -1 = none) and
`prefix_hashes` (tuples of block ids from the file, () when the format has none). Reading is
vectorised with pandas; a bad file is one SpecError naming the file, the line or column, and the
problem. The engine reads traces through workload/fasttrace.py, which gives the same columns
without pandas for plain Azure CSV files and comes here for everything else.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from servesim.specs.common import SpecError
from servesim.specs.workload import TRACE_COLUMNS, TRACE_FORMATS
from servesim.workload.tracecols import (
    _csv_hashes,
    _hash_tuples,
    _ints,
    _numeric,
    _require,
    _require_header,
    _seconds,
    _short,
    _targets,
)

if TYPE_CHECKING:  # pandas loads on first use: the engine reads plain traces without it
    import pandas as pd

log = logging.getLogger("servesim.workload")

COLUMNS = (
    "arrival_s", "prompt_tokens", "output_tokens", "session_id", "prefix_hashes", "priority",
    "ttft_slo_ms",
)  # fmt: skip
# Mooncake's hash_ids each cover one 512-token block (Mooncake FAST'25 trace README and the
# trace tooling of ai-dynamo/aiperf, "hash_ids ... block of 512 tokens").
MOONCAKE_BLOCK_TOKENS = 512

# Pinned to a commit (a moving branch could change the file under the checksum)
_RAW_2023 = (
    "https://raw.githubusercontent.com/Azure/AzurePublicDataset/"
    "790921015d50dd6aae7f7e47f39ba0e235ad6b08/data/"
)
_REL_2024 = "https://github.com/Azure/AzurePublicDataset/releases/download/dataset-llm-2024/"
_CC_BY = "CC-BY-4.0 (Azure/AzurePublicDataset LICENSE)"
# name -> where it lives. URLs from AzureLLMInferenceDataset2023.md (data/ files),
# AzureLLMInferenceDataset2024Links.txt (release assets), the Mooncake repository's
# FAST25-release/traces/ and BurstGPT's v1.1 release (as linked by vLLM's benchmark docs).
PUBLIC_TRACES: dict[str, dict[str, str]] = {
    "azure-conv-2023": {
        "format": "azure",
        "url": _RAW_2023 + "AzureLLMInferenceTrace_conv.csv",
        # sha256 of the file in shared/data/traces (verified here)
        "sha256": "2f1e5b666d4e3055fdbba98598ce2ec307767b9064e03e2fa46676dbcc7d0bf8",
        "description": "Azure LLM inference, conversation service, 1 hour of 2023-11-16, 19,366 requests (Splitwise, ISCA 2024)",
        "license": _CC_BY,
    },
    "azure-code-2023": {
        "format": "azure",
        "url": _RAW_2023 + "AzureLLMInferenceTrace_code.csv",
        "sha256": "54e9a6d2a4bd06ba1e060304b900abbc74cbea53de96506e60fe5bb4f2277fb6",
        "description": "Azure LLM inference, code completion, 1 hour of 2023-11-16, 8,819 requests (Splitwise, ISCA 2024)",
        "license": _CC_BY,
    },
    "azure-conv-2024": {
        "format": "azure",
        "url": _REL_2024 + "AzureLLMInferenceTrace_conv_1week.csv",
        "description": "Azure LLM inference, conversation service, one week of May 2024 (DynamoLLM, arXiv 2408.00741)",
        "license": _CC_BY,
    },
    "azure-code-2024": {
        "format": "azure",
        "url": _REL_2024 + "AzureLLMInferenceTrace_code_1week.csv",
        "description": "Azure LLM inference, code completion, one week of May 2024 (DynamoLLM, arXiv 2408.00741)",
        "license": _CC_BY,
    },
    "mooncake": {
        "format": "mooncake",
        "url": "https://raw.githubusercontent.com/kvcache-ai/Mooncake/a2a4b18ac537fd798d50e6e9f57031ce86419a37/FAST25-release/traces/conversation_trace.jsonl",
        "description": "Kimi (Moonshot AI) conversation trace with 512-token prefix block hashes (Mooncake, FAST 2025)",
        "license": "Apache-2.0 (kvcache-ai/Mooncake LICENSE-APACHE)",
    },
    "burstgpt": {
        "format": "burstgpt",
        "url": "https://github.com/HPMLL/BurstGPT/releases/download/v1.1/BurstGPT_without_fails_2.csv",
        "description": "BurstGPT: ChatGPT/GPT-4 API and conversation logs of an Azure OpenAI service, failures removed",
        "license": "not stated in the repository README; cite arXiv 2401.17644 (HPMLL/BurstGPT)",
    },
}


# ------------------------------------------------------------------------------------------------
# Reading


def load_trace(
    path: str | Path,
    format: str | None = None,
    *,
    speedup: float = 1.0,
    start_s: float | None = None,
    duration_s: float | None = None,
    sample: float | None = None,
    seed: int = 0,
    max_input: int | None = None,
    max_output: int | None = None,
    columns: dict[str, str] | tuple | None = None,
    time_unit: str = "s",
    max_requests: int | None = None,
) -> pd.DataFrame:
    """Read a trace into the common DataFrame (see the module doc), then apply the options.

    start_s/duration_s cut a window on the trace's own clock (seconds after its first request);
    speedup divides the arrival times (so every inter-arrival time, keeping bursts); sample keeps
    a seeded random fraction; max_input/max_output clip lengths. Notes about changed rows are in
    ``df.attrs["notes"]`` and logged.

    max_requests: only the first that many requests (in arrival order) are wanted. A CSV trace
    (azure, csv) of PREFIX_READ_MIN_BYTES or more then has only those rows parsed and checked,
    when its arrival column shows that no later row arrives before them (a file in arrival
    order); otherwise, and with a window or a sample, the whole file is read. The frame may hold
    more rows than asked: cut it yourself.
    """
    p = resolve_path(path)
    fmt = format or infer_format(p)
    if fmt not in TRACE_FORMATS:
        raise SpecError(str(p), "format", fmt, "must be one of " + ", ".join(TRACE_FORMATS))
    notes: list[str] = []
    mapping = dict(zip(TRACE_COLUMNS, TRACE_COLUMNS))
    mapping.update(dict(columns or {}))
    nrows = None
    if max_requests is not None and start_s is None and duration_s is None and sample is None:
        nrows = _prefix_rows(p, fmt, mapping, time_unit, max_requests)
    if fmt == "azure":
        df = _read_azure(p, nrows)
    elif fmt == "burstgpt":
        df = _read_burstgpt(p, notes)
    elif fmt == "mooncake":
        df = _read_mooncake(p)
    else:
        df = _read_generic(p, fmt, mapping, time_unit, nrows)
    df = _finish(df, p, notes)
    df = _apply_options(
        df, p, speedup, start_s, duration_s, sample, seed, max_input, max_output, notes
    )
    df.attrs["notes"] = notes
    df.attrs["format"] = fmt
    df.attrs["hash_block_tokens"] = MOONCAKE_BLOCK_TOKENS if fmt == "mooncake" else 16
    for note in notes:
        log.warning("%s: %s", p, note)
    return df


def resolve_path(path: str | Path) -> Path:
    """The path as given; failing that a bundled `traces/...` file (repository or installed
    package), a bundled trace by name (`azure_conv_sample`), or a public trace by name
    (`azure-conv-2023`) once `servesim trace fetch` has put it in the cache."""
    p = Path(path).expanduser()
    if p.is_file() or p.is_absolute():
        return p
    here = Path(__file__).resolve().parent.parent  # servesim/
    names = [p] if p.suffix else [p, Path("traces") / f"{p}.csv", Path("traces") / f"{p}.jsonl"]
    for root in (here / "_data", here.parent):
        for name in names:
            if (root / name).is_file():
                return root / name
    if str(p) in PUBLIC_TRACES:
        cached = cache_dir_default() / PUBLIC_TRACES[str(p)]["url"].rsplit("/", 1)[-1]
        if cached.is_file():
            return cached
        raise SpecError(str(p), "", str(p), f"not downloaded yet: run `servesim trace fetch {p}`")
    return p


def infer_format(p: Path) -> str:
    """Format from the extension and the first line: the header (CSV) or the first record's keys."""
    first = _first_line(p)
    if p.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        return "mooncake" if '"input_length"' in first else "jsonl"
    if "ContextTokens" in first and "TIMESTAMP" in first:
        return "azure"
    if "Request tokens" in first and "Response tokens" in first:
        return "burstgpt"
    return "csv"


def _first_line(p: Path) -> str:
    if not p.is_file():
        raise SpecError(str(p), "", str(p), "trace file not found")
    try:
        with p.open("r", encoding="utf-8", errors="replace") as fh:
            return fh.readline()
    except OSError as exc:
        raise SpecError(str(p), "", str(p), f"cannot be read ({exc.__class__.__name__})") from None


# Below this size a trace is read whole even with a cap: one pass over a small file is faster than
# the arrival-order check plus a partial read (measured: the 19,366-row Azure conv trace, 0.7 MB,
# 16 ms whole vs 25 ms capped; a 1M-row, 27 MB CSV, 0.51 s whole vs 0.23 s capped at 2,000).
PREFIX_READ_MIN_BYTES = 4 << 20


def _prefix_rows(p: Path, fmt: str, mapping: dict, unit: str, n: int) -> int | None:
    """``n`` when the first ``n`` rows of a CSV trace are its first ``n`` requests in arrival
    order (no later row arrives before the latest of them; equal times keep file order), so
    only they need parsing; None when the whole file must be read (another format, fewer rows,
    an unreadable arrival time: the whole read reports it)."""
    import pandas as pd

    if fmt not in ("azure", "csv") or n < 1 or p.stat().st_size < PREFIX_READ_MIN_BYTES:
        return None
    col, unit = ("TIMESTAMP", "datetime") if fmt == "azure" else (mapping["arrival"], unit)
    try:
        raw = pd.read_csv(p, skipinitialspace=True, usecols=lambda c: str(c).strip() == col)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError):
        return None
    if raw.shape[1] != 1 or len(raw) <= n:
        return None
    if unit == "datetime":
        t = pd.to_datetime(raw.iloc[:, 0].astype(str), format="ISO8601", errors="coerce", utc=True)
        bad = t.isna().to_numpy()
        t = t.dt.as_unit("ns").array.asi8
    else:
        t = _numeric(raw.iloc[:, 0]).to_numpy()
        bad = ~np.isfinite(t)
    if bad.any():
        return None
    return n if t[n:].min() >= t[:n].max() else None


def _read_csv(p: Path, required: tuple[str, ...], nrows: int | None = None) -> pd.DataFrame:
    import pandas as pd

    _first_line(p)  # existence
    try:
        df = pd.read_csv(p, skipinitialspace=True, nrows=nrows)
    except pd.errors.EmptyDataError:
        raise SpecError(str(p), "", "<empty file>", "trace has no header and no requests") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SpecError(str(p), "", "<malformed CSV>", _short(exc)) from None
    df.columns = [str(c).strip() for c in df.columns]
    _require_header(df, required, p, f"expected {', '.join(required)}")
    if len(df) == 0:
        raise SpecError(str(p), "", "<no rows>", "trace has a header but no requests")
    return df


def _frame(
    arrival, prompt, output, session=None, hashes=None, priority=None, ttft=None
) -> pd.DataFrame:
    import pandas as pd

    n = len(arrival)
    return pd.DataFrame(
        {
            "arrival_s": arrival,
            "prompt_tokens": prompt,
            "output_tokens": output,
            "session_id": session if session is not None else np.full(n, -1, dtype=np.int64),
            "prefix_hashes": hashes if hashes is not None else [()] * n,
            # scheduler queue "priority" (lower first); 0 when the file has no such column
            "priority": priority if priority is not None else np.zeros(n, dtype=np.int64),
            # queue order "slo": the request's own TTFT target in ms (NaN: the config's)
            "ttft_slo_ms": ttft if ttft is not None else np.full(n, np.nan),
        }
    )


def _read_azure(p: Path, nrows: int | None = None) -> pd.DataFrame:
    df = _read_csv(p, ("TIMESTAMP", "ContextTokens", "GeneratedTokens"), nrows)
    return _frame(
        _seconds(df, "TIMESTAMP", p, "datetime"),
        _ints(df, "ContextTokens", p),
        _ints(df, "GeneratedTokens", p),
    )


def _read_burstgpt(p: Path, notes: list[str]) -> pd.DataFrame:
    df = _read_csv(p, ("Timestamp", "Request tokens", "Response tokens"))
    out = _ints(df, "Response tokens", p)
    frame = _frame(_seconds(df, "Timestamp", p, "s"), _ints(df, "Request tokens", p), out)
    failed = out == 0
    if failed.any():
        # BurstGPT logs failed requests with 0 response tokens; they never reached the model.
        notes.append(f"dropped {int(failed.sum())} failed requests (0 response tokens)")
        frame = frame[~failed].reset_index(drop=True)
        if len(frame) == 0:
            raise SpecError(
                str(p), "Response tokens", 0, "every request failed (0 response tokens)"
            )
    return frame


def _read_jsonl(p: Path) -> pd.DataFrame:
    import pandas as pd

    _first_line(p)
    try:
        df = pd.read_json(p, lines=True, dtype=False)
    except (ValueError, RecursionError):
        _raise_bad_json_line(p)
        raise
    if len(df) == 0:
        raise SpecError(str(p), "", "<empty file>", "trace has no requests")
    return df


def _raise_bad_json_line(p: Path) -> None:
    """pandas does not say where JSON breaks; find the first bad line ourselves."""
    with p.open("r", encoding="utf-8", errors="replace") as fh:
        for i, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except RecursionError:
                raise SpecError(str(p), f"line {i}", line.strip()[:40], "nested too deep") from None
            except json.JSONDecodeError as exc:
                raise SpecError(
                    str(p),
                    f"line {i}, column {exc.colno}",
                    line.strip()[:40],
                    f"malformed JSON: {exc.msg}",
                ) from None
            if not isinstance(rec, dict):
                raise SpecError(
                    str(p), f"line {i}", line.strip()[:40], "each line must be one JSON object"
                )
    raise SpecError(str(p), "", "<file>", "cannot be read as JSON lines (one object per line)")


def _read_mooncake(p: Path) -> pd.DataFrame:
    df = _read_jsonl(p)
    _require(df, ("timestamp", "input_length", "output_length"), p)
    hashes = _hash_tuples(df["hash_ids"], p) if "hash_ids" in df.columns else None
    return _frame(
        _seconds(df, "timestamp", p, "ms", line0=1),
        _ints(df, "input_length", p, line0=1),
        _ints(df, "output_length", p, line0=1),
        hashes=hashes,
    )


def _read_generic(
    p: Path, fmt: str, mapping: dict[str, str], unit: str, nrows: int | None = None
) -> pd.DataFrame:
    df = _read_jsonl(p) if fmt == "jsonl" else _read_csv(p, (), nrows)
    line0 = 1 if fmt == "jsonl" else 2
    need = tuple(mapping[k] for k in ("arrival", "prompt_tokens", "output_tokens"))
    if fmt == "jsonl":
        _require(df, need, p)
    else:
        _require_header(df, need, p, "map columns with trace.columns")
    session = None
    if mapping["session_id"] in df.columns:
        session = _ints(df, mapping["session_id"], p, line0)
    hashes = None
    if mapping["prefix_hashes"] in df.columns:
        col = df[mapping["prefix_hashes"]]
        if fmt == "csv":
            col = _csv_hashes(col, p)
        hashes = _hash_tuples(col, p, line0)
    priority = None
    if mapping["priority"] in df.columns:
        priority = _ints(df, mapping["priority"], p, line0)
    ttft = None
    if mapping["ttft_slo_ms"] in df.columns:
        ttft = _targets(df, mapping["ttft_slo_ms"], p, line0)
    return _frame(
        _seconds(df, mapping["arrival"], p, unit, line0),
        _ints(df, mapping["prompt_tokens"], p, line0),
        _ints(df, mapping["output_tokens"], p, line0),
        session,
        hashes,
        priority,
        ttft,
    )


def _finish(df: pd.DataFrame, p: Path, notes: list[str]) -> pd.DataFrame:
    """Sort by arrival (stable), rebase to 0, output >= 1."""
    arr = df["arrival_s"].to_numpy()
    if np.any(np.diff(arr) < 0):
        notes.append("requests were not in arrival order; sorted them")
        df = df.iloc[np.argsort(arr, kind="stable")].reset_index(drop=True)
    df["arrival_s"] = df["arrival_s"] - df["arrival_s"].iloc[0]
    zero = df["output_tokens"].to_numpy() == 0
    if zero.any():
        # Every served request emits at least one token (the one that ends it).
        notes.append(f"{int(zero.sum())} requests had 0 output tokens; counted as 1")
        df.loc[zero, "output_tokens"] = 1
    if (df["prompt_tokens"].to_numpy() == 0).any():
        notes.append(
            f"{int((df['prompt_tokens'] == 0).sum())} requests had 0 prompt tokens; counted as 1"
        )
        df.loc[df["prompt_tokens"] == 0, "prompt_tokens"] = 1
    return df


def _apply_options(df, p, speedup, start_s, duration_s, sample, seed, max_input, max_output, notes):
    if speedup <= 0:
        raise SpecError(str(p), "speedup", speedup, "must be > 0")
    arr = df["arrival_s"].to_numpy()
    if start_s is not None or duration_s is not None:
        lo = start_s or 0.0
        hi = lo + duration_s if duration_s is not None else np.inf
        keep = (arr >= lo) & (arr < hi)
        if not keep.any():
            raise SpecError(
                str(p),
                "start_s/duration_s",
                (start_s, duration_s),
                f"window holds no requests (trace spans 0..{arr[-1]:.1f} s)",
            )
        df = df[keep].reset_index(drop=True)
    if sample is not None:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7472]))
        keep = rng.random(len(df)) < sample
        if not keep.any():
            raise SpecError(str(p), "sample", sample, "kept no requests; use a larger fraction")
        df = df[keep].reset_index(drop=True)
    df["arrival_s"] = (df["arrival_s"] - df["arrival_s"].iloc[0]) / speedup
    for col, cap in (("prompt_tokens", max_input), ("output_tokens", max_output)):
        if cap is not None:
            over = df[col].to_numpy() > cap
            if over.any():
                notes.append(f"clipped {int(over.sum())} {col} values to {cap}")
                df.loc[over, col] = cap
    return df


# ------------------------------------------------------------------------------------------------
# Statistics


def frame_stats(df: pd.DataFrame) -> dict[str, Any]:
    """Rate, burstiness (CV of inter-arrival times) and length percentiles of a trace DataFrame."""
    arr = df["arrival_s"].to_numpy()
    n = len(arr)
    duration = float(arr[-1] - arr[0]) if n else 0.0
    gaps = np.diff(arr)
    cv = float(gaps.std() / gaps.mean()) if len(gaps) > 1 and gaps.mean() > 0 else float("nan")
    out: dict[str, Any] = {
        "requests": n,
        "duration_s": duration,
        # n-1 gaps span the duration: the unbiased rate of a renewal process
        "rate_rps": (n - 1) / duration if duration > 0 else float("nan"),
        "interarrival_cv": cv,
    }
    for name, col in (("input", "prompt_tokens"), ("output", "output_tokens")):
        x = df[col].to_numpy()
        p50, p90, p99 = np.percentile(x, [50, 90, 99])
        out.update(
            {
                f"{name}_mean": float(x.mean()),
                f"{name}_p50": float(p50),
                f"{name}_p90": float(p90),
                f"{name}_p99": float(p99),
                f"{name}_max": int(x.max()),
            }
        )
    span = duration if duration > 0 else float("nan")
    # float sums: int64 ones would wrap on a trace of huge counts
    out["input_tokens_per_s"] = float(df["prompt_tokens"].to_numpy(dtype=np.float64).sum()) / span
    out["output_tokens_per_s"] = float(df["output_tokens"].to_numpy(dtype=np.float64).sum()) / span
    out["tokens_per_s"] = out["input_tokens_per_s"] + out["output_tokens_per_s"]
    sessions = df["session_id"].to_numpy()
    out["sessions"] = int(len(np.unique(sessions[sessions >= 0])))
    out["with_prefix_hashes"] = int(sum(1 for h in df["prefix_hashes"] if h))
    return out


def trace_stats(path: str | Path, format: str | None = None, **options: Any) -> dict[str, Any]:
    """Statistics of a trace file (options as for load_trace), plus its format and notes."""
    df = load_trace(path, format, **options)
    out = {"path": str(path), "format": df.attrs["format"], **frame_stats(df)}
    out["notes"] = list(df.attrs["notes"])
    return out


# ------------------------------------------------------------------------------------------------
# Public traces: download cache


def cache_dir_default() -> Path:
    """$SERVESIM_CACHE/traces, else ~/.cache/servesim/traces."""
    root = os.environ.get("SERVESIM_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "servesim") / "traces"


def fetch_trace(name: str, cache_dir: str | Path | None = None, *, timeout_s: float = 60.0) -> Path:
    """Download a public trace (PUBLIC_TRACES) into the cache once; return its local path.

    URLs are pinned (a commit or a release); files with a ``sha256`` (those verified against a
    copy here) are checked after the download and a cached copy is trusted only if it matches;
    the others are unverified (fetched as served). An interrupted download resumes from where
    it stopped on the next call (workload/fetch.py).
    """
    if name not in PUBLIC_TRACES:
        raise SpecError(
            "trace fetch", "name", name, "unknown trace; one of " + ", ".join(PUBLIC_TRACES)
        )
    from servesim.workload.fetch import download

    entry = PUBLIC_TRACES[name]
    url = entry["url"]
    folder = Path(cache_dir).expanduser() if cache_dir is not None else cache_dir_default()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpecError(
            "trace fetch", "cache_dir", str(folder), f"cannot write there ({exc.strerror or exc})"
        ) from None
    target = folder / url.rsplit("/", 1)[-1]
    return download(url, target, entry.get("sha256"), timeout_s=timeout_s, name=name)
