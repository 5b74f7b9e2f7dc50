"""Fit a hardware profile's efficiency parameters to measured per-operator timings; report the error.

Reads the measured formats of microsoft/vidur's profiling data (``data/profiling/``) as collected
in CSV: linear ops (GEMMs and element-wise kernels per model, TP and token count), attention
kernels (prefill chunks and decode batches), and NCCL collectives. Each row is mapped to the
shape of the operator it timed and predicted with the same functions the simulator uses
(roofline.py, comm.py), so a fitted profile is exactly what the simulator will run with.

Each family of operators has its own parameters (EFFICIENCY_DEFAULTS names them), fitted with
``scipy.optimize.least_squares`` on the log of predicted/measured time with a robust (soft L1)
loss, since single rows can be off (some were transcribed by hand). Errors are reported on rows
held out of the fit: whole models (``holdout="model"``: models ordered by hidden size then name,
every second one held out), or, where a family has a single model or none (collectives), a fixed
30% of its rows; ``"random"`` holds out 30% of rows everywhere; ``"none"`` fits on all rows and
reports in-sample error.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from servesim.cost import comm, roofline
from servesim.cost.profile_io import _yaml_num, write_atomic  # noqa: F401  (public here too)
from servesim.specs.common import SpecError
from servesim.specs.dtypes import DTypes
from servesim.specs.hardware import EFFICIENCY_DEFAULTS, HardwareSpec, load_hardware

FP16 = DTypes("fp16", "fp16", "fp16")
HOLDOUTS = ("model", "random", "none")
TEST_FRACTION = 0.3

# The device names of the measured files and the profiles they were taken on.
DEVICE_PROFILES: dict[str, str] = {
    "a100": "a100-sxm",  # vidur: A100 80GB (DGX A100)
    "h100": "h100-sxm",  # vidur: H100 SXM-class
    "a100_dgx": "a100-sxm",
    "h100_dgx": "h100-sxm",
}
# NVLink pairs with PCIe between pairs: a topology the profiles do not describe (their scale-up
# domain is one NVSwitch). Reported apart, never fitted.
UNMODELLED_NETWORKS = ("a100_pairwise_nvlink", "h100_pairwise_nvlink", "a40_pairwise_nvlink")

_KINDS: dict[str, tuple[str, ...]] = {
    "linear": ("device", "model", "tp", "num_tokens", "op", "n_embd", "n_head", "n_kv_head",
               "n_expanded_embd", "gated", "measured_ms_median"),
    "attention": ("device", "model", "op", "batch_size", "prefill_chunk_size", "kv_cache_size",
                  "q_heads_per_gpu", "kv_heads_per_gpu", "head_dim", "n_embd", "measured_ms_median"),
    "collectives": ("network_device", "op", "num_workers", "devices_per_node", "num_nodes",
                    "size_bytes", "measured_ms_median"),
}  # fmt: skip

# Fitting groups, in order (later groups see earlier fits): the families they cover and the
# parameters they fit. compute_units is a datasheet number, never fitted.
FIT_GROUPS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("gemm", ("gemm",), ("gemm_compute", "gemm_memory", "gemm_overlap", "gemm_overlap_s", "gemm_launch_s",
                         "gemm_wave", "gemm_fill_wave", "gemm_k_s")),
    ("elementwise", ("elementwise",), ("elementwise_memory", "kernel_launch_s")),
    ("attn_prefill", ("attn_prefill",), ("attn_compute", "attn_causal", "attn_overlap",
                                         "attn_prefill_launch_s", "attn_row_keys")),
    ("attn_decode", ("attn_decode",), ("attn_memory", "attn_launch_s", "attn_seq_s", "attn_wave",
                                       "attn_split_s")),
    ("comm", ("allreduce", "allreduce_multinode"), ("comm_scaleup", "comm_scaleout", "comm_launch_s")),
    ("p2p", ("p2p",), ("p2p_scaleup", "p2p_scaleout", "p2p_launch_s")),
)  # fmt: skip
_BOUNDS: dict[str, tuple[float, float]] = {
    "keys": (1.0, 1e4),
    "k_s": (1e-13, 1e-8),  # per element of K: sub-nanosecond
    "launch_s": (1e-7, 5e-5),  # a kernel's fixed cost is microseconds, not a fudge for a slope
    "overlap_s": (1e-6, 1.0),
    "overlap": (1.0, 20.0),
    "_s": (1e-8, 1e-3),
    "wave": (1e-3, 1.0),
    "_half": (1.0, 128.0),  # rows per expert: at most one 128-row M tile of padding per expert
    "_passes": (1e-3, 20.0),  # passes over a buffer
    "car_scaleup": (0.02, 2.0),  # NVLS reduces in the switch: can beat the link rate
}
_FRACTION_BOUNDS = (0.02, 1.0)
ALLREDUCE_AIM_BYTES = 1 << 20  # the accuracy aim for all-reduce covers messages >= 1 MiB


class Sample(NamedTuple):
    """One measured row mapped to an operator call."""

    family: str  # gemm | elementwise | attn_prefill | attn_decode | allreduce | p2p
    group: str  # model name, or collective configuration
    order: tuple[Any, ...]  # sort key of the group (hidden size, name)
    device: str  # device name in the file
    measured_s: float
    call: tuple[Any, ...]  # arguments of the predicting function (see predict)
    large: bool = True  # allreduce: message >= 1 MiB


class ErrorStats(NamedTuple):
    n: int
    mape: float  # mean absolute percentage error, as a fraction
    median: float
    p90: float


class FamilyError(NamedTuple):
    family: str
    device: str
    holdout: str  # what was held out ("models: ...", "30% of rows", "none (in-sample)")
    before: ErrorStats  # efficiency defaults (datasheet numbers only)
    after: ErrorStats  # fitted


@dataclasses.dataclass(frozen=True)
class CalibrationResult:
    hardware: str
    sources: tuple[str, ...]
    holdout: str
    fitted: tuple[tuple[str, float], ...]  # parameters fitted, sorted by name
    efficiency: tuple[tuple[str, float], ...]  # the resulting efficiency block (profile + fitted)
    errors: tuple[FamilyError, ...]
    excluded: tuple[tuple[str, int], ...] = ()  # (reason, rows) left out
    # (family, model or configuration, error after) on the held-out rows of each group
    detail: tuple[tuple[str, str, ErrorStats], ...] = ()

    def fitted_note(self) -> str:
        """The profile's ``fitted:`` text: which keys, from which files, held-out error."""
        errs = ", ".join(f"{e.family} {e.after.mape:.1%}" for e in self.errors if e.after.n)
        files = ", ".join(Path(s).name for s in self.sources)
        keys = ", ".join(k for k, _ in self.fitted)
        return f"{keys} fitted by servesim calibrate on {files} (holdout {self.holdout}); held-out MAPE: {errs}"

    def to_yaml(self) -> str:
        """An ``efficiency:`` and ``fitted:`` block ready to paste into a hardware profile."""
        import yaml

        lines = [
            f"# servesim calibrate --hw {self.hardware} --holdout {self.holdout}",
            "efficiency:",
        ]
        fitted = dict(self.fitted)
        for key, value in self.efficiency:
            what = "fitted" if key in fitted else "kept"
            lines.append(f"  {key}: {_yaml_num(value)}  # {what}; {EFFICIENCY_DEFAULTS[key][1]}")
        note = yaml.safe_dump({"fitted": self.fitted_note()}, width=10**6).strip()
        lines.append(note)
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "hardware": self.hardware,
            "sources": list(self.sources),
            "holdout": self.holdout,
            "fitted": dict(self.fitted),
            "efficiency": dict(self.efficiency),
            "errors": [
                {
                    "family": e.family,
                    "device": e.device,
                    "holdout": e.holdout,
                    "before": e.before._asdict(),
                    "after": e.after._asdict(),
                }
                for e in self.errors
            ],  # fmt: skip
            "excluded": dict(self.excluded),
            "detail": [
                {"family": f, "group": g, "after": st._asdict()} for f, g, st in self.detail
            ],
        }


