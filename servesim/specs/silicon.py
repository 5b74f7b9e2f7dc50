"""Reference tables of silicon economics: wafer prices and defect densities per process node, HBM
generations, packaging types and power-model defaults.

They are the defaults of the bottom-up cost and power model (servesim/accounting/hwcost.py) and of derived
devices (servesim/specs/derive.py); a profile's own `die:`, `packaging:`, `system:` or `power:`
value always wins. Every number carries its source; ``estimate:`` marks a number set by a stated
rule. docs/energy-and-cost.md ("Bottom-up cost and power") explains how they combine.
"""

from __future__ import annotations

from typing import NamedTuple

WAFER_DIAMETER_MM = 300.0
YIELD_MODELS = ("murphy", "poisson", "seeds", "negative_binomial")


class Node(NamedTuple):
    wafer_usd: float
    defect_density_per_cm2: float
    sram_mm2_per_MB: float
    source: str


# TSMC 2020 price list (leaked April 2020, reported by TechPowerUp and others): 16/12 nm $3,984,
# 7 nm $9,346, 5 nm $16,988 per 300 mm wafer. 3 nm ~$20,000 (DigiTimes via Taiwan News, Nov 2022).
# Defect density: TSMC reported N7 and N5 at ~0.09-0.1 defects/cm2 in volume production (TSMC
# Technology Symposium 2020, as reported by AnandTech); LLM SPICE uses 0.14 for its CoWoS node.
# SRAM mm2/MB: high-density bitcell (N16 0.074, N7 0.027, N5 0.021, N3 0.0199 um2; TSMC IEDM/ISSCC
# papers) x 8.4e6 bits/MB x ~2.5 array overhead (estimate: periphery, redundancy, wiring).
_SRC_2020 = "TSMC 2020 wafer price list (TechPowerUp, Apr 2020)"
NODES: dict[str, Node] = {
    "n16": Node(3984, 0.05, 1.55, f"{_SRC_2020}; estimate: D0 0.05/cm2 for a mature node"),
    "n12": Node(3984, 0.05, 1.55, f"{_SRC_2020} (16/12 nm); estimate: D0 0.05/cm2 mature node"),
    # GlobalFoundries 14LPP (Groq): no published price; TSMC 16/12 nm price as the same class
    "gf14": Node(3984, 0.05, 1.6, "estimate: TSMC 16/12 nm price for the GF 14 nm class"),
    "n7": Node(9346, 0.09, 0.57, f"{_SRC_2020}; TSMC N7 D0 ~0.09/cm2 (Symposium 2020)"),
    "n6": Node(9346, 0.09, 0.57, "estimate: N7 price and D0 (N6 is an N7-family node)"),
    "n5": Node(16988, 0.10, 0.44, f"{_SRC_2020}; TSMC N5 D0 ~0.1/cm2 (Symposium 2020)"),
    # NVIDIA 4N / 4NP and TSMC N4: no published price; N5 +6% for the 2023 price increase
    "n4": Node(18000, 0.10, 0.44, "estimate: N5 $16,988 + ~6% (TSMC 2023 price rise); N5 D0"),
    "n3": Node(
        20000,
        0.10,
        0.42,
        "DigiTimes via Taiwan News (Nov 2022): ~$20,000 per N3 wafer; estimate: N5 D0",
    ),
    "n2": Node(
        30000,
        0.12,
        0.42,
        "estimate: ~$30,000 per N2 wafer reported in 2024-25 trade press; D0 +20% early node",
    ),
}


class HBMGen(NamedTuple):
    usd_per_GB: float
    usd_per_stack: float
    stack_bw_GBps: float  # the most one stack delivers at the generation's top pin rate
    pj_per_bit: float
    source: str


# $/GB: Silicon Analysts cost bridge (Feb 2026): H100 80 GB HBM3 ~$1.4K, B200 192 GB HBM3e ~$2.9K;
# the per-stack part (base die, TSV test, ~$40) is an estimate. Stack bandwidth: JEDEC pin rates
# x 1024 bits (HBM2e 3.6 Gb/s, HBM3 6.4, HBM3e 9.6) and x 2048 bits at 8 Gb/s (HBM4, JESD270-4).
# Access energy: ~3.9 pJ/bit for HBM2 (O'Connor et al., "Fine-Grained DRAM", MICRO 2017); later
# generations are assumed the same (estimate: I/O energy per bit has fallen little since).
HBM: dict[str, HBMGen] = {
    "hbm2": HBMGen(8.0, 30.0, 307.0, 3.9, "estimate: $8/GB; JEDEC HBM2 2.4 Gb/s x 1024"),
    "hbm2e": HBMGen(10.0, 30.0, 460.0, 3.9, "estimate: $10/GB; HBM2E 3.6 Gb/s x 1024"),
    "hbm3": HBMGen(
        14.0, 40.0, 819.0, 3.9, "Silicon Analysts H100 HBM3 $1.4K/80 GB; JESD238 6.4 Gb/s"
    ),
    "hbm3e": HBMGen(13.0, 40.0, 1229.0, 3.9, "Silicon Analysts B200 HBM3e $2.9K/192 GB; 9.6 Gb/s"),
    "hbm4": HBMGen(
        20.0, 60.0, 2048.0, 3.5, "estimate: HBM4 ~1.5x HBM3e per GB; JESD270-4 2048 x 8 Gb/s"
    ),
}
# Other memories: (usd_per_GB, pJ/bit). On-die SRAM costs die area instead (die.sram_mm2_per_MB).
OTHER_MEMORY: dict[str, tuple[float, float, str]] = {
    "gddr6": (3.0, 7.5, "estimate: GDDR6 ~$3/GB spot; ~7.5 pJ/bit (Micron GDDR6 tech note class)"),
    "gddr7": (4.0, 6.0, "estimate: GDDR7 ~$4/GB; ~6 pJ/bit"),
    "lpddr5": (4.0, 4.0, "estimate: LPDDR5X ~$4/GB; ~4 pJ/bit"),
    "sram": (0.0, 0.1, "on-die SRAM: paid for in die area; estimate: ~0.1 pJ/bit local access"),
}
HBM_STACK_MM2 = 121.0  # LLM SPICE models an HBM stack as 11 x 11 mm


