"""Bottom-up cost and power of an accelerator: where its dollars and watts come from.

    good-die cost = wafer_usd / (dies per wafer x yield(area x (1 - harvest), D0))
    chip cost     = (dies + I/O dies + memory + packaging + test) / assembly yield
    device price  = (chip cost + board) / (1 - vendor gross margin)
    TCO           = (device price + server, rack and network shares) over the lifetime
                    + energy at the operating point x PUE x $/kWh + maintenance (+ hosting)
    power         = static (leakage, ~V) + dynamic (units x V^2 x f) + memory (bandwidth x pJ/bit)

Inputs come from the profile's `die:`, `clock:`, `packaging:`, `system:` sections and extra keys
of `memory:` (stacks), `power:` (static_fraction, memory_pJ_per_bit) and `price:` (gross_margin);
anything not given comes from servesim/specs/silicon.py, whose every number is sourced or marked
an estimate. Each line of ``bottom_up(hw)`` says which. docs/energy-and-cost.md compares the result
with reported prices and published bills of materials.
"""

from __future__ import annotations

import math
from typing import Any

from servesim.specs.common import SpecError
from servesim.specs.cost import HOURS_PER_MONTH, HOURS_PER_YEAR, CostSpec
from servesim.specs.silicon import (
    DEFAULT_MARGIN,
    DEFAULT_STATIC_FRACTION,
    DEFAULT_TEST_USD,
    HBM,
    HBM_STACK_MM2,
    NETWORK_USD_PER_GBPS,
    NODES,
    OTHER_MEMORY,
    PACKAGING,
    RACK_USD_PER_NODE,
    SERVER_USD_PER_DEVICE,
    VENDOR_MARGIN,
    WAFER_DIAMETER_MM,
    memory_kind,
    memory_pj_per_bit,
    power_parts,
)

PROFILE = "profile"  # the source of an input set in the hardware profile (its comment cites it)


# ------------------------------------------------------------------------- silicon arithmetic


def dies_per_wafer(area_mm2: float, diameter_mm: float = WAFER_DIAMETER_MM) -> float:
    """Gross dies on a round wafer: pi r^2 / A - pi d / sqrt(2 A) (the usual edge-loss formula);
    a wafer-scale part (area over half the wafer) is one per wafer."""
    if area_mm2 <= 0:
        raise SpecError("hwcost", "die.area_mm2", area_mm2, "must be > 0")
    wafer = math.pi * (diameter_mm / 2.0) ** 2
    if area_mm2 > wafer:
        raise SpecError(
            "hwcost", "die.area_mm2", area_mm2, f"larger than a {diameter_mm:g} mm wafer"
        )
    gross = wafer / area_mm2 - math.pi * diameter_mm / math.sqrt(2.0 * area_mm2)
    return gross if gross >= 1.0 else 1.0


def die_yield(
    area_mm2: float, d0_per_cm2: float, model: str = "murphy", alpha: float = 3.0
) -> float:
    """Fraction of good dies for a critical area and defect density (defects per cm^2)."""
    ad = area_mm2 / 100.0 * d0_per_cm2
    if ad <= 0:
        return 1.0
    if model == "poisson":
        return math.exp(-ad)
    if model == "murphy":
        return ((1.0 - math.exp(-ad)) / ad) ** 2
    if model == "seeds":
        return 1.0 / (1.0 + ad)
    if model == "negative_binomial":
        return (1.0 + ad / alpha) ** -alpha
    raise SpecError("hwcost", "die.yield_model", model, "one of murphy, poisson, seeds, negative_binomial")  # fmt: skip


def good_die_usd(area_mm2: float, wafer_usd: float, d0: float, model: str = "murphy",
                 harvest: float = 0.0, fixed_yield: float | None = None) -> float:  # fmt: skip
    """Cost of one good die: wafer price over dies per wafer x yield (harvest: share of the area
    whose defects spare units absorb)."""
    y = fixed_yield if fixed_yield is not None else die_yield(area_mm2 * (1.0 - harvest), d0, model)
    return wafer_usd / (dies_per_wafer(area_mm2) * y)


# ------------------------------------------------------------------------------- the breakdown


