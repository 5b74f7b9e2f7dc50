"""Fit a device's efficiencies per (hardware, engine) on aiconfigurator's kernel tables, derive
them for devices nobody profiled, and score both on held-out rows.

- ``fit_device``: the profile's default ``efficiency:`` block (all engines' rows pooled), one
  overlay per engine (``engines:``), and the 80% band of each op family (``intervals:``), from
  stratified subsamples; shapes (GEMM weight shapes, attention head layouts, MoE model shapes;
  30% of rows for all-reduce) held out of the fit and scored.
- ``derive_efficiency``: a device's efficiencies from the fitted profiles of its generation
  (geometric mean; all generations when its own has none), so a datasheet plus a generation give
  usable defaults (hw_profiles h200, b200, gb200 carry blocks derived this way).
- ``score``: MAPE per family of a spec on rows.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from servesim.cost import aic
from servesim.cost.calibrate import Sample, fit_parameters, with_efficiency
from servesim.specs.common import SpecError
from servesim.specs.derive import format_fractions, format_speedups
from servesim.specs.hardware import HardwareSpec

_G = ("gemm_compute", "gemm_memory", "gemm_launch_s")
_M = ("moe_compute", "moe_memory", "moe_launch_s")
_Q = ("gemm_quant_memory", "gemm_quant_launch_s")
# per format: the MoE kernel differs by format (e.g. vLLM bf16 Triton, fp8-block FlashInfer CUTLASS)
_MF = ("moe_rows_half", "moe_token_passes")
_AR = ("car_base_s", "car_peer_s", "car_scaleup", "car_eager_s")
# Where a key's 0 default means "off" or "as another key", the fit starts from a typical value
# (H100 measurements of the same kernels, aiconfigurator custom_allreduce/nccl tables).
_START = {"comm_hop_s": 1e-6, "car_base_s": 3e-6, "car_peer_s": 1e-7, "car_scaleup": 0.6,
          "car_eager_s": 1.5e-5, "moe_rows_half": 8.0, "moe_expert_s": 1e-7,
          "moe_token_passes": 0.5}  # fmt: skip
# (families fitted together, keys): in order, later groups see earlier fits. Per-format keys
# (``key@fmt``) are fitted only where the format has rows; MLA is scored with the attention fit.
FIT_PLAN: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("gemm.bf16",), (*_G, "gemm_overlap", "gemm_overlap_s", "gemm_wave", "gemm_fill_wave",
                    "gemm_k_s")),
    *(((f"gemm.{f}",), tuple(f"{k}@{f}" for k in (*_G, *_Q))) for f in ("fp8", "fp8_block", "fp4")),
    (("moe.bf16",), (*_M, "moe_expert_s", *_MF)),
    *(((f"moe.{f}",), tuple(f"{k}@{f}" for k in (*_M, *_MF))) for f in ("fp8", "fp8_block", "fp4")),
    (("attn_prefill.bf16",), ("attn_compute", "attn_causal", "attn_overlap",
                              "attn_prefill_launch_s", "attn_row_keys")),
    (("attn_prefill.fp8",), ("attn_compute@fp8", "attn_causal@fp8", "attn_prefill_launch_s@fp8")),
    (("attn_decode.bf16", "attn_decode.fp8"), ("attn_memory", "attn_launch_s", "attn_seq_s",
                                               "attn_wave", "attn_split_s")),
    (("allreduce.custom", "allreduce.nccl"), ("comm_scaleup", "comm_launch_s",
                                              "comm_graph_launch_s", "comm_hop_s", *_AR)),
)  # fmt: skip
SCORED_ONLY = ("mla_prefill.bf16", "mla_decode.bf16", "mla_decode.fp8")
# Size column of each table: subsamples keep every octave of it.
SIZE_COLUMN = {
    "gemm": "m", "attn_prefill": "isl", "attn_decode": "kv_len", "mla_prefill": "isl",
    "mla_decode": "kv_len", "moe": "num_tokens", "allreduce.custom": "message_bytes",
    "allreduce.nccl": "message_bytes",
}  # fmt: skip
# Strata beside the system and engine: the format columns and the shape class.
STRATA = {
    "gemm": ("gemm_dtype",), "attn_prefill": ("attn_dtype", "kv_cache_dtype", "head_dim"),
    "attn_decode": ("kv_cache_dtype", "head_dim"), "mla_prefill": ("kv_cache_dtype",),
    "mla_decode": ("kv_cache_dtype",), "moe": ("moe_dtype", "distribution"),
    "allreduce.custom": ("impl",), "allreduce.nccl": (),
}  # fmt: skip
BAND = (0.10, 0.90)  # the prediction band: 10th-90th percentile of measured/predicted
TEST_FRACTION = 0.3


def excluded(s: Sample) -> bool:
    """Rows no serving step looks like: vLLM's fp8-block GEMMs are timed eagerly (a 0.06-0.3 ms
    host floor, aiconfigurator README), and one-token prefills run decode kernels."""
    if s.family == "gemm.fp8_block" and s.device.endswith("/vllm"):
        return True
    return s.family.startswith("attn_prefill") and s.call[6] == s.call[2]  # isl == 1


def load(
    folder: str | Path,
    systems: Sequence[str] | None = None,
    per_stratum: int = 0,
    kinds: Iterable[str] | None = None,
    seed: int = 0,
) -> dict[str, list[Sample]]:
    """Rows by family of the aiconfigurator tables in ``folder`` (``per_stratum`` > 0: at most
    that many per system x engine x format x size octave, a stratified subsample)."""
    out: dict[str, list[Sample]] = {}
    for kind in kinds or aic.FILES:
        path = Path(folder) / aic.FILES[kind]
        if not path.is_file():
            continue
        kind_read, df = aic.read_table(path, systems)
        if kind_read != kind:
            kind = kind_read
        if per_stratum:
            strata = ("system", "backend", *STRATA[kind])
            df = aic.stratified(df, strata, SIZE_COLUMN[kind], per_stratum, seed)
        for s in aic.samples(kind, df):
            if not excluded(s):
                out.setdefault(s.family, []).append(s)
    return out


def is_test(s: Sample) -> bool:
    """Held out of a device's own fit: every second shape (a stable hash), 30% of collective rows."""
    if s.family.startswith("allreduce"):
        key = f"{s.device}/{s.call}"
        return _hash(key) < TEST_FRACTION
    return _hash(s.group) < 0.5


