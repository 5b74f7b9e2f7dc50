"""Held-out check of the low-precision transfer rule (servesim.specs.derive.format_speedups).

    python experiments/accuracy/format_transfer.py [--per 4]

B300 and GB300 (FP4 peak 6x their BF16 peak) are scored on their own GEMM rows with
efficiencies derived from the only other fitted Blackwell device, RTX PRO 6000 (FP4 peak 4x
BF16, as B200/GB200), once with the fraction of each format's own peak transferred (the old
rule) and once with the speed-up over the 16-bit peak transferred (the shipped rule). Rows:
a stratified subsample (--per rows per system x engine x format x shape class x size octave,
seed 2), ~10 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from aic_fit import DATA, _peaks  # noqa: E402

from servesim.cost import aic, fitted  # noqa: E402
from servesim.cost.calibrate import with_efficiency  # noqa: E402
from servesim.specs.hardware import load_hardware  # noqa: E402

RULES = (("fraction of own peak", False), ("speed-up over bf16", True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per", type=int, default=4, help="rows per stratum")
    args = ap.parse_args()
    t0 = time.time()
    src = load_hardware("rtx-pro-6000")
    pool = {"rtx_pro_6000_server": ("blackwell", dict(src.efficiency))}
    print("| system | rule | family | rows | MAPE | median measured/predicted |")
    print("|---|---|---|---|---|---|")
    for system in ("b300_sxm", "gb300"):
        profile = aic.SYSTEM_PROFILES[system]
        rows = fitted.load(DATA, [system], per_stratum=args.per, kinds=["gemm"], seed=2)
        bare = dataclasses.replace(load_hardware(profile), efficiency=(), engines=(), intervals=())
        for label, speedups in RULES:
            peaks = _peaks(profile) if speedups else (None, None)
            eff, _ = fitted.derive_efficiency("blackwell", pool, None, None, *peaks)
            spec = with_efficiency(bare, eff)
            for family, samples in sorted(rows.items()):
                r = fitted.ratios(spec, samples)
                st = fitted.stats(r)
                print(f"| {system} | {label} | {family} | {st['n']} | {st['mape']:.1%} | "
                      f"{np.median(r):.3f} |")  # fmt: skip
    print(f"\n{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
