"""Derived devices: an accelerator described by the few numbers a user has, the rest derived.

Two forms, one mechanism (``servesim.specs.hardware.derive_hardware`` is the public entry):

- ``{base: h100-sxm, memory: {bandwidth_GBps: 6700}, clock: {frequency_GHz: 2.1}}``: the base
  profile with only these fields changed (nested mappings merge; lists such as aliases are
  replaced, and aliases are not inherited by a device that changes anything). Numbers that follow
  physically from the change are derived unless given: peak TFLOP/s from compute units x clock,
  TDP from static + V^2 f dynamic + memory power, die area from compute units or SRAM capacity,
  HBM stacks from capacity and bandwidth. A physically different device drops the base's market
  prices (the bottom-up cost of servesim/accounting/hwcost.py applies). Efficiencies are inherited from the
  base as they are (generation defaults for unfitted devices plug in there).
- no base: a full profile, where every required field that is missing is named in one error and
  the optional rest (idle power, host power, scale-out link, overhead) is filled by stated rules.

Every derived number is recorded on the spec (``HardwareSpec.derived``) and ``derivation(hw)``
lists them with the overrides, for ``servesim show hardware``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from servesim.specs.common import SpecError, flatten_keys, load_yaml, require_mapping
from servesim.specs.silicon import (
    DEFAULT_STATIC_FRACTION,
    HBM,
    NODES,
    UNITS_AREA_SHARE,
    memory_kind,
    memory_pj_per_bit,
    power_parts,
)

# Sections whose change alters the silicon bill (the market price no longer applies); a fused-down
# link or a power cap keeps the base's price.
_PHYSICAL = ("compute", "memory", "die", "clock", "packaging")
# What a device with no base must give; everything else has a stated default.
_REQUIRED = (
    "name", "compute.tflops", "memory.capacity_GB", "memory.bandwidth_GBps", "power.tdp_W",
    "interconnect.scaleup.bandwidth_GBps",
)  # fmt: skip


def derive(
    mapping: Mapping[str, Any],
    *,
    base: Any = None,
    where: str = "<hardware>",
    parse_hardware: Any,
    load_hardware: Any,
    resolve: Any,
) -> Any:
    """The device of ``mapping`` (specs.hardware passes its parser, loader and catalog resolver,
    so that this module never imports it: one-way imports)."""
    data = copy.deepcopy(dict(require_mapping(mapping, where, "hardware")))
    ref = data.pop("base", None)
    ref = base if ref is None else ref
    if ref is None:
        return _from_numbers(data, where, parse_hardware)
    if not isinstance(ref, (str, Path)) or not str(ref).strip():
        raise SpecError(where, "base", ref, "must be a hardware id, alias or profile path")
    base_raw, base_id = raw_profile(ref, where, resolve)
    if not data:  # nothing changes: the base itself, through the same parse
        spec = parse_hardware(base_raw, where)
        parent = load_hardware(ref, where)
        return dataclasses.replace(
            spec, base=parent.base, overrides=parent.overrides, derived=parent.derived
        )
    changed = flatten_keys(data)
    merged = _merge(base_raw, data)
    derived: list[tuple[str, str]] = []
    _identity(merged, data, base_raw, base_id, changed)
    _physics(merged, base_raw, base_id, changed, derived, where)
    spec = parse_hardware(merged, where)
    return dataclasses.replace(
        spec,
        base=base_id,
        overrides=json.dumps(data, sort_keys=True, separators=(",", ":")),
        derived=tuple(derived),
    )


def raw_profile(
    ref: Any, where: str, resolve: Any, seen: tuple[str, ...] = ()
) -> tuple[dict[str, Any], str]:
    """(profile mapping with any ``base:`` chain merged in, catalog id) of a hardware reference."""
    path = resolve("hardware", ref, where)
    if str(path) in seen:
        raise SpecError(where, "base", str(ref), "derivation cycle: " + " -> ".join(seen))
    data = dict(require_mapping(load_yaml(path), str(path), ""))
    if "base" not in data:
        return data, str(data.get("name") or path.stem)
    parent = data.pop("base")
    parent_raw, parent_id = raw_profile(parent, str(path), resolve, (*seen, str(path)))
    merged = _merge(parent_raw, data)  # the derived file as a full profile, its physics applied
    if "aliases" not in data:
        merged.pop("aliases", None)
    _physics(merged, parent_raw, parent_id, flatten_keys(data), [], str(path))
    return merged, str(data.get("name") or path.stem)


def derivation(hw: Any) -> dict[str, str]:
    """How a device was made: its base, each override and each derived number with its rule."""
    if not hw.base:
        return {}
    out = {"base": hw.base}
    for key, value in flatten_keys(json.loads(hw.overrides or "{}")).items():
        if key in ("name", "display_name", "aliases", "source"):
            continue  # identity, shown in the profile itself
        out[f"set {key}"] = json.dumps(value) if not isinstance(value, str) else value
    for field, how in hw.derived:
        out[f"derived {field}"] = how
    if hw.efficiency:
        out["inherited efficiency"] = f"{len(hw.efficiency)} cost-model keys of {hw.base}"
    return out


# ------------------------------------------------------------------------------------ helpers


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Nested mappings merge key by key; anything else (numbers, lists) is replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _get(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def _given(changed: Mapping[str, Any], dotted: str) -> bool:
    return any(k == dotted or k.startswith(dotted + ".") for k in changed)


def _num(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok else None


def _short(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------------- derivation rules


def _identity(merged, data, base_raw, base_id, changed) -> None:
    """A changed device is not the base: its own name, no inherited aliases."""
    if "name" not in data:
        parts = [f"{k}={_short(v)}" for k, v in sorted(changed.items()) if k != "name"]
        merged["name"] = f"{base_id}[{','.join(parts)}]"
    if "display_name" not in data:
        merged["display_name"] = f"{base_raw.get('display_name', base_id)} (derived)"
    if "aliases" not in data:
        merged.pop("aliases", None)
    if "source" not in data:
        merged["source"] = f"derived from {base_id}; base: {base_raw.get('source', '')}"


def _physics(merged, base_raw, base_id, changed, derived, where) -> None:
    lacks: list[str] = []

    def base_num(dotted: str, why: str) -> float | None:
        value = _num(_get(base_raw, dotted))
        if value is None:
            lacks.append(f"{dotted} (for {why})")
        return value

    def ratio(dotted: str, why: str) -> float:
        if not _given(changed, dotted):
            return 1.0
        old, new = base_num(dotted, why), _num(_get(merged, dotted))
        return new / old if old and new else 1.0

    units_r = ratio("compute.compute_units", "scaling peak FLOP/s and die area with units")
    f_r = ratio("clock.frequency_GHz", "scaling peak FLOP/s and power with the clock")
    v_r = ratio("clock.voltage_V", "scaling power with V^2")
    if f_r > 1.0 and not _given(changed, "clock.voltage_V"):
        # LLM SPICE's approximation: above the base clock, voltage rises as sqrt(f ratio)
        v0 = base_num("clock.voltage_V", "raising the clock (voltage follows sqrt(f))")
        if v0:
            v_r = math.sqrt(f_r)
            _set(merged, "clock.voltage_V", round(v0 * v_r, 6))
            derived.append(("clock.voltage_V", f"{v0:g} V x sqrt({f_r:.4g}) (clock raised)"))
    if (units_r != 1.0 or f_r != 1.0) and not _given(changed, "compute.tflops"):
        table = _get(merged, "compute.tflops") or {}
        for dtype, value in table.items():
            if _num(value):
                table[dtype] = round(value * units_r * f_r, 6)
        derived.append(("compute.tflops", f"base x {units_r:.4g} (units) x {f_r:.4g} (clock)"))
    area_r = _area(merged, base_raw, changed, derived, units_r, base_num)
    _stacks(merged, base_raw, changed, derived, base_num)
    _power(merged, base_raw, changed, derived, (units_r, f_r, v_r, area_r), base_num)
    if lacks:
        raise SpecError(
            where, "base", base_id,
            f"the base lacks {'; '.join(dict.fromkeys(lacks))}: add them to the base or give the derived numbers",
        )  # fmt: skip
    if any(_given(changed, s) for s in _PHYSICAL):
        for key in ("hour_usd", "purchase_usd"):
            if not _given(changed, f"price.{key}") and _get(merged, f"price.{key}") is not None:
                _set(merged, f"price.{key}", None)
                derived.append((f"price.{key}", "dropped: a different device (bottom-up cost applies)"))  # fmt: skip


def _area(merged, base_raw, changed, derived, units_r, base_num) -> float:
    """Die area follows compute units (their share of the die) and on-die SRAM capacity."""
    if _given(changed, "die.area_mm2") or _get(base_raw, "die.area_mm2") is None:
        a0, a1 = _num(_get(base_raw, "die.area_mm2")), _num(_get(merged, "die.area_mm2"))
        return a1 / a0 if a0 and a1 else 1.0
    a0 = float(_get(base_raw, "die.area_mm2"))
    area = a0 * (1.0 - UNITS_AREA_SHARE + UNITS_AREA_SHARE * units_r)
    how = []
    if units_r != 1.0:
        how.append(f"units x {units_r:.4g} on {UNITS_AREA_SHARE:g} of the die")
    sram = memory_kind(str(_get(merged, "memory.type") or "")) == "sram"
    if sram and _given(changed, "memory.capacity_GB"):
        c0 = base_num("memory.capacity_GB", "SRAM area")
        density = _num(_get(merged, "die.sram_mm2_per_MB"))
        node = NODES.get(str(_get(merged, "die.node") or ""))
        density = density or (node.sram_mm2_per_MB if node else None)
        if density is None:
            base_num("die.sram_mm2_per_MB", "SRAM area (or a known die.node)")
        elif c0:
            extra = (float(_get(merged, "memory.capacity_GB")) - c0) * 1000.0 * density
            area += extra / max(int(_get(merged, "die.count") or 1), 1)
            how.append(f"{extra:+.0f} mm2 of SRAM at {density:g} mm2/MB")
    if how:
        if area <= 0:
            raise SpecError("derive", "die.area_mm2", area, "derived area must be > 0")
        _set(merged, "die.area_mm2", round(area, 3))
        derived.append(("die.area_mm2", f"{a0:g} mm2, " + "; ".join(how)))
    return area / a0


def _stacks(merged, base_raw, changed, derived, base_num) -> None:
    """HBM stacks: enough for the capacity at the base's stack size and for the bandwidth at the
    generation's top per-stack rate."""
    kind = memory_kind(str(_get(merged, "memory.type") or ""))
    moved = _given(changed, "memory.capacity_GB") or _given(changed, "memory.bandwidth_GBps")
    if kind not in HBM or not moved or _given(changed, "memory.stacks"):
        return
    if _get(base_raw, "memory.stacks") is None:
        return  # no stack count to derive from: the bottom-up cost names it when asked
    s0 = base_num("memory.stacks", "HBM stacks")
    c0 = base_num("memory.capacity_GB", "HBM stacks")
    if not (s0 and c0):
        return
    cap, bw = (
        float(_get(merged, "memory.capacity_GB")),
        float(_get(merged, "memory.bandwidth_GBps")),
    )
    top = HBM[kind].stack_bw_GBps
    stacks = max(math.ceil(cap / (c0 / s0) - 1e-9), math.ceil(bw / top - 1e-9), 1)
    if stacks != s0:
        _set(merged, "memory.stacks", stacks)
        derived.append(("memory.stacks", f"max(capacity / {c0 / s0:.4g} GB, bandwidth / {top:g} GB/s per {kind} stack)"))  # fmt: skip


