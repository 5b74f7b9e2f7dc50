"""HardwareSpec: one accelerator (per device numbers) and its cost-model parameters.

The YAML layout of hw_profiles/*.yaml and the loader live here; every number in a profile carries
its source in a comment there; docs/catalog.md describes the layout.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servesim.specs.catalogs import (  # noqa: F401  (re-exported: the loaders' callers import them from here)
    _KINDS,
    _PACKAGE,
    catalog_ids,
    data_dir,
    looks_like_path,
    normalise_name,
    resolve_catalog,
)
from servesim.specs.common import (
    SpecError,
    check_keys,
    get_choice,
    get_number,
    get_str,
    load_yaml,
    require_mapping,
)
from servesim.specs.efficiency import (  # the registry, re-exported here
    EFFICIENCY_DEFAULTS,
    EFFICIENCY_DTYPES,
    GENERATIONS,
    efficiency_range,
)
from servesim.specs.silicon import PACKAGING, YIELD_MODELS

MAX_HW_NUMBER = 1e9  # bound on any profile number (GB, GB/s, W, TFLOP/s, USD), docs/reliability.md


@dataclass(frozen=True, slots=True)
class MemoryTier:
    name: str
    capacity_GB: float
    bandwidth_GBps: float


@dataclass(frozen=True, slots=True)
class HardwareSpec:
    name: str
    display_name: str
    vendor: str
    tflops: tuple[tuple[str, float | None], ...]  # dense peak TFLOP/s per dtype
    memory_GB: float
    memory_bw_GBps: float
    scaleup_devices: int
    scaleup_bw_GBps: float
    scaleup_latency_us: float
    scaleout_bw_GBps: float
    scaleout_latency_us: float
    devices_per_node: int
    tdp_W: float
    idle_W: float
    host_W_per_node: float
    overhead_s: float
    price_hour_usd: float | None = None
    purchase_usd: float | None = None
    efficiency: tuple[tuple[str, float], ...] = ()
    power_model: tuple[tuple[str, float], ...] = ()  # energy-model parameters (servesim/energy.py)
    memory_tiers: tuple[MemoryTier, ...] = ()
    aliases: tuple[str, ...] = ()
    fitted: str = ""
    source: str = ""
    # SMs (NVIDIA) / CUs (AMD) per device, the units GEMM tiles are spread over; None where the
    # device has no such unit (TPU, Gaudi MME, dataflow chips). Catalog data only for now: the
    # roofline reads the `compute_units` efficiency key.
    compute_units: int | None = None
    memory_type: str = ""  # e.g. HBM3, SRAM
    scaleup_name: str = ""  # e.g. NVLink 4 (NVSwitch)
    scaleout_name: str = ""  # e.g. ConnectX-7 400G InfiniBand
    # Bottom-up cost and power inputs (die:, clock:, packaging:, system: and the optional extra keys
    # of memory:, power:, price:) as sorted (dotted key, value) pairs; servesim/accounting/hwcost.py reads them.
    bottom_up: tuple[tuple[str, Any], ...] = ()
    # A device derived from another (`base:`): the base's id, the overrides (canonical JSON) and
    # every number derived from them as (field, how); all empty for a catalog profile.
    base: str = ""
    overrides: str = ""
    derived: tuple[tuple[str, str], ...] = ()
    # Calibration (servesim/cost/aic.py, fitted.py): the chip generation efficiencies transfer
    # by, per-engine efficiency overlays, and per op family (lo, hi) multipliers of the 80%
    # prediction band (10th/90th percentile of measured/predicted on held-out rows).
    generation: str = ""
    engines: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()
    intervals: tuple[tuple[str, float, float], ...] = ()

    def peak_flops(self, dtype: str) -> float:
        """Dense peak FLOP/s in ``dtype``; falls back to the next wider supported format."""
        table = dict(self.tflops)
        for candidate in _WIDER.get(dtype, (dtype,)):
            value = table.get(candidate)
            if value:
                return value * 1e12
        raise SpecError(
            self.name, "tflops", dtype, "no compute throughput for this dtype on this device"
        )

    def bu(self, key: str, default: Any = None) -> Any:
        """A bottom-up input by dotted key (``die.area_mm2``), or ``default``."""
        for k, v in self.bottom_up:
            if k == key:
                return v
        return default

    def eff(self, key: str) -> float:
        for k, v in self.efficiency:
            if k == key:
                return v
        if "@" in key:  # a per-format key not fitted: the format-independent value
            return self.eff(key.partition("@")[0])
        return EFFICIENCY_DEFAULTS[key][0]

    def for_engine(self, engine: str | None) -> HardwareSpec:
        """This spec with the ``engines:`` overlay of ``engine`` (``vllm``, ``vllm@0.24``,
        ``sglang+tbo``: the version is ignored; ``+deepep`` drops the overlay's fused-MoE keys of
        SGLang and vLLM) merged into its efficiencies; itself when there is none."""
        if not engine:
            return self
        from servesim.specs.engines import engine_overlay, fused_efficiency  # no hardware import

        name, *rest = re.split(r"[@+]", str(engine))
        overlay = engine_overlay(name, rest, dict(self.engines).get(name) or {})
        defaults = {k: d for k, (d, _) in EFFICIENCY_DEFAULTS.items()}
        overlay |= fused_efficiency(name, defaults | dict(self.efficiency) | overlay)
        if not overlay:
            return self
        merged = dict(self.efficiency) | overlay
        return dataclasses.replace(self, efficiency=tuple(sorted(merged.items())))

    @property
    def memory_bytes(self) -> float:
        return self.memory_GB * 1e9

    @property
    def memory_bw(self) -> float:
        return self.memory_bw_GBps * 1e9


# A dtype without its own tensor-core path runs in the next wider one (fp4 on Hopper runs as fp8).
_WIDER: dict[str, tuple[str, ...]] = {
    "fp4": ("fp4", "fp8", "bf16"),
    "int4": ("int4", "int8", "fp8", "bf16"),
    "fp8": ("fp8", "bf16"),
    "int8": ("int8", "fp8", "bf16"),
    "bf16": ("bf16", "fp16"),
    "fp16": ("fp16", "bf16"),
    "fp32": ("fp32",),
    "tf32": ("tf32", "fp32"),
}


# ------------------------------------------------------------------------------------- loading
#
# Layout of hw_profiles/*.yaml (docs/catalog.md has the long form). Every key is checked: an
# unknown key is an error, so a typo never silently becomes a default.
_TOP_KEYS = (
    "name", "display_name", "vendor", "aliases", "source", "compute", "memory",
    "interconnect", "power", "price", "overhead_s", "efficiency", "fitted",
    "die", "clock", "packaging", "system",
    "generation", "engines", "intervals",
)  # fmt: skip
# The optional bottom-up sections and keys: (section, key) -> (kind, minimum, maximum); kind "num"
# (exclusive minimum), "num0" (inclusive), "int", "str" or a tuple of allowed strings.
_BU_KEYS: dict[tuple[str, str], tuple[Any, float | None, float | None]] = {
    ("die", "area_mm2"): ("num", 0.0, None),
    ("die", "count"): ("int", 1, None),
    ("die", "node"): ("str", None, None),
    ("die", "defect_density_per_cm2"): ("num0", 0.0, None),
    ("die", "yield_model"): (YIELD_MODELS, None, None),
    ("die", "yield"): ("num", 0.0, 1.0),
    ("die", "wafer_usd"): ("num", 0.0, None),
    ("die", "harvest_fraction"): ("num0", 0.0, 0.95),
    ("die", "sram_mm2_per_MB"): ("num", 0.0, None),
    ("die", "io_area_mm2"): ("num", 0.0, None),
    ("die", "io_node"): ("str", None, None),
    ("die", "io_count"): ("int", 1, None),
    ("clock", "frequency_GHz"): ("num", 0.0, None),
    ("clock", "voltage_V"): ("num", 0.0, 2.0),
    ("memory", "stacks"): ("int", 1, None),
    ("power", "static_fraction"): ("num0", 0.0, 0.95),
    ("power", "memory_pJ_per_bit"): ("num0", 0.0, None),
    ("price", "gross_margin"): ("num0", 0.0, 0.99),
    ("packaging", "type"): (tuple(PACKAGING), None, None),
    ("packaging", "usd"): ("num0", 0.0, None),
    ("packaging", "test_usd"): ("num0", 0.0, None),
    ("packaging", "assembly_yield"): ("num", 0.0, 1.0),
    ("system", "board_usd"): ("num0", 0.0, None),
    ("system", "server_usd_per_node"): ("num0", 0.0, None),
    ("system", "network_usd_per_device"): ("num0", 0.0, None),
    ("system", "rack_usd_per_node"): ("num0", 0.0, None),
}


def _bu_allowed(section: str) -> tuple[str, ...]:
    return tuple(k for s, k in _BU_KEYS if s == section)


_VENDORS = ("nvidia", "amd", "intel", "google", "groq", "sambanova", "cerebras", "other")
_TFLOPS_DTYPES = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp6", "fp4", "int4")


def load_hardware(
    name_or_path: str | Path | Mapping[str, Any], where: str | None = None
) -> HardwareSpec:
    """A hardware profile by catalog id (``h100-sxm``), alias (``H100``), YAML path, or a mapping
    deriving a device from another (``{base: h100-sxm, memory: {bandwidth_GBps: 6700}}``).

    Unknown names and bad profiles raise SpecError. Loaded once per file (memoised by resolved
    path and modification time). A file with a ``base:`` key is a derived device.
    """
    if isinstance(name_or_path, Mapping):
        return derive_hardware(name_or_path, where=where or "<hardware>")
    path = resolve_catalog("hardware", name_or_path, where)
    return _load_cached(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=128)
def _load_cached(path: str, mtime_ns: int) -> HardwareSpec:
    data = require_mapping(load_yaml(path), path, "")
    if "base" in data:
        return derive_hardware(data, where=path)
    return parse_hardware(data, path)


def derive_hardware(
    mapping: Mapping[str, Any], *, base: str | Path | None = None, where: str = "<hardware>"
) -> HardwareSpec:
    """A device from a few numbers: ``base`` (or the mapping's ``base:`` key) plus the fields that
    change, the rest derived (servesim.specs.derive has the rules); without a base, a full
    profile whose every missing field is named in one error. ``derivation(hw)`` prints how."""
    from servesim.specs.derive import derive

    return derive(
        mapping,
        base=base,
        where=where,
        parse_hardware=parse_hardware,
        load_hardware=load_hardware,
        resolve=resolve_catalog,
    )


def profile_comments(ref: str | Path, where: str = "") -> dict[str, str]:
    """The source comment of every line of a profile file, by dotted key (servesim.specs.derive)."""
    from servesim.specs.derive import profile_comments as comments

    return comments(ref, where, resolve=resolve_catalog)


def parse_hardware(data: Mapping[str, Any], where: str) -> HardwareSpec:
    """Validate one profile mapping (the YAML layout above) into a HardwareSpec."""
    check_keys(data, _TOP_KEYS, where, "")
    vendor = get_choice(data, "vendor", _VENDORS, where)
    compute = _section(data, "compute", where, ("tflops", "compute_units"))
    memory = _section(
        data, "memory", where, ("type", "capacity_GB", "bandwidth_GBps", "tiers", "stacks")
    )
    link = _section(data, "interconnect", where, ("scaleup", "scaleout", "devices_per_node"))
    up = _section(
        link, "scaleup", where, ("name", "devices", "bandwidth_GBps", "latency_us"), "interconnect"
    )
    out = _section(
        link, "scaleout", where, ("name", "bandwidth_GBps", "latency_us"), "interconnect"
    )
    power = _section(
        data,
        "power",
        where,
        ("tdp_W", "idle_W", "host_W_per_node", "model", "static_fraction", "memory_pJ_per_bit"),
    )
    price = _section(data, "price", where, ("hour_usd", "purchase_usd", "gross_margin"))
    # the upper bound keeps every product finite (1e30 GB overflows the KV block count); the
    # largest datasheet number in hw_profiles/ is about 2e7 (a wafer's GB/s)
    pos = {"minimum": 0.0, "exclusive_min": True, "maximum": MAX_HW_NUMBER}
    tdp = get_number(power, "tdp_W", where, "power", **pos)
    idle = get_number(power, "idle_W", where, "power", **pos)
    if idle > tdp:
        raise SpecError(where, "power.idle_W", idle, f"must not exceed power.tdp_W ({tdp:g})")
    return HardwareSpec(
        name=get_str(data, "name", where),
        display_name=get_str(data, "display_name", where),
        vendor=vendor,
        tflops=_parse_tflops(compute, where),
        compute_units=_parse_compute_units(compute, where),
        memory_GB=get_number(memory, "capacity_GB", where, "memory", **pos),
        memory_bw_GBps=get_number(memory, "bandwidth_GBps", where, "memory", **pos),
        scaleup_devices=get_number(
            up, "devices", where, "interconnect.scaleup", minimum=1, integer=True
        ),
        scaleup_bw_GBps=get_number(up, "bandwidth_GBps", where, "interconnect.scaleup", **pos),
        scaleup_latency_us=get_number(up, "latency_us", where, "interconnect.scaleup", minimum=0.0),
        scaleout_bw_GBps=get_number(out, "bandwidth_GBps", where, "interconnect.scaleout", **pos),
        scaleout_latency_us=get_number(
            out, "latency_us", where, "interconnect.scaleout", minimum=0.0
        ),
        devices_per_node=get_number(
            link, "devices_per_node", where, "interconnect", minimum=1, integer=True
        ),
        tdp_W=tdp,
        idle_W=idle,
        host_W_per_node=get_number(power, "host_W_per_node", where, "power", minimum=0.0),
        overhead_s=get_number(data, "overhead_s", where, minimum=0.0, maximum=1.0),
        price_hour_usd=get_number(price, "hour_usd", where, "price", allow_none=True, **pos),
        purchase_usd=get_number(price, "purchase_usd", where, "price", allow_none=True, **pos),
        efficiency=_parse_efficiency(data.get("efficiency"), where),
        power_model=_parse_number_map(power.get("model"), where, "power.model"),
        memory_tiers=_parse_tiers(memory.get("tiers"), where),
        aliases=_parse_aliases(data.get("aliases"), where),
        fitted=_optional_text(data, "fitted", where),
        source=get_str(data, "source", where),
        memory_type=_optional_text(memory, "type", where, "memory"),
        scaleup_name=_optional_text(up, "name", where, "interconnect.scaleup"),
        scaleout_name=_optional_text(out, "name", where, "interconnect.scaleout"),
        bottom_up=_parse_bottom_up(data, where),
        **_parse_calibration(data, where),
    )


def _parse_bottom_up(data: Mapping[str, Any], where: str) -> tuple[tuple[str, Any], ...]:
    """The optional bottom-up inputs, checked (positive areas, yields in (0, 1], ...)."""
    out: list[tuple[str, Any]] = []
    for section in ("die", "clock", "packaging", "system"):
        if data.get(section) is not None:
            check_keys(require_mapping(data[section], where, section), _bu_allowed(section), where,
                       section)  # fmt: skip
    for (section, key), (kind, lo, hi) in _BU_KEYS.items():
        block = data.get(section)
        if not isinstance(block, Mapping) or block.get(key) is None:
            continue
        if kind == "str":
            value: Any = get_str(block, key, where, section)
        elif isinstance(kind, tuple):
            value = get_choice(block, key, kind, where, section)
        else:
            value = get_number(block, key, where, section, minimum=lo, maximum=hi,
                               exclusive_min=kind == "num", integer=kind == "int")  # fmt: skip
        out.append((f"{section}.{key}", value))
    return tuple(sorted(out))


def _parse_calibration(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The optional `generation`, `engines: {engine: {key: value}}` and
    `intervals: {family: [lo, hi]}` sections written by `servesim calibrate`."""
    out: dict[str, Any] = {}
    if data.get("generation") is not None:
        out["generation"] = get_choice(data, "generation", GENERATIONS, where)
    engines = require_mapping(data.get("engines") or {}, where, "engines")
    out["engines"] = tuple(
        (str(name), _parse_efficiency(engines[name], where, f"engines.{name}"))
        for name in sorted(engines, key=str)
    )
    bands = require_mapping(data.get("intervals") or {}, where, "intervals")
    parsed = []
    for family in sorted(bands, key=str):
        pair = bands[family]
        ok = isinstance(pair, (list, tuple)) and len(pair) == 2
        if (
            not ok
            or not all(isinstance(v, (int, float)) and v > 0 for v in pair)
            or pair[0] > pair[1]
        ):
            raise SpecError(
                where, f"intervals.{family}", pair, "must be [lo, hi] with 0 < lo <= hi"
            )
        parsed.append((str(family), float(pair[0]), float(pair[1])))
    out["intervals"] = tuple(parsed)
    return out


def _section(
    data: Mapping[str, Any], key: str, where: str, allowed: tuple[str, ...], prefix: str = ""
) -> Mapping[str, Any]:
    field = f"{prefix}.{key}" if prefix else key
    if key not in data:
        raise SpecError(where, field, "<missing>", "required section: " + ", ".join(allowed))
    section = require_mapping(data[key], where, field)
    check_keys(section, allowed, where, field)
    return section


def _parse_tflops(compute: Mapping[str, Any], where: str) -> tuple[tuple[str, float | None], ...]:
    if "tflops" not in compute:
        raise SpecError(
            where, "compute.tflops", "<missing>", "required: dense peak TFLOP/s per dtype"
        )
    table = require_mapping(compute["tflops"], where, "compute.tflops")
    check_keys(table, _TFLOPS_DTYPES, where, "compute.tflops")
    out = []
    for dtype in _TFLOPS_DTYPES:
        if dtype in table:
            value = get_number(
                table,
                dtype,
                where,
                "compute.tflops",
                allow_none=True,
                minimum=0.0,
                exclusive_min=True,
                maximum=MAX_HW_NUMBER,
            )
            out.append((dtype, value))
    if not any(v for d, v in out if d in ("bf16", "fp16", "fp8", "int8")):
        raise SpecError(
            where, "compute.tflops", dict(table), "needs a bf16, fp16, fp8 or int8 peak"
        )
    return tuple(out)


def _parse_compute_units(compute: Mapping[str, Any], where: str) -> int | None:
    """SMs / CUs per device: a positive integer, or null (absent) where no such unit exists."""
    if compute.get("compute_units") is None:
        return None
    return get_number(compute, "compute_units", where, "compute", minimum=1, integer=True)


def _parse_efficiency(
    data: Any, where: str, field: str = "efficiency"
) -> tuple[tuple[str, float], ...]:
    values = _parse_number_map(data, where, field)
    for key, value in values:
        base, at, dtype = key.partition("@")
        if base not in EFFICIENCY_DEFAULTS:
            allowed = ", ".join(EFFICIENCY_DEFAULTS)
            raise SpecError(where, f"{field}.{key}", key, f"unknown key; allowed: {allowed}")
        if at and dtype not in EFFICIENCY_DTYPES:
            allowed = ", ".join(EFFICIENCY_DTYPES)
            raise SpecError(where, f"{field}.{key}", dtype, f"unknown format; allowed: {allowed}")
        lo, hi, open_lo = efficiency_range(base)
        if value > hi or (value <= lo if open_lo else value < lo):
            raise SpecError(
                where,
                f"{field}.{key}",
                value,
                f"must be {'>' if open_lo else '>='} {lo:g} and <= {hi:g} "
                f"({EFFICIENCY_DEFAULTS[base][1]})",
            )
    return values


def _parse_number_map(data: Any, where: str, field: str) -> tuple[tuple[str, float], ...]:
    """A flat mapping name -> positive finite number, as a sorted tuple of pairs (hashable)."""
    if data is None:
        return ()
    data = require_mapping(data, where, field)
    pairs = []
    for key in sorted(data, key=str):
        pairs.append(
            (str(key), get_number(data, key, where, field, minimum=0.0, maximum=MAX_HW_NUMBER))
        )
    return tuple(pairs)


def _parse_tiers(data: Any, where: str) -> tuple[MemoryTier, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise SpecError(
            where, "memory.tiers", data, "must be a list of {name, capacity_GB, bandwidth_GBps}"
        )
    tiers = []
    for i, item in enumerate(data):
        field = f"memory.tiers.{i}"
        item = require_mapping(item, where, field)
        check_keys(item, ("name", "capacity_GB", "bandwidth_GBps"), where, field)
        tiers.append(
            MemoryTier(
                name=get_str(item, "name", where, field),
                capacity_GB=get_number(
                    item,
                    "capacity_GB",
                    where,
                    field,
                    minimum=0.0,
                    exclusive_min=True,
                    maximum=MAX_HW_NUMBER,
                ),
                bandwidth_GBps=get_number(
                    item,
                    "bandwidth_GBps",
                    where,
                    field,
                    minimum=0.0,
                    exclusive_min=True,
                    maximum=MAX_HW_NUMBER,
                ),
            )
        )
    return tuple(tiers)


def _parse_aliases(data: Any, where: str) -> tuple[str, ...]:
    if data is None:
        return ()
    if not isinstance(data, list) or not all(isinstance(a, str) and a for a in data):
        raise SpecError(where, "aliases", data, "must be a list of names")
    return tuple(data)


def _optional_text(data: Mapping[str, Any], key: str, where: str, prefix: str = "") -> str:
    value = data.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        field = f"{prefix}.{key}" if prefix else key
        raise SpecError(where, field, value, "must be a string")
    return value