def _round(x: float) -> float:
    return float(f"{x:.4g}")


# ----------------------------------------------------------------------------------- reading


def read_measured(path: str | Path) -> tuple[str, list[Sample], list[tuple[str, int]]]:
    """(kind, samples, excluded) of one measured CSV; bad files raise SpecError."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise SpecError(str(p), "", str(p), "file not found")
    try:
        df = pd.read_csv(p)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SpecError(
            str(p), "", str(p), f"not a readable CSV ({exc.__class__.__name__})"
        ) from None
    from servesim.cost import formats

    if formats.is_wide(df.columns):  # vidur's own time_stats.<op>.median files
        df = formats.wide_to_long(df, p)
    kind = next((k for k, cols in _KINDS.items() if set(cols) <= set(df.columns)), None)
    if kind is None:
        best = min(_KINDS, key=lambda k: len(set(_KINDS[k]) - set(df.columns)))
        missing = sorted(set(_KINDS[best]) - set(df.columns))
        raise SpecError(str(p), "columns", ", ".join(missing) or "-",
                        f"missing; a measured CSV has the columns of one of: "
                        f"linear ops, attention, collectives ({best} needs these)")  # fmt: skip
    if df.empty:
        raise SpecError(str(p), "rows", 0, "the file has a header but no rows")
    t = pd.to_numeric(df["measured_ms_median"], errors="coerce")
    if t.isna().any() or (t <= 0).any() or not np.isfinite(t).all():
        bad = df["measured_ms_median"][t.isna() | (t <= 0) | ~np.isfinite(t)].iloc[0]
        raise SpecError(str(p), "measured_ms_median", bad, "must be a positive number (ms)")
    _check_counts(df, kind, p)
    try:
        samples, excluded = _MAPPERS[kind](df)
    except (TypeError, ValueError, KeyError) as exc:
        raise SpecError(str(p), "rows", str(exc), f"malformed {kind} row") from None
    return kind, samples, excluded


# Columns that are counts: whole numbers, at least 1 where the model divides by them (n_head 0
# would be a ZeroDivisionError deep inside a fit), at least 0 otherwise.
_COUNT_MIN: dict[str, int] = {
    "tp": 1, "num_tokens": 1, "n_embd": 1, "n_head": 1, "n_kv_head": 1, "n_expanded_embd": 1,
    "batch_size": 1, "prefill_chunk_size": 0, "kv_cache_size": 0, "q_heads_per_gpu": 1,
    "kv_heads_per_gpu": 1, "head_dim": 1, "num_workers": 1, "devices_per_node": 1,
    "num_nodes": 1, "size_bytes": 0,
}  # fmt: skip


def _check_counts(df: Any, kind: str, p: Path) -> None:
    import pandas as pd

    for col in _KINDS[kind]:
        if col not in _COUNT_MIN:
            continue
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(v) | (v < _COUNT_MIN[col]) | (v != np.floor(v)) | (v >= 2.0**53)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SpecError(str(p), f"line {i + 2}, column {col}", str(df[col].iloc[i]),
                            f"must be a whole number >= {_COUNT_MIN[col]}")  # fmt: skip


def _linear_samples(df: Any) -> tuple[list[Sample], list[tuple[str, int]]]:
    out: list[Sample] = []
    skipped = 0
    for r in df.itertuples(index=False):
        tp, h, heads, kvh = int(r.tp), int(r.n_embd), int(r.n_head), int(r.n_kv_head)
        inter, m, hd = int(r.n_expanded_embd), int(r.num_tokens), int(r.n_embd) // int(r.n_head)
        gated = str(r.gated).lower() in ("true", "1")
        shapes = {
            "attn_pre_proj": (h, (heads + 2 * kvh) * hd // tp),  # fused QKV (K, N)
            "attn_post_proj": (h // tp, h),
            "mlp_up_proj": (h, (2 if gated else 1) * inter // tp),  # fused gate+up
            "mlp_down_proj": (inter // tp, h),
        }
        elementwise = {  # HBM bytes (fp16): read + write once
            "add": 3 * m * h * 2,
            "input_layernorm": 2 * m * h * 2,
            "post_attention_layernorm": 2 * m * h * 2,
            "mlp_act": (3 if gated else 2) * m * (inter // tp) * 2,
            "attn_rope": 2 * m * (heads + kvh) // tp * hd * 2,
            "emb": 2 * m * h * 2,
        }
        order, t = (h, str(r.model)), float(r.measured_ms_median) * 1e-3
        if r.op in shapes:
            k, n = shapes[r.op]
            out.append(Sample("gemm", str(r.model), order, str(r.device), t, (m, n, k)))
        elif r.op in elementwise:
            out.append(
                Sample("elementwise", str(r.model), order, str(r.device), t, (elementwise[r.op],))
            )
        else:
            skipped += 1
    return out, [("linear op not modelled", skipped)] if skipped else []


def _attention_samples(df: Any) -> tuple[list[Sample], list[tuple[str, int]]]:
    out: list[Sample] = []
    for r in df.itertuples(index=False):
        q, kv, hd = int(r.q_heads_per_gpu), int(r.kv_heads_per_gpu), int(r.head_dim)
        order, t = (int(r.n_embd), str(r.model)), float(r.measured_ms_median) * 1e-3
        if str(r.op) == "attn_prefill":
            c, p = int(r.prefill_chunk_size), int(r.kv_cache_size)
            flops = 4.0 * q * hd * (c * p + c * (c + 1) / 2)
            bytes_ = (p + c) * kv * hd * 4 + c * q * hd * 4  # K,V of the context; Q in, O out
            causal = c * (c + 1) / 2
            call = (flops, bytes_, "prefill", 1, q, kv, hd, c, c * p + causal, causal)
        else:
            s, ctx = int(r.batch_size), int(r.kv_cache_size) + 1  # cached tokens + the new one
            flops = 4.0 * s * ctx * q * hd
            bytes_ = s * ctx * kv * hd * 4 + s * q * hd * 4
            call = (flops, bytes_, "decode", s, q, kv, hd, s, s * ctx, 0.0)
        out.append(Sample(str(r.op), str(r.model), order, str(r.device), t, call))
    return out, []


def _collective_samples(df: Any) -> tuple[list[Sample], list[tuple[str, int]]]:
    out: list[Sample] = []
    skipped = 0
    for r in df.itertuples(index=False):
        net = str(r.network_device)
        if net in UNMODELLED_NETWORKS:
            skipped += 1
            continue
        n, per, nodes = int(r.num_workers), int(r.devices_per_node), int(r.num_nodes)
        size, t = float(r.size_bytes), float(r.measured_ms_median) * 1e-3
        group = f"{net} {n}x{nodes}"
        if r.op == "all_reduce":
            family = "allreduce" if nodes == 1 else "allreduce_multinode"
            call = (size, n, per)
            large = size >= ALLREDUCE_AIM_BYTES
            out.append(Sample(family, group, (n, nodes), net, t, call, large))
        elif r.op == "send_recv":
            out.append(Sample("p2p", group, (n, nodes), net, t, (size, nodes > 1)))
        else:
            skipped += 1
    return out, [("pairwise-NVLink topologies (not modelled)", skipped)] if skipped else []


_MAPPERS: dict[str, Callable[[Any], tuple[list[Sample], list[tuple[str, int]]]]] = {
    "linear": _linear_samples,
    "attention": _attention_samples,
    "collectives": _collective_samples,
}


# ---------------------------------------------------------------------------------- predicting


def predict(hw: HardwareSpec, s: Sample) -> float:
    """Seconds the cost model gives for one measured row."""
    c = s.call
    if s.family == "gemm":
        return roofline.gemm_time(hw, c[0], c[1], c[2], FP16).seconds
    if s.family == "elementwise":
        return roofline.elementwise_time(hw, c[0]).seconds
    if s.family in ("attn_prefill", "attn_decode"):
        flops, bytes_, phase, seqs, q, kv, hd, tokens, pairs, causal = c
        return roofline.attention_time(
            hw, flops, bytes_, phase, seqs=seqs, q_heads=q, kv_heads=kv, head_dim=hd,
            tokens=tokens, pairs=pairs, causal_pairs=causal, dtype="fp16",
        ).seconds  # fmt: skip
    if s.family in ("allreduce", "allreduce_multinode"):
        return comm.allreduce_time(hw, c[0], c[1], per_domain=c[2])
    if s.family == "p2p":
        return comm.p2p_time(hw, c[0], scaleout=c[1])
    raise ValueError(f"unknown family {s.family!r}")


def error_stats(hw: HardwareSpec, samples: Sequence[Sample]) -> ErrorStats:
    if not samples:
        return ErrorStats(0, math.nan, math.nan, math.nan)
    ape = np.array([abs(predict(hw, s) / s.measured_s - 1.0) for s in samples])
    return ErrorStats(
        len(ape), float(ape.mean()), float(np.median(ape)), float(np.quantile(ape, 0.9))
    )


def with_efficiency(hw: HardwareSpec, values: dict[str, float]) -> HardwareSpec:
    merged = dict(hw.efficiency)
    merged.update(values)
    return dataclasses.replace(hw, efficiency=tuple(sorted(merged.items())))


# ------------------------------------------------------------------------------------- fitting


def _bounds(key: str) -> tuple[float, float]:
    key = key.partition("@")[0]  # per-format keys bound as their base key
    for suffix, bounds in _BOUNDS.items():
        if key.endswith(suffix):
            return bounds
    return _FRACTION_BOUNDS


def fit_parameters(
    hw: HardwareSpec,
    keys: Sequence[str],
    train: Sequence[Sample],
    predictor: Callable[[HardwareSpec, Sample], float] | None = None,
    max_nfev: int = 400,
) -> dict[str, float]:
    """Least squares on log(predicted / measured), soft-L1 loss, parameters in log space.

    ``predictor``: seconds of one row (default: ``predict``, vidur's formats)."""
    predict_row = predictor or predict
    try:
        from scipy.optimize import least_squares
    except ImportError:  # an extra: pip install 'servesim[calibrate]'
        raise SpecError(
            "calibrate", "", "scipy", "not installed; pip install 'servesim[calibrate]'"
        ) from None

    lo = np.log([_bounds(k)[0] for k in keys])
    hi = np.log([_bounds(k)[1] for k in keys])
    x0 = np.clip(np.log([max(hw.eff(k), 1e-12) for k in keys]), lo + 1e-9, hi - 1e-9)
    measured = np.array([s.measured_s for s in train])
    # Each family weighs the same in the fit, however many rows it has.
    counts: dict[str, int] = {}
    for s in train:
        counts[s.family] = counts.get(s.family, 0) + 1
    weight = np.array([math.sqrt(len(train) / (len(counts) * counts[s.family])) for s in train])

    def residuals(x: np.ndarray) -> np.ndarray:
        trial = with_efficiency(hw, dict(zip(keys, np.exp(x).tolist())))
        pred = np.array([predict_row(trial, s) for s in train])
        return weight * np.log(pred / measured)

    # A parameter the rows do not depend on (no multi-node rows for the scale-out efficiency, no
    # unit count for the wave terms) keeps its value instead of drifting.
    base = residuals(x0)
    free = [
        i for i in range(len(keys)) if np.abs(residuals(_nudge(x0, i, lo, hi)) - base).max() > 1e-9
    ]
    if not free:
        return {}

    def partial(z: np.ndarray) -> np.ndarray:
        x = x0.copy()
        x[free] = z
        return residuals(x)

    # f_scale 0.03: residuals beyond ~3% count linearly, close to the MAPE the fit is judged by,
    # so single jagged rows (another kernel picked for one shape) pull the fit little.
    res = least_squares(
        partial, x0[free], bounds=(lo[free], hi[free]), loss="soft_l1", f_scale=0.03,
        diff_step=1e-3, max_nfev=max_nfev,
    )  # fmt: skip
    return {keys[i]: _round(float(np.exp(v))) for i, v in zip(free, res.x)}


def _nudge(x: np.ndarray, i: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    y = x.copy()
    y[i] = x[i] + 0.1 if x[i] + 0.1 <= hi[i] else x[i] - 0.1
    return y


def split(samples: Sequence[Sample], holdout: str) -> tuple[list[Sample], list[Sample], str]:
    """(train, test, label): whole models held out where a family has several, else 30% of rows."""
    if holdout == "none":
        return list(samples), list(samples), "none (in-sample)"
    groups = sorted({(s.order, s.group) for s in samples})
    models = holdout == "model" and samples[0].family in (
        "gemm",
        "elementwise",
        "attn_prefill",
        "attn_decode",
    )
    if models and len(groups) >= 2:
        test_groups = {g for i, (_, g) in enumerate(groups) if i % 2 == 1}
        train = [s for s in samples if s.group not in test_groups]
        test = [s for s in samples if s.group in test_groups]
        names = ", ".join(sorted(g.rsplit("/", 1)[-1] for g in test_groups))
        return train, test, f"models held out: {names}"
    rng = np.random.default_rng(np.random.SeedSequence(0))
    is_test = rng.random(len(samples)) < TEST_FRACTION
    train = [s for s, t in zip(samples, is_test) if not t]
    test = [s for s, t in zip(samples, is_test) if t]
    return train, test, f"{TEST_FRACTION:.0%} of rows held out"


def _subsample(samples: list[Sample], max_rows: int | None) -> list[Sample]:
    if max_rows is None or len(samples) <= max_rows:
        return samples
    step = len(samples) / max_rows
    return [samples[int(i * step)] for i in range(max_rows)]


def _packed(hw: HardwareSpec, s: Sample) -> bool:
    n, per = s.call[1], s.call[2]
    return per == min(n, hw.scaleup_devices)


def _select_device(hw: HardwareSpec, samples: list[Sample], where: str) -> list[Sample]:
    devices = sorted({s.device for s in samples})
    mine = [s for s in samples if DEVICE_PROFILES.get(s.device) == hw.name]
    if mine:
        return mine
    unknown = [d for d in devices if d not in DEVICE_PROFILES]
    if len(unknown) == 1 and len(devices) == 1:  # the user's own single-device measurements
        return samples
    raise SpecError(where, "device", ", ".join(devices),
                    f"no rows measured on {hw.name}; known devices map to: "
                    + ", ".join(f"{d} -> {p}" for d, p in DEVICE_PROFILES.items()))  # fmt: skip


def calibrate(
    measured_csv: str | Path | Iterable[str | Path],
    hardware: str | Path | HardwareSpec,
    *,
    out: str | Path | None = None,
    holdout: str = "model",
    fit: Iterable[str] | None = None,
    max_rows: int | None = None,
) -> CalibrationResult:
    """Fit ``hardware``'s efficiency parameters to measured timings; error before and after.

    ``measured_csv``: one path or several (linear ops, attention, collectives; the kind of each
    file is detected from its columns). ``hardware``: profile id, alias, YAML path or spec; only
    rows measured on that device are used. ``holdout``: "model", "random" or "none" (see the
    module doc). ``out``: write the resulting efficiency block as YAML there (atomically).
    ``fit``: names of the fitting groups to fit (FIT_GROUPS: gemm, elementwise, attn_prefill,
    attn_decode, comm, p2p; default all); the others are only scored, with the profile's values.
    ``max_rows``: at most this many rows per family (evenly spaced), for quick runs.
    The parameters are fitted on the training rows only, so the reported error is held out.
    """
    if holdout not in HOLDOUTS:
        raise SpecError("calibrate", "holdout", holdout, "must be one of " + ", ".join(HOLDOUTS))
    paths = [measured_csv] if isinstance(measured_csv, (str, Path)) else list(measured_csv)
    if not paths:
        raise SpecError("calibrate", "measured_csv", "", "give at least one measured CSV")
    groups = [g for g, _, _ in FIT_GROUPS]
    chosen = set(groups if fit is None else fit)
    if chosen - set(groups):
        bad = ", ".join(sorted(chosen - set(groups)))
        raise SpecError("calibrate", "fit", bad, "unknown group; allowed: " + ", ".join(groups))
    hw = hardware if isinstance(hardware, HardwareSpec) else load_hardware(hardware)
    by_family, excluded = _load_samples(paths, hw)
    defaults = dataclasses.replace(hw, efficiency=())
    fitted: dict[str, float] = {}
    current = hw
    tests: list[tuple[str, list[Sample], str]] = []
    for name, families, keys in FIT_GROUPS:
        parts = {
            f: split(_subsample(by_family[f], max_rows), holdout)
            for f in families
            if f in by_family
        }
        if not parts:
            continue
        train = [s for tr, _, _ in parts.values() for s in tr]
        values = fit_parameters(current, keys, train) if name in chosen and train else {}
        fitted.update(values)
        current = with_efficiency(current, values)
        tests.extend((family, test, label) for family, (_, test, label) in parts.items())
    errors: list[FamilyError] = []
    detail: list[tuple[str, str, ErrorStats]] = []
    for family, test, label in tests:  # with the final values: what the simulator will use
        errors.extend(_family_errors(family, test, label, defaults, current))
        for group in sorted({s.group for s in test}):
            rows = [s for s in test if s.group == group]
            detail.append((family, group, error_stats(current, rows)))
    result = CalibrationResult(
        hardware=hw.name,
        sources=tuple(str(p) for p in paths),
        holdout=holdout,
        fitted=tuple(sorted(fitted.items())),
        efficiency=tuple(sorted(current.efficiency)),
        errors=tuple(errors),
        excluded=tuple(sorted(excluded.items())),
        detail=tuple(detail),
    )
    if out is not None:
        write_profile(out, hw, result.to_yaml())
    return result


def write_profile(out: str | Path, hw: HardwareSpec, block: str) -> None:
    """A profile ``--hw`` loads: the catalog profile's datasheet part (when ``hw`` is one) with
    the calibration sections replaced by ``block``; else the block alone (to paste)."""
    from servesim.cost.profile_io import _TOP, SECTIONS  # noqa: F811
    from servesim.specs.hardware import resolve_catalog

    try:
        base = resolve_catalog("hardware", hw.name)
    except SpecError:
        write_atomic(out, block)
        return
    lines = base.read_text(encoding="utf-8").splitlines()
    keep = []
    for ln in lines:
        m = _TOP.match(ln)
        if m and m.group(1) in SECTIONS:
            break
        keep.append(ln)
    write_atomic(out, "\n".join(keep).rstrip() + "\n" + block)


def _load_samples(
    paths: Sequence[str | Path], hw: HardwareSpec
) -> tuple[dict[str, list[Sample]], dict[str, int]]:
    """Rows of every file measured on ``hw``, by family; and what was left out, with counts."""
    by_family: dict[str, list[Sample]] = {}
    excluded: dict[str, int] = {}
    for path in paths:
        _, samples, skipped = read_measured(path)
        for s in _select_device(hw, samples, str(path)):
            if s.family == "allreduce_multinode" and not _packed(hw, s):
                # e.g. 2 GPUs on 2 nodes: servesim places a group on as few nodes as fit
                spread = "all-reduce groups spread over more nodes than needed"
                excluded[spread] = excluded.get(spread, 0) + 1
                continue
            by_family.setdefault(s.family, []).append(s)
        for reason, count in skipped:
            excluded[reason] = excluded.get(reason, 0) + count
    return by_family, excluded


def _family_errors(
    family: str, test: list[Sample], label: str, before: HardwareSpec, after: HardwareSpec
) -> list[FamilyError]:
    device = test[0].device if test else "-"
    rows = [FamilyError(family, device, label, error_stats(before, test), error_stats(after, test))]
    if family.startswith("allreduce"):  # the aim covers messages >= 1 MiB
        large = [s for s in test if s.large]
        rows.append(FamilyError(f"{family}>=1MiB", device, label,
                                error_stats(before, large), error_stats(after, large)))  # fmt: skip
    return rows