def _power(merged, base_raw, changed, derived, ratios, base_num) -> None:
    """TDP = static x V x area + dynamic x units x V^2 x f + memory bandwidth x pJ/bit."""
    units_r, f_r, v_r, area_r = ratios
    bw_moved = _given(changed, "memory.bandwidth_GBps") or _given(changed, "memory.type")
    if _given(changed, "power.tdp_W") or (
        (units_r, f_r, v_r, area_r) == (1.0, 1.0, 1.0, 1.0) and not bw_moved
    ):
        return
    tdp0 = base_num("power.tdp_W", "power")
    pj0 = memory_pj_per_bit(str(_get(base_raw, "memory.type") or ""))
    pj0 = _num(_get(base_raw, "power.memory_pJ_per_bit")) or pj0
    pj1 = _num(_get(merged, "power.memory_pJ_per_bit")) or memory_pj_per_bit(
        str(_get(merged, "memory.type") or "")
    )
    if pj0 is None or pj1 is None:
        base_num("power.memory_pJ_per_bit", "memory power (memory.type is not in the tables)")
        return
    sf = _num(_get(base_raw, "power.static_fraction")) or DEFAULT_STATIC_FRACTION[0]
    bw0, bw1 = (
        float(_get(base_raw, "memory.bandwidth_GBps")),
        float(_get(merged, "memory.bandwidth_GBps")),
    )
    if not tdp0:
        return
    p0 = power_parts(tdp0, bw0, pj0, sf)
    mem1 = p0.memory_W * (bw1 * pj1) / (bw0 * pj0) if bw0 * pj0 else 0.0
    static1 = p0.static_W * v_r * area_r
    dyn1 = p0.dynamic_W * units_r * v_r**2 * f_r
    tdp1 = static1 + dyn1 + mem1
    _set(merged, "power.tdp_W", round(tdp1, 3))
    derived.append(("power.tdp_W", f"static {p0.static_W:.0f} W x {v_r:.4g} (V) x {area_r:.4g} (area) + dynamic {p0.dynamic_W:.0f} W x {units_r:.4g} (units) x {v_r:.4g}^2 x {f_r:.4g} (f) + memory {p0.memory_W:.0f} W x {bw1 * pj1 / (bw0 * pj0):.4g} (bandwidth)"))  # fmt: skip
    if not _given(changed, "power.idle_W"):
        idle0 = float(_get(base_raw, "power.idle_W"))
        idle1 = min(idle0 * tdp1 / tdp0, tdp1)
        _set(merged, "power.idle_W", round(idle1, 3))
        derived.append(("power.idle_W", f"base {idle0:g} W x TDP ratio {tdp1 / tdp0:.4g}"))


