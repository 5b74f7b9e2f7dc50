"""A plan's result: the candidates, the ranked options, the Pareto fronts and the best config,
and the files ``PlanResult.to_dir`` writes (plan.json, candidates.csv, pareto_*, best_config.yaml,
launch commands, options.csv).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from servesim._files import write_atomic


@dataclass
class PlanResult:
    inputs: dict[str, Any]
    candidates: pd.DataFrame  # every simulated candidate, cheapest estimate first
    top: pd.DataFrame  # the best `top` that met the SLO, by monthly cost
    fronts: dict[str, pd.DataFrame]
    notes: list[str]
    best_config: dict[str, Any] | None
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # candidate id -> config
    options: list[dict[str, Any]] = field(default_factory=list)  # ranked, every billing model
    callouts: dict[str, int | None] = field(default_factory=dict)  # name -> index in options
    day: dict[str, Any] = field(default_factory=dict)  # profile, levels, policy, per-deployment

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "top": _records(self.top),
            "candidates": _records(self.candidates),
            "notes": self.notes,
            "best_config": self.best_config,
            "options": self.options,
            "callouts": {
                k: (None if i is None else self.options[i]["rank"])
                for k, i in self.callouts.items()
            },  # fmt: skip
            "day": self.day,
            "launch_commands": _launch(self.best_config),
        }

    def to_dir(self, path: str | Path) -> Path:
        """plan.json, candidates.csv, pareto_*.csv and pareto_*.png, best_config.yaml."""
        import yaml

        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(
            out / "plan.json", json.dumps(self.to_dict(), indent=2, default=_json_default) + "\n"
        )
        write_atomic(out / "candidates.csv", self.candidates.to_csv(index=False))
        for name, front in self.fronts.items():
            write_atomic(out / f"pareto_{name}.csv", front.to_csv(index=False))
        if self.best_config is not None:
            from servesim.studies.planning.export import commands, launch_text

            write_atomic(
                out / "best_config.yaml", yaml.safe_dump(self.best_config, sort_keys=False)
            )
            write_atomic(out / "launch_commands.sh", launch_text(self.best_config))
            write_atomic(
                out / "launch_commands.json",
                json.dumps(commands(self.best_config), indent=2) + "\n",
            )
        write_atomic(out / "options.csv", pd.DataFrame(self.options).to_csv(index=False))
        write_front_figures(self, out)
        return out


def _launch(cfg: Mapping[str, Any] | None) -> dict[str, list[str]] | None:
    from servesim.studies.planning.export import commands

    return commands(cfg) if cfg else None


def _records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records"))


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def write_front_figures(result: PlanResult, out: Path) -> list[Path]:
    """pareto_cost_latency.png and pareto_throughput_interactivity.png (drawn by servesim.report)."""
    from servesim.studies.report import pareto_figures

    paths = []
    for name, fig in pareto_figures(result.candidates, result.inputs["latency_key"]).items():
        p = out / f"pareto_{name}.png"
        p.write_bytes(fig.png)
        paths.append(p)
    return paths
