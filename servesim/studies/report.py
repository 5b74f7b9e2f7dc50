"""Self-contained reports (HTML or Markdown) from runs, sweeps, plans and benchmark results.

Each input becomes a section with figures (matplotlib, Agg backend) and a table:
- a run directory (summary.json, requests.parquet, steps.parquet, config.yaml): what ran (model,
  formats, hardware, parallelism, engine, workload, seed), latency CDFs (TTFT, TPOT, E2E),
  batch size, KV use and queue length over time, cost and energy breakdowns per pool;
- a sweep (its directory or table): throughput-latency curves over the load input (rate,
  concurrency, speed-up), one curve per combination of the other inputs;
- a plan directory (plan.json, candidates.csv): both Pareto fronts and the ranked table;
- a directory of benchmark JSONs (or one JSON): the model and deployment they name, throughput
  vs latency over concurrency.

HTML embeds every figure as a base64 PNG (one file). Markdown writes the PNGs into
`<name>_files/` beside the report and links them with relative paths.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from servesim._callable import make_callable
from servesim._files import (
    check_out_path,
    contained,
    is_hidden,
    read_json,
    read_table,
    write_atomic,
)
from servesim.specs.common import SpecError

LOAD_HINTS = ("rate", "speedup", "concurrency", "conc", "num_prompts")
LAT_PAIRS = (("ttft", "TTFT"), ("tpot", "TPOT"))


@dataclass
class Figure:
    title: str
    png: bytes


@dataclass
class Section:
    title: str
    kind: str
    figures: list[Figure] = field(default_factory=list)
    table: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)  # what was run: model, hw, ...


def _plt():
    try:
        import matplotlib
    except ImportError:  # an extra: pip install 'servesim[report]'
        raise SpecError(
            "report", "", "matplotlib", "not installed; pip install 'servesim[report]'"
        ) from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    _plt().close(fig)
    return buf.getvalue()


# --------------------------------------------------------------------------- inputs


def kind_of(path: Path) -> str:
    if path.is_dir():
        if (path / "summary.json").is_file():
            return "run"
        if (path / "plan.json").is_file():
            return "plan"
        if (path / "results.parquet").is_file() or (path / "results.csv").is_file():
            return "sweep"
        if any(not is_hidden(f) for f in path.glob("*.json")):
            return "bench"
        raise SpecError(str(path), "", str(path), "not a run, sweep, plan or benchmark directory")
    if path.suffix == ".json":
        return "bench"
    if path.suffix in (".parquet", ".csv"):
        return "sweep"
    raise SpecError(str(path), "", str(path), "not a result: a directory, .json, .csv or .parquet")


def build_sections(results: Sequence[str | Path]) -> list[Section]:
    sections = []
    for r in results:
        p = Path(r)
        if not p.exists():
            raise SpecError(str(p), "", str(p), "no such file or directory")
        kind = kind_of(p)
        builder = {
            "run": run_section,
            "sweep": sweep_section,
            "plan": plan_section,
            "bench": bench_section,
        }[kind]
        sections.append(builder(p))
    return sections


# --------------------------------------------------------------------------- runs


def run_section(d: Path) -> Section:
    summary = read_json(d / "summary.json")
    if not isinstance(summary, dict):
        raise SpecError(str(d / "summary.json"), "", "summary.json", "must be a JSON object")
    sec = Section(f"Run: {d.name}", "run")
    if (d / "config.yaml").is_file():
        sec.facts = run_facts(d / "config.yaml")
    else:
        sec.notes.append("no config.yaml: model and deployment not named")
    if (d / "requests.parquet").is_file():
        sec.figures.append(latency_cdfs(read_table(d / "requests.parquet")))
    else:
        sec.notes.append("no requests.parquet: no latency CDFs")
    if (d / "steps.parquet").is_file():
        sec.figures.append(batch_kv_over_time(read_table(d / "steps.parquet")))
    elif (d / "timeseries.csv").is_file():
        sec.figures.append(batch_kv_from_timeseries(read_table(d / "timeseries.csv")))
    else:
        sec.notes.append("no steps.parquet: no batch/KV figure")
    fig = cost_energy_breakdown(summary)
    if fig is not None:
        sec.figures.append(fig)
    keys = ["completed", "duration_s", "request_throughput", "output_throughput", "ttft_ms_median",
            "ttft_ms_p99", "tpot_ms_median", "tpot_ms_p99", "e2el_ms_p99", "goodput_fraction",
            "mfu", "mbu", "kv_usage_mean", "preemptions", "energy_kwh", "j_per_output_token",
            "cost_usd", "monthly_usd", "usd_per_mtok_blended"]  # fmt: skip
    keys += [k for k in summary if k.startswith("interval.")]  # calibration bands (intervals.py)
    sec.table = pd.DataFrame(
        [(k, summary[k]) for k in keys if k in summary], columns=["metric", "value"]
    )
    return sec


def run_facts(config_yaml: Path) -> list[tuple[str, str]]:
    """Model, formats, hardware, parallelism, engine and workload of a run's resolved config."""
    from servesim.specs.common import load_yaml

    cfg = load_yaml(config_yaml)
    if not isinstance(cfg, dict):
        return []
    facts = [("model", str(cfg.get("model")))]
    dt = cfg.get("dtype")
    if isinstance(dt, dict):
        facts.append(("formats", ", ".join(f"{k} {v}" for k, v in dt.items())))
    for i, pool in enumerate((cfg.get("deployment") or {}).get("pools") or []):
        par = pool.get("parallelism") or {}
        sched = pool.get("scheduler") or {}
        shape = " ".join(f"{k}{v}" for k, v in par.items() if v not in (None, 1) or k == "tp")
        engine = sched.get("engine") or "vllm"
        facts.append((
            f"pool {i}: {pool.get('role')}",
            f"{pool.get('instances', 1)} x {pool.get('hardware')} ({shape}); engine {engine}, "
            f"{sched.get('policy')} batching, max_num_seqs {sched.get('max_num_seqs')}, "
            f"max_num_batched_tokens {sched.get('max_num_batched_tokens')}",
        ))  # fmt: skip
    facts.append(("workload", _workload_text(cfg.get("workload") or {})))
    facts.append(("seed", str(cfg.get("seed"))))
    return facts


