"""Where and how `servesim bench` saves a result, as `vllm bench serve --save-result` does.

The file name is vLLM's (``compute_result_filename`` in vllm/benchmarks/serve.py):
``{label}-{rate}qps[-concurrency{N}]-{model}-{YYYYMMDD-HHMMSS}.json``, or
``{label}-ramp-up-{strategy}-{start}qps-{end}qps[-concurrency{N}]-{model}-{date}.json`` with a
ramp-up, label defaulting to the backend (``servesim``); a non-zero seed adds ``-seed{S}`` before
the date, so reruns with other seeds and a pinned date do not overwrite each other.
--result-filename replaces the name, --result-dir prefixes the folder.

The date is the only wall clock servesim writes: ``--date`` when given (``YYYYMMDD-HHMMSS``, or
seconds since the epoch), else ``SOURCE_DATE_EPOCH`` (reproducible builds' convention, read as
UTC), else the local time now, as vLLM's ``datetime.now()``. Every other output of a run is
bit-identical for a seed. --append-result adds the JSON object as a new line of an existing file
(vLLM writes ``"\\n"`` then the object), so a file may hold several results, one per line.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from servesim._files import contained, write_atomic
from servesim.specs.common import SpecError

PERCENTILE_METRICS = ("ttft", "tpot", "itl", "e2el")

DATE_FORMAT = "%Y%m%d-%H%M%S"


def result_date(given: Any = None) -> str:
    """vLLM's ``date`` string: --date, else SOURCE_DATE_EPOCH, else now (local time)."""
    if given not in (None, ""):
        text = str(given).strip()
        try:
            datetime.strptime(text, DATE_FORMAT)
            return text
        except ValueError:
            pass
        return _from_epoch(text, "date")
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env not in (None, ""):
        return _from_epoch(env, "SOURCE_DATE_EPOCH")
    return datetime.now().strftime(DATE_FORMAT)


def _from_epoch(text: str, where: str) -> str:
    try:
        seconds = int(text)
    except ValueError:
        raise SpecError(
            "bench", where, text, "must be YYYYMMDD-HHMMSS or whole seconds since the epoch"
        ) from None
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime(DATE_FORMAT)


def result_path(a: Mapping[str, Any], model: Any = None, date: str | None = None) -> Path:
    """--result-dir/--result-filename, else vLLM's name (see the module doc); ``model`` names the
    config's model when --model was not given, ``date`` is the run's date string."""
    name = a.get("result_filename")
    if not name:
        label = a.get("label") or "servesim"
        conc = a.get("max_concurrency")
        conc_s = f"-concurrency{conc}" if conc is not None else ""
        base = str(a.get("model") or model or "model").split("/")[-1]
        seed = int(a.get("seed") or 0)
        tail = (f"-seed{seed}" if seed else "") + (f"-{date}" if date else "")
        if a.get("ramp_up_strategy"):
            lo, hi = a.get("ramp_up_start_rps"), a.get("ramp_up_end_rps")
            head = f"{label}-ramp-up-{a['ramp_up_strategy']}-{lo}qps-{hi}qps"
        else:
            head = f"{label}-{float(a.get('request_rate', math.inf))}qps"
        name = f"{head}{conc_s}-{base}{tail}.json"
    # the file stays inside --result-dir: `--result-filename ../x.json` is an error
    return contained(a.get("result_dir") or ".", name, "bench", "result_filename")


def save_result(path: Path, data: Mapping[str, Any], *, append: bool = False) -> None:
    """Write (or, with ``append``, add one line to) a result file, atomically either way."""
    text = json.dumps(data)
    if append and path.is_file():
        old = path.read_text(encoding="utf-8")
        text = old + ("\n" if old else "") + text
    write_atomic(path, text)