def _hash(text: str) -> float:
    import zlib

    return (zlib.crc32(text.encode()) % 10_000) / 10_000


def _seed(hw: HardwareSpec, keys: Sequence[str]) -> HardwareSpec:
    """Start MoE keys at the dense GEMM's values (their 0 default means 'as dense'), the
    activation-quantisation pass (0 = off) at half the bandwidth and 2 us, and the other keys
    whose 0 means "off" at ``_START``."""
    start = {}
    for k in keys:
        if hw.eff(k) != 0.0:
            continue
        if k.partition("@")[0] in _START:
            start[k] = _START[k.partition("@")[0]]
        elif k.startswith("moe_"):
            start[k] = hw.eff(k.replace("moe_", "gemm_"))
        elif k.startswith("gemm_quant_"):  # a quantisation pass starts on
            start[k] = 0.5 if "memory" in k else 2e-6
    return with_efficiency(hw, start) if start else hw


def fit(
    hw: HardwareSpec, rows: Mapping[str, list[Sample]], max_nfev: int = 150
) -> dict[str, float]:
    """Fitted values of every FIT_PLAN group that has rows, in order."""
    values: dict[str, float] = {}
    current = hw
    for families, keys in FIT_PLAN:
        train = [s for f in families for s in rows.get(f, ())]
        if not train:
            continue
        current = _seed(current, keys)
        got = fit_parameters(current, keys, train, aic.predict, max_nfev=max_nfev)
        values.update(got)
        current = with_efficiency(current, got)
    return values


