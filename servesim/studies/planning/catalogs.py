"""Named workloads and hardware targets (YAML files that `plan` and `sweep` accept by name), and a
user accelerator from the few numbers a user has.

workloads.yaml:  NAME: {model, tokens_per_day | rate, pattern, hourly, isl, osl, slo, dtype}
targets.yaml:    NAME: {hardware: [ids or profile paths], accelerators: [ACCEL, ...], tp, pp, ...}
ACCEL:           {name, tflops: {bf16: ..}, memory_GB, bandwidth_GBps, scaleup_bandwidth_GBps,
                  tdp_W, price_hour_usd | purchase_usd} + optional fields (derived when absent)

The accelerator derivation is one function, ``derive_hardware(mapping) -> HardwareSpec``: where
servesim.specs.hardware provides the `base:` mechanism it should be used instead (one mechanism);
until then this module writes a complete profile with every derived number marked `estimate:`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from servesim.specs.common import SpecError
from servesim.specs.derive import complete_numbers

WORKLOAD_KEYS = ("model", "tokens_per_day", "rate", "pattern", "hourly", "isl", "osl", "slo",
                 "dtype", "trace", "speedup")  # fmt: skip
_NUMBERS = ("tokens_per_day", "rate", "speedup", "isl", "osl")
TARGET_KEYS = ("hardware", "accelerators", "tp", "pp", "caps", "modes", "dtype", "pricing")
ACCEL_REQUIRED = (
    "name",
    "tflops",
    "memory_GB",
    "bandwidth_GBps",
    "scaleup_bandwidth_GBps",
    "tdp_W",
)
ACCEL_OPTIONAL = ("price_hour_usd", "purchase_usd", "idle_W", "scaleup_devices", "devices_per_node",
                  "scaleout_bandwidth_GBps", "overhead_s", "host_W_per_node", "vendor", "source")  # fmt: skip
# user accelerator key -> dotted profile key
_NESTED = {
    "memory_GB": "memory.capacity_GB", "bandwidth_GBps": "memory.bandwidth_GBps",
    "scaleup_bandwidth_GBps": "interconnect.scaleup.bandwidth_GBps",
    "scaleup_devices": "interconnect.scaleup.devices",
    "scaleout_bandwidth_GBps": "interconnect.scaleout.bandwidth_GBps",
    "devices_per_node": "interconnect.devices_per_node", "tdp_W": "power.tdp_W",
    "idle_W": "power.idle_W", "host_W_per_node": "power.host_W_per_node",
    "price_hour_usd": "price.hour_usd", "purchase_usd": "price.purchase_usd",
    "overhead_s": "overhead_s", "vendor": "vendor", "source": "source",
}  # fmt: skip


def _put(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for p in parents:
        data = data.setdefault(p, {})
    data[last] = value


def _load(path: str | Path, kind: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise SpecError(str(p), "", kind, "file not found")
    data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    if not isinstance(data, Mapping):
        raise SpecError(str(p), "", type(data).__name__, f"a mapping of {kind} names")
    return dict(data)


def named(path: str | Path, name: str, kind: str, keys: tuple[str, ...]) -> dict[str, Any]:
    data = _load(path, kind)
    if name not in data:
        raise SpecError(str(path), name, "<missing>",
                        f"no {kind} of that name; it has: {', '.join(map(str, data)) or 'none'}")  # fmt: skip
    entry = data[name]
    if not isinstance(entry, Mapping):
        raise SpecError(str(path), name, entry, f"a mapping of {', '.join(keys)}")
    bad = sorted(set(entry) - set(keys))
    if bad:
        raise SpecError(
            str(path), f"{name}.{bad[0]}", entry[bad[0]], "unknown key; allowed: " + ", ".join(keys)
        )
    out = dict(entry)
    for k in _NUMBERS:  # YAML 1.1 reads 5.0e6 (no sign in the exponent) as text
        if isinstance(out.get(k), str):
            try:
                out[k] = float(out[k])
            except ValueError:
                raise SpecError(str(path), f"{name}.{k}", out[k], "a number") from None
    return out


def derive_hardware(
    data: Mapping[str, Any], out_dir: str | Path | None = None
) -> tuple[str, list[str]]:
    """A user accelerator -> (path of a complete hardware profile, derivation lines). Every missing
    required field is named in one SpecError."""
    name = str(data.get("name") or "accelerator")
    missing = [k for k in ACCEL_REQUIRED if data.get(k) in (None, "", {})]
    if data.get("price_hour_usd") is None and data.get("purchase_usd") is None:
        missing.append("price_hour_usd or purchase_usd")
    if missing:
        raise SpecError(
            "accelerator", name, "<incomplete>", "missing fields: " + ", ".join(missing)
        )
    bad = sorted(set(data) - set(ACCEL_REQUIRED) - set(ACCEL_OPTIONAL))
    if bad:
        raise SpecError("accelerator", f"{name}.{bad[0]}", data[bad[0]], "unknown key")
    # the flat keys a user writes -> the profile's sections; the rest is filled by the one
    # derivation every device goes through (servesim.specs.derive.complete_numbers)
    nested: dict[str, Any] = {"name": name, "compute": {"tflops": dict(data["tflops"])}}
    for key, dotted in _NESTED.items():
        if data.get(key) is not None:
            _put(nested, dotted, data[key])
    profile, derived = complete_numbers(nested, f"accelerator {name}")
    lines = [f"{name}.{field} = {how}" for field, how in derived]
    folder = Path(out_dir or os.path.join(tempfile.gettempdir(), "servesim-accelerators"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")
    from servesim.specs.hardware import load_hardware

    load_hardware(str(path))  # validated like any profile
    return str(path), lines


def apply_named(model: str | None, kwargs: dict[str, Any], workload: str | None,
                workloads_file: str | None, target: str | None, targets_file: str | None,
                explicit: set[str] = frozenset()) -> tuple[str, dict[str, Any], list[str]]:  # fmt: skip
    """Fill plan arguments from a named workload and target; flags typed by the user win."""
    kw = dict(kwargs)
    lines: list[str] = []
    if workload:
        w = named(workloads_file or "workloads.yaml", workload, "workload", WORKLOAD_KEYS)
        model = model or w.pop("model", None)
        w.pop("model", None)
        for k, v in w.items():
            if k not in explicit and not (k == "slo" and kw.get("slo")):
                kw[k] = v
    if target:
        t = named(targets_file or "targets.yaml", target, "target", TARGET_KEYS)
        hw = list(t.pop("hardware", []) or [])
        for acc in t.pop("accelerators", []) or []:
            path, derived = derive_hardware(acc)
            hw.append(path)
            lines += derived
        if "hw" not in explicit:
            kw["hardware"] = hw
        for k, v in t.items():
            if k not in explicit:
                kw[k] = v
    if not model:
        raise SpecError("plan", "--model", None, "give --model or a --workload that names one")
    return model, kw, lines


def sweep_named(data: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """A sweep spec with `workload: NAME` / `target: NAME` (files `workloads:` / `targets:`, else
    workloads.yaml / targets.yaml beside the spec) turned into plain keys: the workload sets the
    base config's model, arrivals at the peak hour's rate (as plan simulates it), fixed lengths,
    SLO and dtype; the target adds a grid over deployment.pools.0.hardware."""
    from servesim.studies.planning.day import day_profile

    out = {k: v for k, v in data.items() if k not in ("workload", "workloads", "target", "targets")}
    base = out.get("base")
    if isinstance(base, str):
        base = (
            yaml.safe_load((root / base).read_text(encoding="utf-8"))
            if not Path(base).is_absolute()
            else yaml.safe_load(Path(base).read_text(encoding="utf-8"))
        )
    base = dict(base or {})
    if data.get("workload"):
        w = named(root / str(data.get("workloads") or "workloads.yaml"), str(data["workload"]),
                  "workload", WORKLOAD_KEYS)  # fmt: skip
        isl, osl = int(w.get("isl", 1024)), int(w.get("osl", 256))
        prof = day_profile(str(w.get("pattern", "flat")), w.get("hourly"))
        mean = w.get("rate") or (
            float(w["tokens_per_day"]) / 86400.0 / (isl + osl) if w.get("tokens_per_day") else None
        )
        if mean is None:
            raise SpecError(
                str(data["workload"]), "tokens_per_day", None, "give tokens_per_day or rate"
            )
        arrivals = {"process": prof.process, "rate": float(mean) * prof.peak_to_mean}
        if prof.cv is not None:
            arrivals["cv"] = prof.cv
        wl = dict(base.get("workload") or {})
        for src in ("trace", "arrivals", "clients"):
            wl.pop(src, None)
        wl.update(arrivals=arrivals, lengths={"input": {"dist": "fixed", "mean": isl},
                                              "output": {"dist": "fixed", "mean": osl}})  # fmt: skip
        base["workload"] = wl
        for key in ("model", "slo", "dtype"):
            if w.get(key) is not None:
                base[key] = w[key]
    if data.get("target"):
        t = named(root / str(data.get("targets") or "targets.yaml"), str(data["target"]), "target",
                  TARGET_KEYS)  # fmt: skip
        hw = list(t.get("hardware") or []) + [
            derive_hardware(acc)[0] for acc in t.get("accelerators") or []
        ]
        grid = dict(out.get("grid") or {})
        grid["deployment.pools.0.hardware"] = hw
        out["grid"] = grid
    out["base"] = base
    return out
