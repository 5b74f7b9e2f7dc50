"""Anchors for the bottom-up cost model: servesim's bottom-up numbers for H100, H200, B200 and
MI300X against reported selling prices, published bills of materials and LLM SPICE's own
breakdowns (its inputs run through the same die/interposer arithmetic).

    python experiments/codesign/anchors.py        (prints the markdown table of docs/energy-and-cost.md)
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from servesim.accounting import hwcost  # noqa: E402
from servesim.specs.hardware import load_hardware  # noqa: E402

# device -> (reported selling price, its source; published manufacturing cost, its source)
REPORTED = {
    "h100-sxm": (27500, "$25-30K (awesomeagents.ai H100 page; hw_profiles purchase_usd)",
                 3320, "Raymond James via Epoch AI / Silicon Analysts"),
    "h200-sxm": (30000, "$25-35K (awesomeagents.ai H200 page)", 4800, "Silicon Analysts cost bridge"),
    "b200": (40000, "~$40K ASP (Silicon Analysts B200 breakdown)", 6400, "Silicon Analysts B200 breakdown"),
    "mi300x": (15000, "~$15K (Silicon Analysts cost bridge)", 5300, "Silicon Analysts cost bridge"),
}  # fmt: skip


def llm_spice_chip_usd(w: float, h: float, tiles: int, stacks: int, stack_usd: float) -> float:
    """LLM SPICE's Processor.cost_breakdown with its CoWoS node (chip wafer $20K, D0 0.14/cm2,
    Poisson yield; interposer wafer $5K, D0 0.014; integration $500 at 95% yield; HBM stacks
    11 x 11 mm) -- its grid-placement die count replaced by the edge-loss formula."""
    tile = w * h
    die = 20000.0 / (math.exp(-0.14 * tile / 100) * hwcost.dies_per_wafer(tile))
    total_area = tile * tiles + stacks * 121.0
    rows = math.ceil(math.sqrt(tiles))
    width, height = w * (tiles // rows), h * rows + 22.0
    area = width * height if width * height >= total_area else total_area
    interposer = 5000.0 / (math.exp(-0.014 * total_area / 100) * hwcost.dies_per_wafer(area)) + 500
    return die * tiles + stacks * stack_usd + interposer + 0.05 * 500


LLM_SPICE = {  # its registered inputs (llm_spice/hardware/simd.py, memory.py)
    "h100-sxm": llm_spice_chip_usd(33.0, 26.0, 1, 5, 200.0),  # HBM3-8H $200
    "h200-sxm": llm_spice_chip_usd(33.0, 26.0, 1, 6, 375.0),  # HBM3E-8H $375
    "b200": llm_spice_chip_usd(31.0, 25.8, 2, 8, 500.0),  # its GB200 GPU: HBM3E-12H $500
}


def main() -> None:
    print("| device | bottom-up chip cost | published cost | LLM SPICE chip cost | bottom-up price "
          "(margin) | reported price | price error |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, (price, psrc, cost, csrc) in REPORTED.items():
        v = hwcost.bottom_up(load_hardware(name))["values"]
        spice = LLM_SPICE.get(name)
        spice_text = f"${spice:,.0f}" if spice else "not modelled"
        err = v["price.device_usd"] / price - 1
        print(f"| {name} | ${v['chip.cost_usd']:,.0f} | ${cost:,} ({csrc}) | {spice_text} | "
              f"${v['price.device_usd']:,.0f} ({v['price.gross_margin']:.0%}) | ${price:,} ({psrc}) | {err:+.0%} |")  # fmt: skip


if __name__ == "__main__":
    main()