def read_results(path: str | Path) -> list[dict]:
    """Every result object in a file: one JSON object, or several, one per line (appended)."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError:
            raise SpecError(
                str(p), "", p.name, "not a readable JSON file (nor JSON lines)"
            ) from None
        return rows
    return data if isinstance(data, list) else [data]


METRIC_HEADERS = {
    "ttft": ("TTFT", "Time to First Token"),
    "tpot": ("TPOT", "Time per Output Token (excl. 1st token)"),
    "itl": ("ITL", "Inter-token Latency"),
    "e2el": ("E2EL", "End-to-end Latency"),
}


def format_summary(
    result: Mapping[str, Any],
    percentile_metrics: Any = "ttft,tpot,itl",
    metric_percentiles: Any = "99",
) -> str:
    """The client's printed result block (same labels, widths and order)."""
    lines = []
    rate = result.get("request_rate")
    b = result.get("burstiness", 1.0)
    if result.get("ramp_up_strategy"):  # vLLM's lines for a ramp-up run
        lines.append(f"Traffic ramp-up strategy: {result['ramp_up_strategy']}.")
        lines.append(
            f"Will increase RPS from {result.get('ramp_up_start_rps')} to "
            f"{result.get('ramp_up_end_rps')} RPS over the duration of the benchmark."
        )
    else:
        lines.append(f"Traffic request rate: {rate}")
    lines.append(
        f"Burstiness factor: {b} ({'Poisson process' if b == 1.0 else 'Gamma distribution'})"
    )
    lines.append(f"Maximum request concurrency: {result.get('max_concurrency')}")
    lines.append("{s:{c}^{n}}".format(s=" Serving Benchmark Result ", n=50, c="="))

    def row(label: str, value: Any, fmt: str = "") -> None:
        shown = "None" if value is None else format(value, fmt)
        lines.append(f"{label:<40} {shown:<10}")

    row("Successful requests:", result.get("completed"))
    row("Failed requests:", result.get("failed"))
    if result.get("max_concurrency") is not None:
        row("Maximum request concurrency:", result.get("max_concurrency"))
    if rate not in ("inf", None):
        row("Request rate configured (RPS):", rate, ".2f")
    row("Benchmark duration (s):", result.get("duration"), ".2f")
    row("Total input tokens:", result.get("total_input_tokens"))
    row("Total generated tokens:", result.get("total_output_tokens"))
    row("Request throughput (req/s):", result.get("request_throughput"), ".2f")
    if result.get("request_goodput") is not None:
        row("Request goodput (req/s):", result.get("request_goodput"), ".2f")
    row("Output token throughput (tok/s):", result.get("output_throughput"), ".2f")
    row("Peak output token throughput (tok/s):", result.get("max_output_tokens_per_s"), ".2f")
    row("Peak concurrent requests:", result.get("max_concurrent_requests"), ".2f")
    row("Total token throughput (tok/s):", result.get("total_token_throughput"), ".2f")
    for m in _metric_list(percentile_metrics):
        name, header = METRIC_HEADERS[m]
        lines.append("{s:{c}^{n}}".format(s=header, n=50, c="-"))
        row(f"Mean {name} (ms):", result.get(f"mean_{m}_ms"), ".2f")
        row(f"Median {name} (ms):", result.get(f"median_{m}_ms"), ".2f")
        for p in _percentile_list(metric_percentiles):
            word = str(int(p)) if int(p) == p else str(p)
            row(f"P{word} {name} (ms):", result.get(f"p{word}_{m}_ms"), ".2f")
    if result.get("spec_decode_acceptance_rate") is not None:  # vLLM prints this block then
        lines.append("{s:{c}^{n}}".format(s="Speculative Decoding", n=50, c="-"))
        row("Acceptance rate (%):", result["spec_decode_acceptance_rate"], ".2f")
        row("Acceptance length:", result.get("spec_decode_acceptance_length"), ".2f")
        row("Drafts:", result.get("spec_decode_num_drafts"))
        row("Draft tokens:", result.get("spec_decode_draft_tokens"))
        row("Accepted tokens:", result.get("spec_decode_accepted_tokens"))
        lines.append("Per-position acceptance (%):")
        for i, a in enumerate(result.get("spec_decode_per_position_acceptance_rates") or []):
            row(f"  Position {i}:", None if a is None else 100 * a, ".2f")
    lines.append("=" * 50)
    return "\n".join(lines)


def _metric_list(text: Any) -> list[str]:
    return _parse_list(text, "percentile_metrics", PERCENTILE_METRICS)


def _percentile_list(text: Any) -> list[float]:
    return parse_percentiles(text)


def _parse_list(text: Any, name: str, allowed: Sequence[str] | None = None) -> list[str]:
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else list(text))]
    items = [t for t in items if t]
    if allowed is not None:
        for t in items:
            if t not in allowed:
                raise SpecError("bench", name, t, "must be among " + ", ".join(allowed))
    return items


def parse_percentiles(text: Any) -> list[float]:
    out = []
    for t in _parse_list(text, "metric_percentiles"):
        try:
            p = float(t)
        except ValueError:
            raise SpecError(
                "bench", "metric_percentiles", t, "must be numbers, e.g. 50,90,99"
            ) from None
        if not 0 <= p <= 100:
            raise SpecError("bench", "metric_percentiles", t, "must be in [0, 100]")
        out.append(p)
    return out