def _workload_text(wl: dict) -> str:
    if wl.get("trace"):
        src = f"trace {wl['trace'].get('path')} ({wl['trace'].get('format')})"
    elif wl.get("arrivals"):
        a = wl["arrivals"]
        src = f"{a.get('process')} arrivals at {a.get('rate')} req/s"
    elif wl.get("clients"):
        src = f"{wl['clients'].get('concurrency')} closed-loop clients"
    else:
        src = "?"
    lengths = wl.get("lengths") or {}
    if isinstance(lengths.get("input"), dict) and isinstance(lengths.get("output"), dict):
        src += (f"; input {lengths['input'].get('dist')} mean {lengths['input'].get('mean')}, "
                f"output {lengths['output'].get('dist')} mean {lengths['output'].get('mean')}")  # fmt: skip
    if wl.get("num_requests"):
        src += f"; {wl['num_requests']} requests"
    if wl.get("max_concurrency"):
        src += f"; at most {wl['max_concurrency']} outstanding"
    return src


def bench_facts(p: Path) -> list[tuple[str, str]]:
    """What benchmark files say they ran (model, backend; servesim's deployment block)."""
    from servesim.studies.bench_output import read_results

    files = [p] if p.is_file() else sorted(p.glob("*.json"))
    seen: dict[str, set] = {}
    for f in files:
        try:
            objs = read_results(f)
        except (SpecError, OSError, UnicodeDecodeError):
            continue
        for d in objs:
            if not isinstance(d, dict):
                continue
            sim = d.get("servesim") if isinstance(d.get("servesim"), dict) else {}
            seen.setdefault("model", set()).add(str(d.get("model_id") or sim.get("model")))
            seen.setdefault("backend", set()).add(str(d.get("backend")))
            for pool in sim.get("pools") or []:
                par = pool.get("parallelism") or {}
                sched = pool.get("scheduler") or {}
                seen.setdefault("deployment", set()).add(
                    f"{pool.get('instances', 1)} x {pool.get('hardware')} tp{par.get('tp', 1)}, "
                    f"engine {sched.get('engine') or 'vllm'}"
                )
    return [(k, ", ".join(sorted(v))) for k, v in seen.items()]