def ratios(hw: HardwareSpec, rows: Sequence[Sample]) -> np.ndarray:
    """measured / predicted of each row."""
    return np.array([s.measured_s / aic.predict(hw, s) for s in rows])


def stats(r: np.ndarray) -> dict[str, float]:
    """MAPE (of predicted vs measured), median and p90 absolute error, bias, rows."""
    if not len(r):
        return {"n": 0}
    ape = np.abs(1.0 / r - 1.0)
    return {
        "n": int(len(r)),
        "mape": float(ape.mean()),
        "median": float(np.median(ape)),
        "p90": float(np.quantile(ape, 0.9)),
        "bias": float(np.median(1.0 / r) - 1.0),  # median predicted/measured - 1
    }


def band(r: np.ndarray) -> tuple[float, float]:
    """(lo, hi) multipliers of a prediction: the BAND quantiles of measured/predicted."""
    lo, hi = np.quantile(r, BAND)
    return float(f"{lo:.4g}"), float(f"{hi:.4g}")


@dataclasses.dataclass
class DeviceFit:
    hardware: str
    efficiency: dict[str, float]
    engines: dict[str, dict[str, float]]
    intervals: dict[str, tuple[float, float]]
    errors: dict[str, dict[str, Any]]  # family -> stats on held-out shapes (pooled engines)
    engine_errors: dict[str, dict[str, dict[str, Any]]]


def fit_device(
    hw: HardwareSpec, fit_rows: Mapping[str, list[Sample]], test_rows: Mapping[str, list[Sample]]
) -> DeviceFit:
    """Pooled fit, per-engine overlays and bands of one device (rows of that device only)."""
    train = {f: [s for s in v if not is_test(s)] for f, v in fit_rows.items()}
    pooled = fit(hw, train)
    base = with_efficiency(hw, pooled)
    engines: dict[str, dict[str, float]] = {}
    engine_errors: dict[str, dict[str, dict[str, Any]]] = {}
    for engine in aic.ENGINES:
        mine = {f: [s for s in v if s.device.endswith("/" + engine)] for f, v in train.items()}
        mine = {f: v for f, v in mine.items() if v and not f.startswith("allreduce.nccl")}
        if not mine:
            continue
        values = fit(base, mine, max_nfev=60)
        # keep only what differs by > 3% from the pooled fit: an overlay, not a copy
        diff = {k: v for k, v in values.items() if abs(v / base.eff(k) - 1.0) > 0.03}
        diff = _helpful(base, diff, mine)
        engines[engine] = diff
        spec = with_efficiency(base, diff)
        engine_errors[engine] = {
            f: stats(ratios(spec, [s for s in v if is_test(s) and s.device.endswith("/" + engine)]))
            for f, v in test_rows.items()
        }
    errors, intervals = {}, {}
    for family, rows in sorted(test_rows.items()):
        held = [s for s in rows if is_test(s)]
        r = ratios(base, held)
        errors[family] = stats(r)
        if len(r) >= 20:
            intervals[family] = band(r)
    return DeviceFit(hw.name, pooled, engines, intervals, errors, engine_errors)


def _helpful(
    base: HardwareSpec, diff: dict[str, float], rows: Mapping[str, list[Sample]]
) -> dict[str, float]:
    """The overlay without the FIT_PLAN groups whose keys do not lower the engine's own training
    error (mean |log ratio|) on their families: a short per-engine fit that wanders (few rows,
    60 evaluations) leaves the pooled values in place."""
    keep = dict(diff)
    for families, keys in FIT_PLAN:
        mine = [k for k in keep if k in keys]
        train = [s for f in families for s in rows.get(f, ())]
        if not mine or not train:
            continue
        without = {k: v for k, v in keep.items() if k not in mine}
        err_with = np.abs(np.log(ratios(with_efficiency(base, keep), train))).mean()
        err_without = np.abs(np.log(ratios(with_efficiency(base, without), train))).mean()
        if err_with >= err_without:
            keep = without
    return keep


