"""Fit every aiconfigurator system, write the fitted sections of its profile, and score
held-out systems with efficiencies derived from the others (docs/accuracy.md has the tables).

    python experiments/accuracy/aic_fit.py [--per 8] [--write] [--out experiments/accuracy/aic]

--per: rows per stratum (system x engine x format x shape class x size octave) for the fits;
scoring uses all rows of the held-out shapes/systems (see README.md here). --write rewrites the
efficiency/engines/intervals/generation/fitted sections of hw_profiles/<system>.yaml and the
derived blocks of h200-sxm, b200 and gb200.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from servesim.cost import aic, fitted  # noqa: E402
from servesim.cost.calibrate import with_efficiency  # noqa: E402
from servesim.cost.profile_io import write_sections  # noqa: E402
from servesim.specs.hardware import load_hardware  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "measured" / "aiconfigurator"
if not DATA.is_dir():
    DATA = Path("/work/shared/data/measured/aiconfigurator")
GENERATION = {"a100_sxm": "ampere", "h100_sxm": "hopper", "l40s": "ada", "b300_sxm": "blackwell",
              "gb300": "blackwell", "rtx_pro_6000_server": "blackwell"}  # fmt: skip
# Whole systems held out together (B300 and GB300: the same chip).
HOLDOUTS = (("b300_sxm", "gb300"), ("rtx_pro_6000_server",), ("h100_sxm",), ("a100_sxm",),
            ("l40s",))  # fmt: skip
DERIVED = {"h200-sxm": "hopper", "b200": "blackwell", "gb200": "blackwell"}
FAMILY_AIM = {"gemm": 0.10, "attn_prefill": 0.15, "attn_decode": 0.15, "moe": 0.15,
              "allreduce": 0.15}  # fmt: skip


# Keys the aiconfigurator tables do not measure (point-to-point sends, multi-node collectives,
# element-wise kernels): a profile keeps its earlier (vidur) fit of them.
KEEP = ("p2p_scaleup", "p2p_scaleout", "p2p_launch_s", "comm_scaleout", "elementwise_memory",
        "kernel_launch_s")  # fmt: skip


def kept(profile: str) -> dict[str, float]:
    return {k: v for k, v in load_hardware(profile).efficiency if k in KEEP}


def bare(name: str):
    return dataclasses.replace(load_hardware(name), efficiency=(), engines=(), intervals=())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per", type=int, default=8)
    ap.add_argument("--score-per", type=int, default=40, help="own-fit scoring rows per stratum")
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--from-json", action="store_true", help="reuse --out/own_fits.json's fits")
    ap.add_argument("--no-score", action="store_true", help="skip the held-out-system scores")
    ap.add_argument("--out", default=str(ROOT / "experiments" / "accuracy" / "aic"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    fits: dict[str, fitted.DeviceFit] = {}
    previous = json.loads((out / "own_fits.json").read_text()) if args.from_json else {}
    for system, profile in aic.SYSTEM_PROFILES.items():
        t = time.time()
        if system in previous:  # --from-json: the fits of an earlier run, not refitted
            p = previous[system]
            fits[system] = fitted.DeviceFit(
                profile, p["efficiency"], p["engine_overlays"],
                {f: tuple(b) for f, b in p["intervals"].items()}, p["errors"], p["engines"])  # fmt: skip
        else:
            rows = fitted.load(DATA, [system], per_stratum=args.per)
            tests = fitted.load(DATA, [system], per_stratum=args.score_per, seed=1)
            fits[system] = fitted.fit_device(bare(profile), rows, tests)
            print(f"{system}: fitted in {time.time() - t:.0f} s", flush=True)
        if args.write:
            note = (f"servesim calibrate (experiments/accuracy/aic_fit.py --per {args.per}) on "
                    f"aiconfigurator {aic.UPSTREAM} kernel tables ({system}); held-out shapes: "
                    + ", ".join(f"{f} {e['mape']:.1%}" for f, e in fits[system].errors.items()
                                if e.get("n")))  # fmt: skip
            write_sections(ROOT / "hw_profiles" / f"{profile}.yaml",
                           {**kept(profile), **fits[system].efficiency},
                           fits[system].engines, fits[system].intervals, GENERATION[system],
                           note)  # fmt: skip
    own = {s: {"errors": f.errors, "engines": f.engine_errors, "intervals": f.intervals,
               "efficiency": f.efficiency, "engine_overlays": f.engines} for s, f in fits.items()}  # fmt: skip
    (out / "own_fits.json").write_text(json.dumps(own, indent=1, sort_keys=True))
    cross = {}
    for held in () if args.no_score else HOLDOUTS:
        t = time.time()
        others = {s: (GENERATION[s], f) for s, f in fits.items() if s not in held}
        # B300+GB300 (the headline case) on every row; the others on a stratified subsample
        per = 0 if "b300_sxm" in held else (args.score_per or 40)
        for system in held:
            cross[system] = score_derived(system, others, per)
        print(f"held out {'+'.join(held)}: scored in {time.time() - t:.0f} s", flush=True)
    if not args.no_score:
        (out / "cross_system.json").write_text(json.dumps(cross, indent=1, sort_keys=True))
    if args.write:
        pooled = {s: (GENERATION[s], f.efficiency) for s, f in fits.items()}
        for profile, gen in DERIVED.items():
            kw = rule(profile)
            eff, how = fitted.derive_efficiency(gen, pooled, **kw)
            engines = derived_engines(gen, fits, kw)
            bands = derive_bands(gen, {s: (GENERATION[s], f.intervals) for s, f in fits.items()},
                                 kw)  # fmt: skip
            write_sections(ROOT / "hw_profiles" / f"{profile}.yaml", eff, engines, bands, gen,
                           f"derived by experiments/accuracy/aic_fit.py: {how} (not measured "
                           "on this device)", label="derived (see fitted:)")  # fmt: skip
    print(f"total {time.time() - t0:.0f} s")


def _effective(f: fitted.DeviceFit, engine: str) -> dict[str, float]:
    return {**f.efficiency, **f.engines.get(engine, {})}


def derive_bands(gen: str, bands, kw=None) -> dict[str, tuple[float, float]]:
    """A device's bands from other devices' (name -> (generation, bands)), as efficiencies are
    derived (``kw``: derive_efficiency's keywords): per family, lo and hi derived apart."""
    kw = kw or {}
    lo, _ = fitted.derive_efficiency(gen, {s: (g, {f: b[0] for f, b in v.items()})
                                           for s, (g, v) in bands.items()}, **kw)  # fmt: skip
    hi, _ = fitted.derive_efficiency(gen, {s: (g, {f: b[1] for f, b in v.items()})
                                           for s, (g, v) in bands.items()}, **kw)  # fmt: skip
    return {f: (lo[f], hi[f]) for f in lo if f in hi}


def _peaks(profile: str) -> tuple[dict, dict]:
    """(peak TFLOP/s of every fitted system, of ``profile``): low-precision keys transfer as
    speed-ups over the 16-bit peak (servesim.specs.derive.format_speedups)."""
    systems = {s: dict(load_hardware(p).tflops) for s, p in aic.SYSTEM_PROFILES.items()}
    return systems, dict(load_hardware(profile).tflops)


def derived_engines(gen: str, fits, kw=None) -> dict[str, dict[str, float]]:
    """Per engine, the derived overlay: keys whose derived engine value differs from pooled."""
    kw = kw or {}
    pooled, _ = fitted.derive_efficiency(gen, {s: (GENERATION[s], f.efficiency)
                                               for s, f in fits.items()}, **kw)  # fmt: skip
    out = {}
    for engine in aic.ENGINES:
        eff, _ = fitted.derive_efficiency(gen, {s: (GENERATION[s], _effective(f, engine))
                                                for s, f in fits.items()}, **kw)  # fmt: skip
        out[engine] = {k: v for k, v in eff.items() if abs(v / pooled.get(k, v) - 1) > 0.03}
    return out


def rule(target: str) -> dict:
    """derive_efficiency's keywords for a target profile: its memory and scale-up link, the
    fitted systems' ones, shrinkage toward all devices (the same rule held out and shipped)."""
    hw = load_hardware(target)
    peaks, own = _peaks(target)
    return dict(memory=hw.memory_type, memories=MEMORIES, link=hw.scaleup_name, links=LINKS,
                shrink=True, tflops=peaks, target_tflops=own)  # fmt: skip


MEMORIES = {s: load_hardware(p).memory_type for s, p in aic.SYSTEM_PROFILES.items()}
LINKS = {s: load_hardware(p).scaleup_name for s, p in aic.SYSTEM_PROFILES.items()}


def score_derived(system: str, others, score_per: int) -> dict:
    """MAPE per family and engine on every row of ``system`` with derived efficiencies."""
    gen = GENERATION[system]
    kw = rule(aic.SYSTEM_PROFILES[system])
    pooled, how = fitted.derive_efficiency(
        gen, {s: (g, f.efficiency) for s, (g, f) in others.items()}, **kw
    )
    base = with_efficiency(bare(aic.SYSTEM_PROFILES[system]), pooled)
    rows = fitted.load(DATA, [system], per_stratum=score_per, seed=2)
    bands = derive_bands(gen, {s: (g, f.intervals) for s, (g, f) in others.items()}, kw)
    result = {"how": how, "case": "generation seen" if "unknown" not in how else "generation unknown",
              "families": {}}  # fmt: skip
    for engine in (*aic.ENGINES, "nccl"):
        eff, _ = fitted.derive_efficiency(
            gen, {s: (g, _effective(f, engine)) for s, (g, f) in others.items()}, **kw
        )
        spec = with_efficiency(base, eff)
        for family, samples in rows.items():
            mine = [s for s in samples if s.device.endswith("/" + engine)]
            if mine:
                r = fitted.ratios(spec, mine)
                st = fitted.stats(r)
                lo, hi = bands.get(family, (math.nan, math.nan))
                st["band_coverage"] = float(np.mean((r >= lo) & (r <= hi))) if lo == lo else None
                st["band_width"] = hi - lo if lo == lo else None
                result["families"].setdefault(family, {})[engine] = st
    return result


if __name__ == "__main__":
    main()