def latency_cdfs(req: pd.DataFrame) -> Figure:
    plt = _plt()
    done = req[np.isfinite(req["finish_s"])] if "finish_s" in req else req
    ttft = (done["first_token_s"] - done["arrival_s"]) * 1e3
    e2e = (done["finish_s"] - done["arrival_s"]) * 1e3
    multi = done["output_tokens"] > 1
    tpot = (
        (done["finish_s"] - done["first_token_s"])[multi] / (done["output_tokens"][multi] - 1) * 1e3
    )
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for ax, (name, v) in zip(axes, (("TTFT", ttft), ("TPOT", tpot), ("E2E latency", e2e))):
        x = np.sort(np.asarray(v, dtype=float))
        if x.size:
            ax.plot(x, np.arange(1, x.size + 1) / x.size)
        ax.set_xlabel(f"{name} (ms)")
        ax.set_ylabel("fraction of requests")
        ax.grid(alpha=0.3)
    return Figure("Latency CDFs", _png(fig))


def batch_kv_over_time(steps: pd.DataFrame, bins: int = 200) -> Figure:
    """Batch size and queue length (summed over instances) and KV use per time bin."""
    plt = _plt()
    fig, (a1, a2, a3) = plt.subplots(3, 1, figsize=(9, 6), sharex=True)
    if len(steps):
        t = steps["start_s"].to_numpy(float)
        edges = np.linspace(t.min(), t.max() + 1e-9, bins + 1)
        b = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, bins - 1)
        mid = (edges[:-1] + edges[1:]) / 2
        n_inst = max(int(steps["instance"].nunique()), 1)
        cnt = np.bincount(b, minlength=bins)

        def per_bin(col: str) -> np.ndarray:
            w = np.bincount(b, weights=steps[col].to_numpy(float), minlength=bins)
            return w / cnt * n_inst

        with np.errstate(invalid="ignore", divide="ignore"):
            batch = per_bin("batch_size")
            used = np.bincount(b, weights=steps["kv_used_blocks"].to_numpy(float), minlength=bins)
            total = np.bincount(b, weights=steps["kv_total_blocks"].to_numpy(float), minlength=bins)
            kv = used / total
            waiting = per_bin("waiting") if "waiting" in steps else None
        a1.plot(mid, batch)
        a2.plot(mid, kv * 100)
        if waiting is not None:
            a3.plot(mid, waiting)
    a1.set_ylabel("batch size")
    a2.set_ylabel("KV blocks used (%)")
    a3.set_ylabel("queue (waiting)")
    a3.set_xlabel("simulated time (s)")
    for a in (a1, a2, a3):
        a.grid(alpha=0.3)
    return Figure("Batch size, KV use and queue over time (all instances)", _png(fig))


def batch_kv_from_timeseries(ts: pd.DataFrame) -> Figure:
    plt = _plt()
    g = ts.groupby("time_s").agg(batch=("batch_size", "sum"), kv=("kv_usage", "mean")).reset_index()
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 4.5), sharex=True)
    a1.plot(g["time_s"], g["batch"])
    a2.plot(g["time_s"], g["kv"] * 100)
    a1.set_ylabel("batch size (all instances)")
    a2.set_ylabel("KV use (%)")
    a2.set_xlabel("simulated time (s)")
    return Figure("Batch size and KV use over time", _png(fig))


