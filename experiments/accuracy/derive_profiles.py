"""Rewrite the derived calibration blocks (h200-sxm, b200, gb200; mi300x, mi325x, mi355x with the
generation unknown) from the fitted profiles as shipped in hw_profiles/, without refitting
(aic_fit.py --write refits everything first).

    python experiments/accuracy/derive_profiles.py [--check]

Same rules as aic_fit.py: per key the geometric mean over the fitted devices of the generation
and memory class, low-precision fraction-of-peak keys transferred as speed-ups over the 16-bit
peak (servesim.specs.derive.format_speedups). --check prints the blocks without writing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from aic_fit import DERIVED, GENERATION, KEEP, _peaks, derive_bands, derived_engines  # noqa: E402

from servesim.cost import aic, fitted  # noqa: E402
from servesim.cost.profile_io import write_sections  # noqa: E402
from servesim.specs.hardware import load_hardware  # noqa: E402

# GPUs of a generation no fitted device shares (AMD CDNA 3 / CDNA 4): derived with the
# generation unknown, from every fitted device (the held-out "generation unknown" case of
# docs/accuracy.md). Wafer-scale, SRAM and TPU machines are left without: GPU kernels do not
# describe them.
UNPROFILED = {"mi300x": "other", "mi325x": "other", "mi355x": "other"}


def shipped_fits() -> dict[str, SimpleNamespace]:
    """Per aiconfigurator system, its profile's fitted efficiencies, overlays and bands."""
    out = {}
    for system, profile in aic.SYSTEM_PROFILES.items():
        hw = load_hardware(profile)
        out[system] = SimpleNamespace(
            efficiency={k: v for k, v in hw.efficiency if k not in KEEP},  # as aic_fit fits
            engines={e: dict(o) for e, o in hw.engines},
            intervals={f: (lo, hi) for f, lo, hi in hw.intervals},
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="print, do not write")
    args = ap.parse_args()
    fits = shipped_fits()
    pooled = {s: (GENERATION[s], f.efficiency) for s, f in fits.items()}
    mem = {s: load_hardware(p).memory_type for s, p in aic.SYSTEM_PROFILES.items()}
    for profile, gen in {**DERIVED, **UNPROFILED}.items():
        target = load_hardware(profile).memory_type
        eff, how = fitted.derive_efficiency(gen, pooled, target, mem, *_peaks(profile))
        # per-engine overlays are NVIDIA kernels (FlashAttention-3, TRT-LLM): not for other vendors
        engines = {} if profile in UNPROFILED else derived_engines(gen, fits, target, mem,
                                                                   _peaks(profile))  # fmt: skip
        bands = derive_bands(gen, {s: (GENERATION[s], f.intervals) for s, f in fits.items()},
                             target, mem)  # fmt: skip
        if args.check:
            print(profile, how, {k: v for k, v in eff.items() if "@" in k and "compute" in k})
            continue
        write_sections(ROOT / "hw_profiles" / f"{profile}.yaml", eff, engines, bands, gen,
                       f"derived by experiments/accuracy/derive_profiles.py: {how} (not "
                       "measured on this device)", label="derived (see fitted:)")  # fmt: skip


if __name__ == "__main__":
    main()
