"""A fingerprint of the cost model: per catalog model one hash over its weights per device and
role, activation reserve, KV capacity (every valid parallelism of a grid, five formats), step
costs and per-operator breakdowns (three batches, three engines, three roles) and the
attention/FFN link, so a change meant to keep the cost model identical (a restructuring of the
operator list) can be checked bit for bit beyond the goldens.

Usage (from the repository root; about 10 s):
    python benchmarks/cost_fingerprint.py > before.txt   # on the old tree
    python benchmarks/cost_fingerprint.py > after.txt    # on the new tree; `diff` must be empty
"""

from __future__ import annotations

import hashlib
import itertools
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _memory(m, hw, h) -> None:
    from servesim.cost import memory
    from servesim.cost.step import CostContext
    from servesim.specs.common import SpecError
    from servesim.specs.config import Parallelism
    from servesim.specs.dtypes import DTypes

    h.update(repr(memory.param_counts(m)).encode())
    formats = [DTypes(), DTypes("fp8", "fp8", "fp8"), DTypes("fp8", "bf16", "bf16"),
               DTypes("fp4", "fp8", "fp8"), DTypes("fp32", "fp32", "fp32")]  # fmt: skip
    for dt in formats:
        grid = itertools.product((1, 2, 3, 4, 8), (1, 2, 3, 5), (1, 2, 4, 8, 16), (1, 2, 4))
        for tp, pp, ep, dp in grid:
            par = Parallelism(tp=tp, pp=pp, ep=ep, dp_attn=dp)
            try:
                memory.validate_parallelism(m, par)
            except SpecError:
                continue
            ctx = CostContext(m, hw, par, dt, 0.0)
            row = [
                memory.weight_bytes_per_device(m, dt, par, r)
                for r in ("colocated", "attention", "ffn")
            ]
            row += [memory.activation_reserve_bytes(m, dt, par, t) for t in (512, 8192)]
            row += [memory.kv_capacity_tokens(ctx, 0.9, r) for r in ("colocated", "attention")]
            h.update(repr((dt, par, row)).encode())


def _steps(m, hw, h) -> None:
    from servesim.cost.afstep import af_step_cost
    from servesim.cost.memory import validate_parallelism
    from servesim.cost.step import Aggregates, CostContext, breakdown, step_cost
    from servesim.specs.common import SpecError
    from servesim.specs.config import Parallelism
    from servesim.specs.dtypes import DTypes
    from servesim.specs.engines import engine_kernels

    batches = [Aggregates(512, 2, 512 * 300, 1000, 30, 30 * 2000, 32),
               Aggregates(0, 0, 0, 0, 64, 64 * 900, 64), Aggregates(8000, 1, 8000 * 4000, 0, 0, 0, 1)]  # fmt: skip
    engines = [None] + [engine_kernels(e, hw, 2.0) for e in ("vllm", "trtllm", "sglang@0.5+tbo")]
    for dt in (DTypes(), DTypes("fp8", "fp8", "fp8")):
        for tp, pp, ep, dp in (
            (1, 1, 1, 1),
            (2, 1, 1, 1),
            (4, 2, 1, 1),
            (8, 1, 8, 1),
            (4, 1, 8, 2),
        ):
            par = Parallelism(tp=tp, pp=pp, ep=ep, dp_attn=dp)
            try:
                validate_parallelism(m, par)
            except SpecError:
                continue
            for eng in engines:
                ctx = CostContext(m, hw, par, dt, 1e-4, 1.3, eng)
                for role, agg in itertools.product(("colocated", "attention", "ffn"), batches):
                    h.update(repr((step_cost(ctx, role, agg), breakdown(ctx, role, agg))).encode())
            if pp == 1:
                ctx = CostContext(m, hw, par, dt, 1e-4, 1.3)
                for agg in batches:
                    h.update(repr(af_step_cost(
                        lambda a, c=ctx: step_cost(c, "attention", Aggregates(*a)),
                        lambda a, c=ctx: step_cost(c, "ffn", Aggregates(*a)), agg, model=m, dtypes=dt,
                        micro_batches=2, share=1.5, attention_devices=tp * dp, ffn_devices=4,
                        bandwidth_GBps=50.0, latency_us=5.0, attention_overhead_s=1e-4,
                        ffn_overhead_s=1e-4, ffn_ep=ep)).encode())  # fmt: skip


def main() -> int:
    sys.path.insert(0, str(REPO))
    from servesim.specs.catalogs import catalog_ids
    from servesim.specs.hardware import load_hardware
    from servesim.specs.model import load_model

    hw = load_hardware("h100-sxm")
    for name in catalog_ids("model"):
        m = load_model(name)
        h = hashlib.sha256()
        _memory(m, hw, h)
        _steps(m, hw, h)
        print(f"{name:28} {h.hexdigest()[:16]}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