def _pools(summary: dict, prefix: str, suffix: str) -> list[str]:
    return sorted(
        {
            k[len(prefix) : -len(suffix)]
            for k in summary
            if k.startswith(prefix) and k.endswith(suffix)
        }
    )


def cost_energy_breakdown(summary: dict) -> Figure | None:
    """Cost per pool (busy vs idle) and energy per pool (devices, hosts, facility overhead)."""
    cost_pools = _pools(summary, "cost.", ".cost_usd")
    energy_pools = _pools(summary, "energy.", ".energy_kwh")
    if not cost_pools and not energy_pools:
        return None
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.5))
    if cost_pools:
        total = np.array([_f(summary.get(f"cost.{p}.cost_usd")) for p in cost_pools])
        idle = np.array([_f(summary.get(f"cost.{p}.idle_cost_usd")) for p in cost_pools])
        a1.bar(cost_pools, total - idle, label="busy")
        a1.bar(cost_pools, idle, bottom=total - idle, label="idle")
        a1.set_ylabel("cost of the run (USD)")
        a1.legend(fontsize=8)
    a1.set_title("cost")
    if energy_pools:
        tot = np.array([_f(summary.get(f"energy.{p}.energy_kwh")) for p in energy_pools])
        dev = np.array([_f(summary.get(f"energy.{p}.energy_device_kwh")) for p in energy_pools])
        host = np.array([_f(summary.get(f"energy.{p}.energy_host_kwh")) for p in energy_pools])
        a2.bar(energy_pools, dev, label="devices")
        a2.bar(energy_pools, host, bottom=dev, label="hosts")
        a2.bar(
            energy_pools, np.maximum(tot - dev - host, 0), bottom=dev + host, label="facility (PUE)"
        )
        a2.set_ylabel("energy (kWh)")
        a2.legend(fontsize=8)
    a2.set_title("energy")
    return Figure("Cost and energy breakdown", _png(fig))


def _f(v: Any) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return 0.0
    return x if math.isfinite(x) else 0.0


# --------------------------------------------------------------------------- sweeps and benches


def _lat_col(df: pd.DataFrame, metric: str) -> str | None:
    for c in (
        f"{metric}_ms_p99",
        f"p99_{metric}_ms",
        f"{metric}_ms_median",
        f"median_{metric}_ms",
        f"{metric}_ms_mean",
        f"mean_{metric}_ms",
    ):
        if c in df.columns and df[c].notna().any():
            return c
    return None


def throughput_latency(df: pd.DataFrame, load: str | None, groups: list[str], title: str) -> Figure:
    """Latency (p99 where present) against output throughput, one line per group along the load."""
    plt = _plt()
    thr = "output_throughput" if "output_throughput" in df else "request_throughput"
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, (metric, label) in zip(axes, LAT_PAIRS):
        col = _lat_col(df, metric)
        if col is None or thr not in df:
            ax.set_title(f"{label}: not in the results")
            continue
        for name, g in df.groupby(groups, dropna=False, sort=True) if groups else [("all", df)]:
            g = g.sort_values(load) if load else g
            lab = name if isinstance(name, str) else ", ".join(str(x) for x in np.atleast_1d(name))
            ax.plot(g[thr], g[col], "-o" if load else "o", ms=3, label=lab)
        values = df[col].dropna()
        if len(values) and values.min() > 0 and values.max() / values.min() > 100:
            ax.set_yscale("log")
        ax.set_xlabel(f"{thr} ({'tok/s' if thr == 'output_throughput' else 'req/s'})")
        ax.set_ylabel(f"{col} (ms)")
        ax.grid(alpha=0.3)
        if groups and df.groupby(groups, dropna=False).ngroups <= 10:
            ax.legend(fontsize=7)
    return Figure(title, _png(fig))


