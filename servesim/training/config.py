"""Training config files: ``servesim train config.yaml``.

model: llama-3.1-70b
dtype: bf16                 # bf16 | fp16 | fp8 | fp8-block | nvfp4
cost: {pricing: cloud}      # the serving cost block (servesim.specs.cost)
seed: 0                     # accepted for symmetry with run configs; the estimate is analytic
training:
  hardware: h100-sxm
  devices: 1024             # or gpus:
  parallelism: {tp: 8, pp: 4, dp: 32, cp: 1, ep: 1, vp: 2}
  seq_len: 8192
  global_batch: 512
  micro_batch: 1
  recompute: selective      # none | selective | full
  zero: 1                   # 0 | 1 | 2 | 3 | fsdp
  tokens: 15e12             # optional: time to train, GPU-hours, energy, cost
  framework: megatron       # megatron | megatron-legacy | torchtitan
  schedule: 1f1b            # 1f1b (interleaved when vp > 1) | dualpipe
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from servesim.specs.common import SpecError, check_keys, get_number, load_yaml, require_mapping
from servesim.specs.cost import parse_cost

TOP_KEYS = ("model", "dtype", "cost", "seed", "training", "name", "description")
TRAIN_KEYS = ("hardware", "devices", "gpus", "parallelism", "seq_len", "global_batch",
              "micro_batch", "recompute", "zero", "tokens", "framework", "schedule",
              "optimizer_bytes")  # fmt: skip
PAR_KEYS = ("tp", "pp", "dp", "cp", "ep", "vp")


def load_train_config(path: str | Path) -> dict[str, Any]:
    """The keyword arguments of ``servesim.train`` (plus ``cost``) from a config file."""
    where = str(path)
    data = require_mapping(load_yaml(path), where, "")
    check_keys(data, TOP_KEYS, where, "")
    if "model" not in data:
        raise SpecError(where, "model", "<missing>", "required")
    tr = require_mapping(data.get("training"), where, "training")
    check_keys(tr, TRAIN_KEYS, where, "training")
    if "hardware" not in tr:
        raise SpecError(where, "training.hardware", "<missing>", "required")
    par = require_mapping(tr.get("parallelism") or {}, where, "training.parallelism")
    check_keys(par, PAR_KEYS, where, "training.parallelism")
    kw: dict[str, Any] = {"model": data["model"], "hardware": tr["hardware"]}
    for key in ("devices", "gpus"):
        if key in tr:
            kw["devices" if key == "devices" else "gpus"] = get_number(
                tr, key, where, "training", minimum=1, integer=True)  # fmt: skip
    for key in PAR_KEYS:
        if key in par:
            kw[key] = get_number(par, key, where, "training.parallelism", minimum=1, integer=True)
    for key in ("seq_len", "global_batch"):
        kw[key] = get_number(tr, key, where, "training", minimum=1, integer=True)
    if "micro_batch" in tr:
        kw["micro_batch"] = get_number(
            tr, "micro_batch", where, "training", minimum=1, integer=True
        )
    for key in ("recompute", "framework", "schedule"):
        if key in tr:
            kw[key] = str(tr[key])
    if "zero" in tr:
        kw["zero"] = str(tr["zero"])
    if "tokens" in tr:
        kw["tokens"] = get_number(tr, "tokens", where, "training", minimum=0, exclusive_min=True)
    if "optimizer_bytes" in tr:
        kw["optimizer_bytes"] = get_number(tr, "optimizer_bytes", where, "training",
                                           minimum=0, exclusive_min=True)  # fmt: skip
    if "dtype" in data:
        kw["dtype"] = str(data["dtype"])
    if "seed" in data:
        get_number(data, "seed", where, minimum=0, integer=True)
    kw["cost"] = parse_cost(data.get("cost"), where)
    return kw
