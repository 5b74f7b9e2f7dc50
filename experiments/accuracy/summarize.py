"""The Markdown tables of docs/accuracy.md from aic_fit.py's JSON outputs.

python experiments/accuracy/summarize.py [--out experiments/accuracy/aic]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = ("a100_sxm", "h100_sxm", "l40s", "b300_sxm", "gb300", "rtx_pro_6000_server")
AIM = {"gemm": "<= 10%", "attn_prefill": "<= 15%", "attn_decode": "<= 15%", "moe": "<= 15%",
       "allreduce": "<= 15%", "mla_prefill": "-", "mla_decode": "-"}  # fmt: skip


def pct(x) -> str:
    return "-" if x is None or x != x else f"{100 * x:.1f}%"


def pooled(per_engine: dict) -> dict:
    """Row-weighted MAPE / coverage / width over engines."""
    n = sum(e["n"] for e in per_engine.values() if e.get("n"))
    if not n:
        return {"n": 0}
    out = {"n": n}
    for key in ("mape", "band_coverage", "band_width"):
        vals = [(e["n"], e.get(key)) for e in per_engine.values() if e.get("n")]
        if all(v is not None for _, v in vals):
            out[key] = sum(w * v for w, v in vals) / n
    out["median"] = float(np.median([e["median"] for e in per_engine.values() if e.get("n")]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "experiments" / "accuracy" / "aic"))
    folder = Path(ap.parse_args().out)
    own = json.loads((folder / "own_fits.json").read_text())
    cross = json.loads((folder / "cross_system.json").read_text())
    families = sorted({f for s in own.values() for f in s["errors"]})
    print("### Held-out shapes, own system (engines pooled; MAPE)\n")
    print("| family | " + " | ".join(SYSTEMS) + " |")
    print("|---|" + "---:|" * len(SYSTEMS))
    for f in families:
        cells = [pct(own[s]["errors"].get(f, {}).get("mape")) if s in own else "-" for s in SYSTEMS]
        print(f"| {f} | " + " | ".join(cells) + " |")
    print(
        "\n### Held-out shapes, own system, each engine with its overlay (MAPE, engines pooled)\n"
    )
    print("| family | " + " | ".join(SYSTEMS) + " |")
    print("|---|" + "---:|" * len(SYSTEMS))
    for f in families:
        cells = []
        for s in SYSTEMS:
            per = {e: v[f] for e, v in own.get(s, {}).get("engines", {}).items() if f in v}
            p = pooled(per) if per else {"n": 0}
            cells.append(pct(p.get("mape")) if p.get("n") else "-")
        print(f"| {f} | " + " | ".join(cells) + " |")
    print("\n### Held-out systems, efficiencies derived from the others (MAPE; band coverage)\n")
    print("| family | " + " | ".join(f"{s} ({cross[s]['case']})" for s in SYSTEMS if s in cross)
          + " | aim |")  # fmt: skip
    print("|---|" + "---:|" * (len([s for s in SYSTEMS if s in cross]) + 1))
    fams = sorted({f for c in cross.values() for f in c["families"]})
    for f in fams:
        cells = []
        for s in SYSTEMS:
            if s not in cross:
                continue
            p = pooled(cross[s]["families"].get(f, {}))
            cells.append("-" if not p.get("n") else
                         f"{pct(p['mape'])} ({pct(p.get('band_coverage'))})")  # fmt: skip
        print(f"| {f} | " + " | ".join(cells) + f" | {AIM.get(f.partition('.')[0], '-')} |")
    print("\nrows scored:", {s: sum(pooled(v)["n"] for v in c["families"].values())
                             for s, c in cross.items()})  # fmt: skip
    widths = [pooled(v).get("band_width") for c in cross.values() for v in c["families"].values()]
    covs = [pooled(v).get("band_coverage") for c in cross.values() for v in c["families"].values()]
    widths = [w for w in widths if w is not None]
    covs = [c for c in covs if c is not None]
    print(
        f"median band width (hi - lo, relative): {np.median(widths):.2f}; "
        f"median coverage over families x systems: {np.median(covs):.2f}"
    )


if __name__ == "__main__":
    main()