def sweep_section(p: Path) -> Section:
    from servesim.studies.compare import is_metric
    from servesim.studies.sweep import load_table

    table, inputs = load_table(p)
    if not any(is_metric(c) for c in table.columns):
        raise SpecError(str(p), "", p.name, "not a sweep table: no throughput or latency column")
    sec = Section(f"Sweep: {p.name if p.is_dir() else p.stem}", "sweep")
    if "error" in table:
        bad = int(table["error"].notna().sum())
        if bad:
            sec.notes.append(f"{bad} points failed (see the `error` column)")
        table = table[table["error"].isna()]
    inputs = [c for c in inputs if c in table] or [c for c in table.columns if "." in c]
    load = next((c for c in inputs if any(h in c.rsplit(".", 1)[-1] for h in LOAD_HINTS)), None)
    groups = [c for c in inputs if c != load and table[c].nunique(dropna=False) > 1]
    keys = [c for c in (*groups, load) if c]
    numeric = [c for c in table.columns if c not in inputs and c not in ("point", "seed", "error")
               and pd.api.types.is_numeric_dtype(table[c])]  # fmt: skip
    mean = table.groupby(keys, dropna=False)[numeric].mean().reset_index() if keys else table
    title = "Throughput vs latency" + (" (mean over seeds)" if len(mean) < len(table) else "")
    sec.figures.append(throughput_latency(mean, load, groups, title))
    sec.table = table.head(60)
    return sec


def bench_section(p: Path) -> Section:
    from servesim.studies.compare import load_results

    rs = load_results(p)
    df = rs.table
    sec = Section(f"Benchmarks: {p.name}", "bench")
    sec.facts = bench_facts(p)
    load = "conc" if "conc" in df else None
    groups = [k for k in rs.keys if k != load and df[k].nunique() > 1]
    sec.figures.append(
        throughput_latency(df, load, groups, "Throughput vs latency over concurrency")
    )
    cols = [
        c
        for c in (
            *rs.keys,
            "output_throughput",
            "mean_ttft_ms",
            "p99_ttft_ms",
            "median_tpot_ms",
            "p99_tpot_ms",
        )
        if c in df
    ]
    sec.table = df[cols].sort_values(rs.keys) if rs.keys else df[cols]
    return sec


# --------------------------------------------------------------------------- plans


FRONTS = (
    ("cost_latency", "monthly_usd", None, False, False, "Pareto front: monthly cost vs latency"),
    ("throughput_interactivity", "tokens_per_s_per_user", "output_tps_per_device", True, True,
     "Pareto front: output tokens/s per device vs tokens/s per user (1000 / median TPOT)"),
)  # fmt: skip


def pareto_figures(cand: pd.DataFrame, latency_key: str) -> dict[str, Figure]:
    """The planner's two Pareto fronts over its simulated candidates (misses in grey)."""
    from servesim.studies.pareto import pareto

    plt = _plt()
    out: dict[str, Figure] = {}
    if cand.empty or latency_key not in cand:
        return out
    ok = cand["meets_slo"].astype(bool)
    for name, x, y, max_x, max_y, title in FRONTS:
        y = y or latency_key
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.scatter(cand.loc[~ok, x], cand.loc[~ok, y], c="lightgray", label="misses SLO")
        ax.scatter(cand.loc[ok, x], cand.loc[ok, y], c="tab:blue", label="meets SLO")
        front = pareto(cand, x, y, max_x=max_x, max_y=max_y)
        ax.plot(front[x], front[y], "-o", c="tab:red", label="Pareto front")
        ax.set_xlabel(x)
        ax.set_ylabel(f"{y} (ms)" if y == latency_key else y)
        ax.legend(fontsize=8)
        out[name] = Figure(title, _png(fig))
    return out