def derive_efficiency(
    generation: str,
    fitted: Mapping[str, tuple[str, Mapping[str, float]]],
    memory: str | None = None,
    memories: Mapping[str, str] | None = None,
    link: str | None = None,
    links: Mapping[str, str] | None = None,
    shrink: bool = False,
    tflops: Mapping[str, Mapping[str, float]] | None = None,
    target_tflops: Mapping[str, float] | None = None,
) -> tuple[dict[str, float], str]:
    """(efficiencies, how) for a device of ``generation`` from other devices' fits
    (name -> (generation, efficiency)): per key, the geometric mean over the same generation's
    devices; over every device when the generation has none ("generation unknown"). With
    ``memory`` (e.g. "HBM3e") and the fitted devices' ``memories``, the same generation's
    devices of the same memory class (HBM or GDDR) are preferred when there are any: an HBM
    datacenter part is not derived from a GDDR workstation part of its generation.

    With ``link`` (the scale-up link's name) and the fitted devices' ``links``, an NVLink device's
    collective keys (``comm_*``, ``car_*``, ``p2p_*``) come from the NVLink devices of its
    generation, else from every NVLink device: an NVLink all-reduce is not derived from a PCIe one (held out, B300's custom
    all-reduce from the RTX PRO 6000's: 97% MAPE; from A100 and H100: 22%). A PCIe device's
    collectives depend on the host's topology (peer-to-peer through a switch, or through the CPU:
    L40S reaches 14% of the link rate, the RTX PRO 6000 server 41%), so they are derived from
    every device. ``shrink``: a generation with n fitted devices weighs n / (n + 1) against the mean over
    every device (one sibling is a noisy estimate of its generation), unless a sibling shares its memory class
    (H200 from H100 alone; held out, B300 from the GDDR RTX PRO 6000 alone: 41.8% mean MAPE over the
    families, shrunk: 35.2%; the RTX PRO 6000 from B300 and GB300: 40.3% and 37.3%).

    With the devices' peak ``tflops`` (name -> format -> TFLOP/s) and the target's,
    low-precision fraction-of-peak keys transfer as speed-ups over the 16-bit peak
    (``servesim.specs.derive.format_speedups``), so a device whose FP4 peak is a smaller
    multiple of its BF16 peak is not derived slower at FP4 than at FP8."""
    speedups = bool(tflops and target_tflops)
    every = {
        n: format_speedups(e, tflops[n]) if speedups and n in tflops else e
        for n, (_, e) in fitted.items()
    }
    same = {n: every[n] for n, (g, _) in fitted.items() if g == generation}
    alike: dict[str, Mapping[str, float]] = {}
    if memory and memories:
        cls = _memory_class(memory)
        alike = {n: e for n, e in same.items() if _memory_class(memories.get(n, "")) == cls}
        same = alike or same
    pool = same or every
    wired = every
    wire = link is not None and links is not None and _link_class(link) == "nvlink"
    if wire:
        wired = {n: e for n, e in every.items() if _link_class(links.get(n, "")) == "nvlink"}
        kin = {n: e for n, e in wired.items() if fitted[n][0] == generation}
        wired = kin or wired or every
    keys = sorted({k for e in every.values() for k in e})
    weight = len(same) / (len(same) + 1.0) if shrink and same and not alike else 1.0
    out = {}
    for k in keys:
        if k.startswith(_LINK_KEYS) and wire:
            value = _geomean(wired, k)
        elif weight < 1.0:
            a, b = _geomean(pool, k), _geomean(every, k)
            value = a if b is None else b if a is None else a**weight * b ** (1.0 - weight)
        else:
            value = _geomean(pool, k)
        if value is not None:
            out[k] = value
    if speedups:
        out = format_fractions(out, target_tflops)
    out = {k: float(f"{v:.4g}") for k, v in out.items()}
    how = "generation " + generation + " from " if same else "generation unknown: all of "
    how += ", ".join(sorted(pool))
    if weight < 1.0:
        how += f" (weight {weight:.2g}; the rest from all of {', '.join(sorted(every))})"
    if wire:
        how += f"; collectives from the NVLink devices {', '.join(sorted(wired))}"
    return out, how


