"""Write the calibration sections of a hardware profile (efficiency, engines, intervals,
generation, fitted), keeping the datasheet part of the file and its comments as they are."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import yaml

from servesim.specs.hardware import EFFICIENCY_DEFAULTS

# Top-level keys calibration owns; they are written last in a profile, in this order.
SECTIONS = ("generation", "efficiency", "engines", "intervals", "fitted")
_TOP = re.compile(r"^([A-Za-z_]+):")


def _num(x: float) -> str:
    text = f"{x:.4g}"
    mantissa, e, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + (e + exponent if e else "")


def _meaning(key: str) -> str:
    base, _, fmt = key.partition("@")
    what = EFFICIENCY_DEFAULTS[base][1]
    return f"{what} ({fmt} kernels)" if fmt else what


def sections_text(
    efficiency: Mapping[str, float],
    engines: Mapping[str, Mapping[str, float]],
    intervals: Mapping[str, tuple[float, float]],
    generation: str,
    note: str,
    label: str = "fitted",
) -> str:
    """The YAML of the calibration sections (every value commented with its meaning)."""
    lines = [f"generation: {generation}  # efficiencies transfer within a generation (derive)"]
    lines.append(f"efficiency:                # {label}; the default when no engine is selected")
    for key in sorted(efficiency):
        lines.append(f"  {key}: {_num(efficiency[key])}  # {_meaning(key)}")
    if not efficiency:
        lines[-1] = "efficiency: {}"
    lines.append(
        "engines:                   # per-engine overlays: keys that differ from efficiency"
    )
    for engine in sorted(engines):
        values = engines[engine]
        if not values:
            lines.append(f"  {engine}: {{}}")
            continue
        lines.append(f"  {engine}:")
        for key in sorted(values):
            lines.append(f"    {key}: {_num(values[key])}")
    if not engines:
        lines[-1] = "engines: {}"
    lines.append(
        "intervals:                 # 80% band: [p10, p90] of measured/predicted, held-out rows"
    )
    for family in sorted(intervals):
        lo, hi = intervals[family]
        lines.append(f"  {family}: [{_num(lo)}, {_num(hi)}]")
    if not intervals:
        lines[-1] = "intervals: {}"
    lines.append(yaml.safe_dump({"fitted": note}, width=10**6).strip())
    return "\n".join(lines) + "\n"


def write_sections(
    path: str | Path,
    efficiency: Mapping[str, float],
    engines: Mapping[str, Mapping[str, float]],
    intervals: Mapping[str, tuple[float, float]],
    generation: str,
    note: str,
    label: str = "fitted",
) -> None:
    """Replace the calibration sections of the profile at ``path`` (they must come last)."""
    from servesim.cost.calibrate import write_atomic

    p = Path(path)
    lines = p.read_text(encoding="utf-8").splitlines()
    cut = next((i for i, ln in enumerate(lines)
                if (m := _TOP.match(ln)) and m.group(1) in SECTIONS), len(lines))  # fmt: skip
    for ln in lines[cut:]:
        m = _TOP.match(ln)
        if m and m.group(1) not in SECTIONS:
            raise ValueError(f"{p}: key {m.group(1)!r} follows the calibration sections")
    head = "\n".join(lines[:cut]).rstrip() + "\n"
    write_atomic(p, head + sections_text(efficiency, engines, intervals, generation, note, label))