def plan_section(d: Path) -> Section:
    plan = read_json(d / "plan.json")
    if not isinstance(plan, dict):
        raise SpecError(str(d / "plan.json"), "", "plan.json", "must be a JSON object")
    has_cand = (d / "candidates.csv").is_file()
    cand = read_table(d / "candidates.csv", allow_empty=True) if has_cand else pd.DataFrame()
    sec = Section(f"Plan: {plan.get('inputs', {}).get('model', d.name)}", "plan")
    sec.figures.extend(pareto_figures(cand, plan.get("inputs", {}).get("latency_key")).values())
    top = pd.DataFrame(plan.get("top", []))
    cols = [c for c in ("id", "monthly_usd", "usd_per_mtok", "devices", "utilisation", "slo_attainment",
                        "headroom", "reason") if c in top]  # fmt: skip
    sec.table = top[cols] if cols else top
    sec.notes.extend(plan.get("notes", [])[:10])
    return sec


# --------------------------------------------------------------------------- writing


def _fmt_cell(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return "-" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def _md_table(df: pd.DataFrame) -> str:
    heads = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
    for r in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt_cell(v).replace("|", "/") for v in r) + " |")
    return "\n".join(lines)


def render_html(sections: list[Section], title: str) -> str:
    parts = [
        "<!DOCTYPE html>", "<html><head><meta charset='utf-8'>", f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
        "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
        "img{max-width:100%}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
    ]  # fmt: skip
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.facts:
            rows = "".join(
                f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in s.facts
            )
            parts.append(f"<table class='facts'>{rows}</table>")
        for f in s.figures:
            data = base64.b64encode(f.png).decode("ascii")
            parts.append(f"<h3>{html.escape(f.title)}</h3>")
            parts.append(f"<img alt='{html.escape(f.title)}' src='data:image/png;base64,{data}'>")
        if s.table is not None and len(s.table):
            parts.append(s.table.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0))
        if s.notes:
            parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in s.notes) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_markdown(
    sections: list[Section], title: str, out: Path
) -> tuple[str, dict[Path, bytes]]:
    files_dir = out.with_name(out.stem + "_files")
    images: dict[Path, bytes] = {}
    parts = [f"# {title}", ""]
    n = 0
    for s in sections:
        parts += [f"## {s.title}", ""]
        parts += [f"- **{k}**: {v}" for k, v in s.facts]
        if s.facts:
            parts.append("")
        for f in s.figures:
            n += 1
            path = files_dir / f"fig{n:02d}.png"
            images[path] = f.png
            parts += [f"### {f.title}", "", f"![{f.title}]({files_dir.name}/{path.name})", ""]
        if s.table is not None and len(s.table):
            parts += [_md_table(s.table), ""]
        parts += [f"- {note}" for note in s.notes]
        if s.notes:
            parts.append("")
    return "\n".join(parts), images


def report(
    results: Sequence[str | Path] | str | Path, out: str | Path, *, title: str | None = None
) -> Path:
    """Write a report of `results` to `out` (.html: one self-contained file; .md: + PNG folder).

    Example:
        >>> report(["runs/a", "sweep_results/"], "report.html")  # doctest: +SKIP
    """
    if isinstance(results, (str, Path)):
        results = [results]
    if not results:
        raise SpecError(
            "report", "results", [], "give at least one run, sweep, plan or benchmark result"
        )
    out = Path(out)
    if out.suffix not in (".html", ".htm", ".md"):
        raise SpecError("report", "out", str(out), "must end in .html or .md")
    check_out_path(out, "report", is_dir=False)
    sections = build_sections(results)
    title = title or "servesim report"
    if out.suffix == ".md":
        text, images = render_markdown(sections, title, out)
        for p, data in images.items():
            write_atomic(contained(out.parent, p.relative_to(out.parent), "report", "assets"), data)
        write_atomic(out, text.encode("utf-8"))
    else:
        write_atomic(out, render_html(sections, title).encode("utf-8"))
    return out


make_callable(__name__, report)