class Packaging(NamedTuple):
    usd_per_mm2: float  # of silicon footprint on the interposer / substrate (dies + HBM stacks)
    assembly_yield: float
    source: str


# CoWoS-S: ~$723-750 for H100 (Raymond James via szyunze.com; Silicon Analysts) over ~1,420 mm2
# of dies and stacks -> ~$0.5/mm2. CoWoS-L: B200 ~$1,100 over ~2,570 mm2 -> ~$0.45/mm2 (Silicon
# Analysts). Assembly yield 0.95: LLM SPICE's CoWoS integration_yield_rate; 0.999 for PCB.
PACKAGING: dict[str, Packaging] = {
    "cowos-s": Packaging(0.50, 0.95, "Silicon Analysts / Raymond James H100 CoWoS-S $723-750"),
    "cowos-l": Packaging(0.45, 0.95, "Silicon Analysts B200 CoWoS-L ~$1,100"),
    "cowos-s+soic": Packaging(
        0.50, 0.93, "estimate: CoWoS-S rate; SoIC bonding costs 2 points of yield"
    ),
    "organic": Packaging(
        0.05, 0.99, "estimate: flip-chip BGA ~$0.05/mm2; LLM SPICE PCB yield ~0.999"
    ),
    "wafer-scale": Packaging(
        0.0, 1.0, "no interposer; give packaging.usd for the system's engine block"
    ),
}
DEFAULT_TEST_USD = (
    500.0  # estimate: between Silicon Analysts' MI300X $600 and H100 $920 test+assembly
)


# Vendor gross margin on the device (selling price = manufacturing cost / (1 - margin)). Per
# product, not company-wide: Silicon Analysts' cost bridge estimates 88% (H100) and 84% (B200) for
# NVIDIA and 64.7% (MI300X) for AMD; NVIDIA's company-wide FY2025 GAAP gross margin was 75%.
VENDOR_MARGIN: dict[str, tuple[float, str]] = {
    "nvidia": (0.85, "estimate: mid of Silicon Analysts' H100 88% / B200 84% product margins"),
    "amd": (0.65, "Silicon Analysts MI300X gross margin 64.7%"),
    "google": (0.0, "in-house part: at cost (no merchant margin)"),
    "other": (0.0, "hypothetical part: at cost; set price.gross_margin for a merchant price"),
}
DEFAULT_MARGIN = (0.60, "estimate: merchant accelerator start-up margin ~60%")

# Power: LLM SPICE uses static_power_ratio 0.35 for every processor.
DEFAULT_STATIC_FRACTION = (0.35, "LLM SPICE static_power_ratio (every processor)")
# Share of a GPU die the compute units take, for area scaling with compute_units.
UNITS_AREA_SHARE = 0.6  # estimate: SM arrays cover ~60% of GH100/GA100 die shots
# Server (CPUs, DRAM, NICs, NVSwitch baseboard, chassis, PSUs) per 8-device node: $32,010 from the
# SemiAnalysis DGX H100 bill of materials as summarised by Epoch AI (training-cost-trends).
SERVER_USD_PER_DEVICE = (32010.0 / 8, "SemiAnalysis DGX H100 non-GPU BOM $32,010 / 8 (Epoch AI)")
# Switches + optics + cables ~11% of a ~$300K H100 node per 8 GPUs at 50 GB/s each (the
# cost.network_share source) -> ~$80 per GB/s of scale-out bandwidth per device.
NETWORK_USD_PER_GBPS = (80.0, "estimate: 11% of a ~$300K 8-GPU node / (8 x 50 GB/s)")
RACK_USD_PER_NODE = (3000.0, "estimate: rack, PDUs, cabling per node")


def memory_kind(memory_type: str) -> str:
    """The table key of a profile's ``memory.type`` ('HBM3e' -> 'hbm3e', 'SRAM (on-chip)' ->
    'sram'); '' when the type names no known memory."""
    text = memory_type.strip().lower()
    for key in ("hbm4", "hbm3e", "hbm3", "hbm2e", "hbm2", "gddr7", "gddr6", "lpddr5", "sram"):
        if text.startswith(key):
            return key
    return ""


def memory_pj_per_bit(memory_type: str) -> float | None:
    """Access energy per bit of the memory type, or None when the type is not in the tables."""
    kind = memory_kind(memory_type)
    if kind in HBM:
        return HBM[kind].pj_per_bit
    if kind in OTHER_MEMORY:
        return OTHER_MEMORY[kind][1]
    return None


class PowerParts(NamedTuple):
    static_W: float
    dynamic_W: float  # compute logic at the clock and voltage
    memory_W: float  # memory interface at full bandwidth


def power_parts(
    tdp_W: float, bandwidth_GBps: float, pj_per_bit: float, static_fraction: float
) -> PowerParts:
    """TDP split into memory (bandwidth x energy per bit, at most half the TDP), static (a share
    of the rest) and dynamic (the remainder, which scales with units x V^2 x f)."""
    memory = min(bandwidth_GBps * 8e9 * pj_per_bit * 1e-12, 0.5 * tdp_W)
    static = static_fraction * (tdp_W - memory)
    return PowerParts(static, tdp_W - memory - static, memory)