class _Lines:
    """Ordered (key -> value, source) lines; the sources say profile, table entry or estimate."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.sources: dict[str, str] = {}

    def add(self, key: str, value: Any, source: str = "derived") -> Any:
        self.values[key] = value
        self.sources[key] = source
        return value


def _input(hw: Any, lines: _Lines, key: str, default: tuple[Any, str] | None, shown: str | None = None) -> Any:  # fmt: skip
    value = hw.bu(key)
    if value is not None:
        return lines.add(shown or key, value, PROFILE)
    if default is None:
        return None
    return lines.add(shown or key, default[0], default[1])


def check_inputs(hw: Any) -> None:
    """Every input the bottom-up cost cannot do without, all named in one error."""
    missing = [k for k in ("die.area_mm2", "die.node") if hw.bu(k) is None]
    kind = memory_kind(hw.memory_type)
    if kind in HBM and hw.bu("memory.stacks") is None:
        missing.append("memory.stacks")
    if not kind:
        missing.append(f"memory.type (known: HBM2/2e/3/3e/4, GDDR6/7, LPDDR5, SRAM; got {hw.memory_type or 'none'!r})")  # fmt: skip
    node = hw.bu("die.node")
    if node is not None and node not in NODES:
        for k in ("die.wafer_usd", "die.defect_density_per_cm2"):
            if hw.bu(k) is None:
                missing.append(f"{k} (node {node!r} is not in the table: {', '.join(NODES)})")
    if hw.bu("die.io_area_mm2") is not None and hw.bu("die.io_node") is None:
        missing.append("die.io_node")
    if missing:
        raise SpecError(hw.name, "bottom-up", "inputs", "missing " + "; ".join(missing))


def _dies(hw: Any, L: _Lines, prefix: str, node: str, area: float, count: int) -> float:
    n = NODES.get(node)
    wafer = _input(hw, L, "die.wafer_usd", (n.wafer_usd, n.source) if n else None, f"{prefix}.wafer_usd")  # fmt: skip
    d0 = _input(hw, L, "die.defect_density_per_cm2", (n.defect_density_per_cm2, n.source) if n else None, f"{prefix}.defect_density_per_cm2")  # fmt: skip
    model = _input(hw, L, "die.yield_model", ("murphy", "default yield model"), f"{prefix}.yield_model")  # fmt: skip
    harvest = _input(hw, L, "die.harvest_fraction", (0.0, "no spare units assumed"), f"{prefix}.harvest_fraction") if prefix == "die" else 0.0  # fmt: skip
    fixed = hw.bu("die.yield") if prefix == "die" else None
    L.add(f"{prefix}.dies_per_wafer", dies_per_wafer(area))
    y = fixed if fixed is not None else die_yield(area * (1.0 - harvest), d0, model)
    L.add(f"{prefix}.yield", y, PROFILE if fixed is not None else f"{model}, critical area {area * (1 - harvest):.0f} mm2")  # fmt: skip
    usd = good_die_usd(area, wafer, d0, model, harvest, fixed)
    L.add(f"{prefix}.good_die_usd", usd)
    return L.add(f"{prefix}.cost_usd", usd * count, f"{count} x good die")


def _memory(hw: Any, L: _Lines) -> tuple[float, int]:
    kind = memory_kind(hw.memory_type)
    L.add("memory.type", hw.memory_type, PROFILE)
    L.add("memory.capacity_GB", hw.memory_GB, PROFILE)
    tiers = 0.0
    for t in hw.memory_tiers:
        tk = memory_kind(t.name) or ("ddr5" if "ddr" in t.name.lower() else "")
        if tk in OTHER_MEMORY or tk == "ddr5":
            per_gb, _, src = OTHER_MEMORY.get(tk, (3.5, 0.0, "estimate: DDR5 RDIMM ~$3.5/GB"))
            tiers += L.add(f"memory.tier.{t.name}.cost_usd", t.capacity_GB * per_gb, src)
    if kind in HBM:
        gen = HBM[kind]
        stacks = int(_input(hw, L, "memory.stacks", None))
        L.add("memory.usd_per_GB", gen.usd_per_GB, gen.source)
        L.add("memory.usd_per_stack", gen.usd_per_stack, "estimate: base die, TSV test and handling per stack")  # fmt: skip
        cost = hw.memory_GB * gen.usd_per_GB + stacks * gen.usd_per_stack
        return L.add("memory.cost_usd", cost + tiers, "capacity x $/GB + stacks x $/stack + tiers"), stacks  # fmt: skip
    per_gb, _, src = OTHER_MEMORY[kind]
    L.add("memory.usd_per_GB", per_gb, src)
    return L.add("memory.cost_usd", hw.memory_GB * per_gb + tiers, "capacity x $/GB + tiers"), 0


def chip_cost(hw: Any, L: _Lines | None = None) -> float:
    """Manufacturing cost of one device package (dies, memory, packaging, test, assembly loss)."""
    check_inputs(hw)
    L = L or _Lines()
    area, node = hw.bu("die.area_mm2"), hw.bu("die.node")
    count = int(_input(hw, L, "die.count", (1, "one die")))
    L.add("die.area_mm2", area, PROFILE)
    L.add("die.node", node, PROFILE)
    logic = _dies(hw, L, "die", node, area, count)
    io = 0.0
    io_area = hw.bu("die.io_area_mm2") or 0.0
    if io_area:
        io_count = int(_input(hw, L, "die.io_count", (1, "one I/O die")))
        L.add("io_die.area_mm2", io_area, PROFILE)
        io = _dies(hw, L, "io_die", hw.bu("die.io_node"), io_area, io_count)
        io_area *= io_count
    mem, stacks = _memory(hw, L)
    ptype = _input(hw, L, "packaging.type", ("cowos-s" if stacks else "organic", "default for the memory"))  # fmt: skip
    pk = PACKAGING[ptype]
    footprint = max(area * count, io_area) + stacks * HBM_STACK_MM2
    L.add("packaging.footprint_mm2", footprint, f"dies + {stacks} stacks x {HBM_STACK_MM2:g} mm2 (LLM SPICE HBM size)")  # fmt: skip
    pkg = _input(hw, L, "packaging.usd", (footprint * pk.usd_per_mm2, f"{pk.usd_per_mm2:g} $/mm2: {pk.source}"), "packaging.cost_usd")  # fmt: skip
    test = _input(hw, L, "packaging.test_usd", (DEFAULT_TEST_USD, "estimate: between Silicon Analysts' MI300X $600 and H100 $920"), "packaging.test_usd")  # fmt: skip
    ay = _input(hw, L, "packaging.assembly_yield", (pk.assembly_yield, pk.source))
    total = (logic + io + mem + pkg + test) / ay
    return L.add("chip.cost_usd", total, "(dies + memory + packaging + test) / assembly yield")


def device_price(hw: Any, L: _Lines | None = None) -> float:
    """Bottom-up selling price of one device: (chip + board) / (1 - vendor gross margin)."""
    L = L or _Lines()
    chip = chip_cost(hw, L)
    board = _input(hw, L, "system.board_usd", (0.0, "module included in test and assembly"))
    margin = _input(hw, L, "price.gross_margin", VENDOR_MARGIN.get(hw.vendor, DEFAULT_MARGIN))
    return L.add("price.device_usd", (chip + board) / (1.0 - margin), "(chip + board) / (1 - margin)")  # fmt: skip


def power(hw: Any, utilisation: float, L: _Lines | None = None) -> dict[str, float]:
    """TDP split (static, dynamic, memory) and the draw at an operating point (utilisation 0..1:
    static always, dynamic and memory in proportion; never below the profile's idle_W)."""
    L = L or _Lines()
    pj = hw.bu("power.memory_pJ_per_bit")
    pj_default = memory_pj_per_bit(hw.memory_type)
    pj = _input(hw, L, "power.memory_pJ_per_bit", (pj_default or 0.0, "memory table" if pj_default else "unknown memory: none"))  # fmt: skip
    sf = _input(hw, L, "power.static_fraction", DEFAULT_STATIC_FRACTION)
    parts = power_parts(hw.tdp_W, hw.memory_bw_GBps, pj, sf)
    L.add(
        "power.tdp_W", hw.tdp_W, PROFILE if not _derived(hw, "power.tdp_W") else "derived (V^2 f)"
    )
    for k in ("frequency_GHz", "voltage_V"):
        if hw.bu(f"clock.{k}") is not None:
            L.add(f"clock.{k}", hw.bu(f"clock.{k}"), "derived" if _derived(hw, f"clock.{k}") else PROFILE)  # fmt: skip
    L.add("power.static_W", parts.static_W, "static_fraction x (TDP - memory)")
    L.add("power.dynamic_W", parts.dynamic_W, "TDP - static - memory (scales with units x V^2 x f)")
    L.add("power.memory_W", parts.memory_W, "bandwidth x 8 bit x pJ/bit (at most half the TDP)")
    u = min(max(utilisation, 0.0), 1.0)
    op = max(parts.static_W + u * (parts.dynamic_W + parts.memory_W), hw.idle_W)
    L.add("power.utilisation", u, "cost.utilisation")
    L.add("power.operating_W", op, "static + utilisation x (dynamic + memory), at least idle_W")
    return {"static_W": parts.static_W, "dynamic_W": parts.dynamic_W, "memory_W": parts.memory_W, "operating_W": op}  # fmt: skip


def _derived(hw: Any, field: str) -> bool:
    return any(f == field for f, _ in hw.derived)


def bottom_up(hw: Any, spec: CostSpec | None = None, devices: int = 1) -> dict[str, Any]:
    """The whole breakdown: ``{"values": {key: value}, "sources": {key: source}}`` with chip cost,
    device price, power at the operating point and the TCO per device-hour and per hour of
    ``devices``. Raises SpecError naming every missing input."""
    spec = spec or CostSpec()
    L = _Lines()
    L.add("hardware", hw.name, PROFILE)
    price = device_price(hw, L)
    dpn = max(hw.devices_per_node, 1)
    server = _input(hw, L, "system.server_usd_per_node", (SERVER_USD_PER_DEVICE[0] * dpn, SERVER_USD_PER_DEVICE[1]))  # fmt: skip
    rack = _input(hw, L, "system.rack_usd_per_node", RACK_USD_PER_NODE)
    net = _input(hw, L, "system.network_usd_per_device", (hw.scaleout_bw_GBps * NETWORK_USD_PER_GBPS[0], f"{hw.scaleout_bw_GBps:g} GB/s x ${NETWORK_USD_PER_GBPS[0]:g}: {NETWORK_USD_PER_GBPS[1]}"))  # fmt: skip
    L.add("system.server_share_usd", server / dpn, f"per node / {dpn} devices")
    L.add("system.rack_share_usd", rack / dpn, f"per node / {dpn} devices")
    capex_usd = L.add("capex.per_device_usd", price + (server + rack) / dpn + net, "device + server, rack and network shares")  # fmt: skip
    hours = spec.lifetime_years * HOURS_PER_YEAR
    L.add("capex.lifetime_years", spec.lifetime_years, "cost.lifetime_years")
    p = power(hw, spec.utilisation, L)
    host_W = hw.host_W_per_node / dpn
    kwh = (p["operating_W"] + host_W) / 1000.0 * spec.pue
    per = {
        "capex": capex_usd / hours,
        "energy": kwh * spec.electricity_usd_per_kwh,
        "maintenance": price * spec.maintenance_fraction / HOURS_PER_YEAR,
        "hosting": (hw.tdp_W + host_W) / 1000.0 * spec.hosting_usd_per_kw_month / HOURS_PER_MONTH
        if spec.hosting_usd_per_kw_month is not None else 0.0,
    }  # fmt: skip
    L.add("tco.energy_kwh_per_device_hour", kwh, f"(operating + host share {host_W:.0f} W) x PUE {spec.pue:g}")  # fmt: skip
    for k, v in per.items():
        L.add(f"tco.{k}_usd_per_device_hour", v)
    total = sum(per.values())
    L.add("tco.total_usd_per_device_hour", total)
    L.add("tco.devices", devices)
    L.add("tco.total_usd_per_hour", total * devices)
    L.add("tco.monthly_usd", total * devices * HOURS_PER_MONTH)
    return {"values": L.values, "sources": L.sources}


def purchase_usd(hw: Any) -> float:
    """What costing uses for a device with no market price: the bottom-up device price."""
    return device_price(hw)


def purchase_or_none(hw: Any) -> float | None:
    """The bottom-up device price, or None when the profile lacks the inputs (costing's fallback
    for a device with no market price)."""
    try:
        return device_price(hw)
    except SpecError:
        return None


SOURCE = "bottom-up: device price from die, memory, packaging and margin (servesim show hardware NAME --bottom-up)"