def _from_numbers(data: dict[str, Any], where: str, parse_hardware: Any) -> Any:
    """No base: the required numbers (all missing ones named at once), stated defaults for the rest."""
    merged, derived = complete_numbers(data, where)
    spec = parse_hardware(merged, where)
    return dataclasses.replace(spec, base="(none)", overrides=json.dumps(data, sort_keys=True), derived=tuple(derived))  # fmt: skip


def complete_numbers(
    data: Mapping[str, Any], where: str = "<hardware>"
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """A full profile mapping from the few numbers a user has (``_REQUIRED``; every missing one
    named in one error) plus (dotted field, rule) for each stated default filled in."""
    missing = [k for k in _REQUIRED if _get(data, k) is None]
    if missing:
        raise SpecError(
            where, "", "hardware",
            f"missing {', '.join(missing)} (or give base: a catalog device to derive from)",
        )  # fmt: skip
    merged = copy.deepcopy(dict(data))
    derived: list[tuple[str, str]] = []
    tdp = _num(_get(data, "power.tdp_W")) or 0.0

    def default(dotted: str, value: Any, rule: str) -> None:
        if _get(merged, dotted) is None:
            _set(merged, dotted, value)
            derived.append((dotted, f"{_short(value)} ({rule})"))

    default("display_name", str(data["name"]), "the name")
    default("vendor", "other", "not given")
    default("source", "user-supplied numbers", "not given")
    default("power.idle_W", round(0.12 * tdp, 3), "estimate: 12% of TDP, the measured H200 ratio")
    default("interconnect.scaleup.devices", 8, "estimate: one 8-device node")
    default("interconnect.scaleup.latency_us", 3.0, "estimate: NVLink-class few-us collective step")
    default("interconnect.scaleout.bandwidth_GBps", 50.0, "estimate: one 400 Gb/s NIC per device")
    default("interconnect.scaleout.latency_us", 5.0, "estimate: InfiniBand through one switch")
    dpn = min(int(_get(merged, "interconnect.scaleup.devices") or 8), 8)
    default("interconnect.devices_per_node", dpn, "the scale-up domain, at most 8")
    default("power.host_W_per_node", 287.5 * dpn, "estimate: H100 host draw 2300 W per 8 devices")
    default("overhead_s", 0.002, "estimate: vLLM-class per-step CPU time")
    price = merged.setdefault("price", {})  # a price not given: the bottom-up one applies
    price.setdefault("hour_usd", None)
    price.setdefault("purchase_usd", None)
    return merged, derived


_KEY_LINE = re.compile(r"^(\s*)([A-Za-z0-9_]+):(.*)$")


def profile_comments(ref: Any, where: str = "", *, resolve: Any) -> dict[str, str]:
    """The source comment of every ``key: value  # comment`` line of a profile file, by dotted key
    (a derived file's own comments over its base's), for printing each input with its source."""
    path = resolve("hardware", ref, where)
    out: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _KEY_LINE.match(line)
        if not m:
            continue
        indent, key, rest = len(m.group(1)), m.group(2), m.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if "#" in rest and not rest.strip().startswith(("'", '"')):
            out[".".join([k for _, k in stack] + [key])] = rest.split("#", 1)[1].strip()
        stack.append((indent, key))
    data = load_yaml(path)
    if isinstance(data, Mapping) and data.get("base"):
        return {**profile_comments(data["base"], str(path), resolve=resolve), **out}
    return out


# -- efficiencies across devices of one generation whose format peaks differ -----------------
# Keys that are fractions of a format's peak FLOP/s (``gemm_compute@fp4`` ...) and the peak each
# per-format suffix runs at.
FLOP_KEYS = ("gemm_compute", "moe_compute", "attn_compute", "attn_causal")
_PEAK_FORMAT = {"fp8_block": "fp8", "fp16": "bf16"}


def _format_ratio(tflops: Mapping[str, float], fmt: str, base: str) -> float | None:
    top, ref = tflops.get(_PEAK_FORMAT.get(fmt, fmt)), tflops.get(base)
    return top / ref if top and ref else None


def format_speedups(
    eff: Mapping[str, float], tflops: Mapping[str, float], base: str = "bf16"
) -> dict[str, float]:
    """``eff`` with each low-precision fraction-of-peak key (``gemm_compute@fp4``) restated as
    a fraction of the ``base`` format's peak: the achieved speed-up over a base-format kernel at
    full efficiency. This, not the fraction of the format's own peak, is what transfers between
    devices of one generation whose peak ratios differ: B300 and GB300 run FP4 tensor cores at
    6x their BF16 rate, B200 and GB200 at 4x, yet the same NVFP4 GEMM shape runs about as fast on
    B200 (flashinfer mm_fp4 1024x7168x4608, cutlass 3,370 / cudnn 2,976 / trtllm 2,187 TFLOP/s,
    github.com/flashinfer-ai/flashinfer pull 1979) as on B300 (aiconfigurator b300_sxm, same
    shape: vLLM 2,975 / SGLang 2,404 / TensorRT-LLM 2,080 TFLOP/s): the extra FP4 rate of
    Blackwell Ultra is not what bounds the kernels. Keys without a format, or whose peaks are
    unknown, are unchanged."""
    out = dict(eff)
    for k, v in eff.items():
        key, _, fmt = k.partition("@")
        ratio = _format_ratio(tflops, fmt, base) if fmt and key in FLOP_KEYS else None
        if ratio:
            out[k] = v * ratio
    return out


def format_fractions(
    rel: Mapping[str, float], tflops: Mapping[str, float], base: str = "bf16"
) -> dict[str, float]:
    """The inverse of ``format_speedups`` on a device with peaks ``tflops``: back to fractions
    of each format's own peak, never above the key's base-format value (a low-precision kernel
    does not reach a larger share of its peak than the 16-bit one on the same device). A format
    the device has no peak for is dropped: it runs in a wider format and uses that one's keys."""
    out = dict(rel)
    for k, v in rel.items():
        key, _, fmt = k.partition("@")
        if not fmt or key not in FLOP_KEYS:
            continue
        ratio = _format_ratio(tflops, fmt, base)
        if ratio is None:
            del out[k]
        else:
            cap = rel.get(key)
            out[k] = min(v / ratio, cap) if cap else v / ratio
    return out
