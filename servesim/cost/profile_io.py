"""Write the calibration sections of a hardware profile (efficiency, engines, intervals,
generation, fitted), keeping the datasheet part of the file and its comments as they are."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import yaml

from servesim._files import write_atomic
from servesim.specs.hardware import EFFICIENCY_DEFAULTS

# Top-level keys calibration owns; they are written last in a profile, in this order.
SECTIONS = ("generation", "efficiency", "engines", "intervals", "fitted")
_TOP = re.compile(r"^([A-Za-z_]+):")


def _meaning(key: str) -> str:
    base, _, fmt = key.partition("@")
    what = EFFICIENCY_DEFAULTS[base][1]
    return f"{what} ({fmt} kernels)" if fmt else what


def _section(head: str, rows: list[str]) -> list[str]:
    """``head`` (with its comment) and its indented rows; ``name: {}`` when there are none."""
    return [head, *rows] if rows else [head.split(":")[0] + ": {}"]


def sections_text(
    efficiency: Mapping[str, float],
    engines: Mapping[str, Mapping[str, float]],
    intervals: Mapping[str, tuple[float, float]],
    generation: str,
    note: str,
    label: str = "fitted",
) -> str:
    """The YAML of the calibration sections (every value commented with its meaning)."""
    num = _yaml_num
    lines = [f"generation: {generation}  # efficiencies transfer within a generation (derive)"]
    rows = [f"  {k}: {num(efficiency[k])}  # {_meaning(k)}" for k in sorted(efficiency)]
    lines += _section(
        f"efficiency:                # {label}; the default when no engine is selected", rows
    )
    rows = []
    for engine in sorted(engines):
        values = engines[engine]
        rows.append(f"  {engine}:" if values else f"  {engine}: {{}}")
        rows += [f"    {k}: {num(values[k])}" for k in sorted(values)]
    lines += _section(
        "engines:                   # per-engine overlays: keys that differ from efficiency", rows
    )
    rows = [f"  {f}: [{num(intervals[f][0])}, {num(intervals[f][1])}]" for f in sorted(intervals)]
    lines += _section(
        "intervals:                 # 80% band: [p10, p90] of measured/predicted, held-out rows",
        rows,
    )
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


def _yaml_num(x: float) -> str:
    """A float YAML reads back as a float (YAML 1.1 needs a dot in '1.0e-08')."""
    text = f"{x:.4g}"
    mantissa, e, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + (e + exponent if e else "")
