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
from servesim.specs.silicon import PACKAGING, YIELD_MODELS

MAX_HW_NUMBER = 1e9  # bound on any profile number (GB, GB/s, W, TFLOP/s, USD), docs/reliability.md

# Every efficiency parameter of the cost model, with the default used when a profile does not set
# it, and what it means. The cost model (servesim/cost/roofline.py) owns the meaning.
EFFICIENCY_DEFAULTS: dict[str, tuple[float, str]] = {
    # GEMMs: time = smooth_max(compute, memory) + launch; compute carries tile/wave quantisation.
    "gemm_compute": (0.75, "fraction of dense peak FLOP/s a large GEMM reaches"),
    "gemm_memory": (0.80, "fraction of memory bandwidth a weight-streaming GEMM reaches"),
    "gemm_overlap": (1.5, "p of the smooth max (c^p + m^p)^(1/p) of compute, memory time"),
    "gemm_overlap_s": (1e-4, "GEMM duration over which that p grows by 1 (overlap improves)"),
    "gemm_launch_s": (5e-6, "fixed cost per GEMM kernel (launch, prologue, tail)"),
    # Tile model strengths: about the A100 fit (H100's: 0.82, 0.15); used once compute_units is set.
    "gemm_wave": (0.35, "exponent (0..1) of waves of whole GEMM tiles; 0 = no tile model"),
    "gemm_fill_wave": (0.18, "exponent (0..1) of idle units of a GEMM grid under one wave"),
    # Fitted 2.6e-10 (A100), 4.1e-10 (H100); 0 by default: unfitted, gemm_memory alone holds better.
    "gemm_k_s": (0.0, "seconds per element of K on the memory side (serial K loop of a block)"),
    "compute_units": (0.0, "SMs / compute units per device; 0 = unknown (no waves)"),
    # Attention kernels (FlashAttention-style).
    # FlashAttention-2 forward reaches 50-73% of A100 peak (Dao 2023, arXiv 2307.08691).
    "attn_compute": (0.60, "fraction of dense peak FLOP/s attention over context reaches"),
    "attn_causal": (0.50, "fraction of peak FLOP/s of the causal new x new part of prefill"),
    "attn_memory": (0.70, "fraction of memory bandwidth streaming the KV cache reaches"),
    "attn_overlap": (2.0, "exponent p of the smooth max of attention compute and memory time"),
    "attn_launch_s": (5e-6, "fixed cost per decode attention kernel"),
    "attn_prefill_launch_s": (5e-6, "fixed cost per prefill attention kernel"),
    "attn_row_keys": (64.0, "per query row prefill work independent of context, in key positions"),
    "attn_seq_s": (2e-7, "cost per sequence in an attention kernel (block tables, split-KV merge)"),
    "attn_wave": (0.5, "exponent (0..1) of decode split-KV block waves; 0 = no block model"),
    "attn_split_s": (5e-6, "fixed cost of the combining kernel when decode splits the keys"),
    # Element-wise kernels (norms, activations, residual adds, rotary, embedding gather).
    "elementwise_memory": (0.60, "fraction of memory bandwidth norms/activations reach"),
    "kernel_launch_s": (4e-6, "fixed cost per element-wise kernel (launch + tail)"),
    # Collectives (NCCL-style ring / tree).
    "comm_scaleup": (0.75, "fraction of scale-up link bandwidth collectives reach"),
    "comm_scaleout": (0.70, "fraction of scale-out NIC bandwidth collectives reach"),
    "comm_launch_s": (1e-5, "fixed cost per collective or send (launch, synchronisation)"),
    # Inside a CUDA graph the host launch is not paid: vidur's H100 NCCL profile (commit 7d47513)
    # measures 7-11 us for a 2-26 KB all-reduce on 2 GPUs in all (wire latency included), while
    # eager 4- and 8-GPU calls of the same sizes take 30-40 us, mostly host-side launch.
    "comm_graph_launch_s": (2e-6, "fixed cost per collective inside an engine step (CUDA graph)"),
    # NCCL in one domain: a ring of 2(n-1) hops (aiconfigurator H100: 6/9.5/15.6 us at 2/4/8 GPUs)
    "comm_hop_s": (0.0, "per-hop latency of an NCCL ring inside a scale-up domain; 0 = datasheet"),
    # Engines' custom all-reduce, min(one-shot, two-shot) (cost.comm); 0 = the engine's constants
    "car_base_s": (0.0, "custom all-reduce: fixed cost per call in a CUDA graph (flag sync)"),
    "car_peer_s": (0.0, "custom all-reduce: cost per peer device (flags, one-shot reads)"),
    "car_scaleup": (0.0, "custom all-reduce: fraction of scale-up bandwidth; 0 = engine's"),
    "car_eager_s": (0.0, "custom all-reduce: host cost of an eager (not graph) call"),
    "p2p_scaleup": (0.75, "fraction of scale-up link bandwidth a point-to-point send reaches"),
    "p2p_scaleout": (0.70, "fraction of scale-out NIC bandwidth a point-to-point send reaches"),
    "p2p_launch_s": (5e-6, "fixed cost per point-to-point send (launch, handshake)"),
    # MoE grouped GEMMs (roofline.grouped_gemm_time); 0 = off until fitted on grouped-GEMM data
    "moe_rows_half": (0.0, "rows per expert at which a grouped GEMM runs at half efficiency"),
    "moe_expert_s": (0.0, "fixed cost per active expert of a grouped GEMM"),
    # vLLM/SGLang fused MoE sum every token x top-k whatever the EP (roofline.moe_other_rows_time)
    "moe_token_passes": (0.0, "16-bit passes over other EP ranks' routed rows; 0 = none"),
    # Low-precision GEMMs quantise their 16-bit activation in a kernel of their own first
    # (dynamic per-tensor/per-token/per-group scales): 0 = not charged (e.g. fused into the norm).
    "gemm_quant_memory": (
        0.0,
        "fraction of bandwidth of the activation-quantisation pass; 0 = none",
    ),
    "gemm_quant_launch_s": (0.0, "fixed cost of the activation-quantisation kernel"),
    # MoE grouped GEMMs (fused MoE kernels: routing, permute, grouped GEMMs, combine); 0 = the
    # dense GEMM's value. Fitted on aiconfigurator's fused-MoE timings (servesim/cost/aic.py).
    "moe_compute": (0.0, "fraction of peak FLOP/s a grouped MoE GEMM reaches; 0 = gemm_compute"),
    "moe_memory": (0.0, "fraction of bandwidth a grouped MoE GEMM reaches; 0 = gemm_memory"),
    "moe_launch_s": (0.0, "fixed cost per grouped GEMM incl. routing/permute; 0 = gemm_launch_s"),
}
# Efficiency keys may be fitted per compute format: `gemm_compute@fp8` is used for fp8 GEMMs and
# `gemm_compute` for the others (servesim.cost.roofline.by_dtype).
EFFICIENCY_DTYPES = ("bf16", "fp16", "fp8", "fp8_block", "fp4", "int8", "int4")
GENERATIONS = ("ampere", "ada", "hopper", "blackwell", "other")


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
        ``sglang+tbo``: version and options are ignored) merged into its efficiencies; itself when there is none."""
        if not engine:
            return self
        from servesim.specs.engines import fused_efficiency  # engines.py imports no hardware

        name = re.split(r"[@+]", str(engine))[0]
        overlay = dict(dict(self.engines).get(name) or {})
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


# Documented range of each kind of efficiency parameter (docs/reliability.md): (low, high, low
# excluded). Wider than calibrate's fit bounds, so any fitted profile passes; outside them the
# cost model divides by zero or prices 20 requests in kilowatt-hours.
_EFF_RANGES: tuple[tuple[str, tuple[float, float, bool]], ...] = (
    ("compute_units", (0.0, 1e6, False)),  # SMs / CUs; 0 = unknown
    ("_half", (0.0, 1e6, False)),  # rows at which a kernel runs at half efficiency; 0 = off
    # fractions whose 0 means "not modelled" or "as the dense GEMM" (grouped MoE GEMMs, the
    # activation-quantisation pass)
    ("moe_compute", (0.0, 1.0, False)),
    ("moe_memory", (0.0, 1.0, False)),
    ("quant_memory", (0.0, 1.0, False)),
    ("car_scaleup", (0.0, 2.0, False)),  # NVLS (in-switch reduction) beats the link rate
    ("_row_keys", (0.0, 1e6, False)),  # key positions
    ("_passes", (0.0, 100.0, False)),  # passes over a buffer; 0 = none
    ("_k_s", (0.0, 1e-6, False)),  # seconds per element of K
    ("_overlap_s", (0.0, 1.0, True)),  # a duration the overlap p grows over
    ("_s", (0.0, 1.0, False)),  # fixed costs: seconds per kernel or call
    ("_overlap", (1.0, 20.0, False)),  # p of a smooth max: 1 = sum, large = max
    ("_wave", (0.0, 1.0, False)),  # exponents; 0 = no tile/block model
    ("", (0.0, 1.0, True)),  # fractions of a peak
)


def efficiency_range(key: str) -> tuple[float, float, bool]:
    """(low, high, low excluded) allowed for an efficiency parameter."""
    return next(r for suffix, r in _EFF_RANGES if key.endswith(suffix))


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