# Keys of collectives: derived from devices with the same kind of scale-up link.
_LINK_KEYS = ("comm_", "car_", "p2p_")


def _geomean(pool: Mapping[str, Mapping[str, float]], key: str) -> float | None:
    vals = [e[key] for e in pool.values() if key in e and e[key] > 0]
    return math.exp(float(np.mean(np.log(vals)))) if vals else None


def _link_class(name: str) -> str:
    low = name.lower()
    return "pcie" if "pcie" in low else ("nvlink" if "nvlink" in low else "other")


def _memory_class(memory: str) -> str:
    return "hbm" if "hbm" in memory.lower() else ("gddr" if "gddr" in memory.lower() else "")


def system_of(hw: HardwareSpec, systems: Sequence[str]) -> str:
    """The aiconfigurator system measured on ``hw`` (its profile name); else the only system."""
    mine = [s for s in systems if aic.SYSTEM_PROFILES.get(s) == hw.name]
    if mine:
        return mine[0]
    if len(systems) == 1:
        return systems[0]
    known = ", ".join(f"{s} -> {p}" for s, p in aic.SYSTEM_PROFILES.items())
    raise SpecError("calibrate", "--hw", hw.name,
                    f"no rows measured on it among {', '.join(systems)}; known: {known}")  # fmt: skip


def calibrate_tables(
    paths: Sequence[str | Path],
    hardware: HardwareSpec,
    *,
    per_stratum: int = 8,
    out: str | Path | None = None,
) -> DeviceFit:
    """``servesim calibrate`` on aiconfigurator tables (files, or a folder holding them): fit
    ``hardware``'s efficiencies, engine overlays and bands; ``out`` writes a whole profile."""
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.glob("*.csv*")) if p.is_dir() else [p])
    rows: dict[str, list[Sample]] = {}
    tests: dict[str, list[Sample]] = {}
    for f in files:
        if f.name in ("systems.csv", "sources.csv"):
            continue
        kind, df = aic.read_table(f)
        system = system_of(hardware, sorted(df["system"].unique()))
        df = df[df["system"] == system]
        for s in aic.samples(kind, df):
            if not excluded(s):
                tests.setdefault(s.family, []).append(s)
        strata = ("system", "backend", *STRATA[kind])
        sub = aic.stratified(df, strata, SIZE_COLUMN[kind], per_stratum) if per_stratum else df
        for s in aic.samples(kind, sub):
            if not excluded(s):
                rows.setdefault(s.family, []).append(s)
    if not rows:
        raise SpecError("calibrate", "measured", ", ".join(map(str, paths)), "no usable rows")
    bare = dataclasses.replace(hardware, efficiency=(), engines=(), intervals=())
    result = fit_device(bare, rows, tests)
    if out is not None:
        from servesim.cost.calibrate import write_profile
        from servesim.cost.profile_io import sections_text

        note = (f"servesim calibrate on {', '.join(f.name for f in files)}; held-out shapes: "
                + ", ".join(f"{f} {e['mape']:.1%}" for f, e in result.errors.items() if e.get("n")))  # fmt: skip
        text = sections_text(result.efficiency, result.engines, result.intervals,
                             hardware.generation or "other", note)  # fmt: skip
        write_profile(out, hardware, text)
    return result
