"""Can per-request host time explain the MoE over-prediction? A bound from the published rows,
and what-if runs of the rows it would touch.

    python experiments/e2e_validation/host_bound.py            # ~1 min; --no-sim: the bound only

Hypothesis tested: the engine's Python executor spends b seconds of host time per scheduled
sequence per step (scheduling, sampling bookkeeping, request state), hidden behind the GPU step
by the overlap scheduler, so step = max(GPU, a + b n). Whatever a and b are, each sequence
emits at most one output token per step, so an executor's output rate is at most
n / (b n) = 1 / b: **every published throughput row bounds b from above**, b <= 1 / (output
tok/s of one executor). One executor serves the whole TP group (every TP rank runs the same
loop over the same n sequences); with attention DP each rank runs its own executor over its
own sequences.

Part 1 prints that bound per row and the tightest bound per source (one TensorRT-LLM release
per source, DGX hosts of the same CPU class). If the MoE rows were host-bound, b would have
to equal 1 / (their tok/s per executor), which is far above what the fastest rows of the
same release allow.

Part 2 (what-if, nothing changed in servesim): reruns the perf-overview rows with
step = max(GPU step, overhead + b x sequences per executor) at b = the tightest bound of the
row's source (the most per-request host time the measurements allow), and with every routed
expert kernel 1.2x slower (estimate: aiconfigurator's power-law / balanced MoE latency at EP1,
512-8,192 tokens, H100/B300, printed by part 3), to show how much of the gap either can close.

Part 3 (needs ../shared/data): aiconfigurator's fused-MoE latency with power-law routing over
balanced routing at EP1 (same shape, kernel and token count), by token count, H100.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

import score  # noqa: E402

# TensorRT-LLM >= 1.0 perf-overview sources (PyTorch backend, overlap scheduler on)
SOURCES = ("trtllm_perf_overview_v1.0", "trtllm_perf_overview_2026")
SKEW = 1.2  # estimate: part 3's power-law / balanced ratio, 512-8,192 tokens (1.05-1.5)


def executors(row: dict[str, str]) -> int:
    dp = int(row["dp_attn"] or 1)
    return dp if dp > 1 else 1


def per_executor_tok_s(row: dict[str, str]) -> float:
    return float(row["value"]) * int(row["gpus"]) / executors(row)


def bound_table(rows: list[dict[str, str]]) -> dict[str, float]:
    """Per row: b_max = 1 / (tok/s per executor); returns the tightest bound per source."""
    print("Part 1: upper bound on per-request host time, b <= 1 / (output tok/s per executor)")
    print(f"{'row':>4} {'model':<17}{'hw':<9}{'layout':<6}{'isl/osl':>10} {'exec':>4} "
          f"{'tok/s/exec':>11} {'b_max us':>9}")  # fmt: skip
    tight: dict[str, float] = {}
    for r in rows:
        b = 1e6 / per_executor_tok_s(r)
        tight[r["source"]] = min(tight.get(r["source"], b), b)
        print(f"{r['row']:>4} {r['model']:<17}{r['hardware']:<9}{r['layout']:<6}"
              f"{r['isl'] + '/' + r['osl']:>10} {executors(r):>4} {per_executor_tok_s(r):>11,.0f} "
              f"{b:>9.1f}  {r['kind']}")  # fmt: skip
    for src, b in tight.items():
        moe = [
            1e6 / per_executor_tok_s(r) for r in rows if r["source"] == src and r["kind"] == "moe"
        ]
        print(
            f"{src}: tightest bound b <= {b:.1f} us; MoE rows would need "
            f"{min(moe):.0f}-{max(moe):.0f} us (median {statistics.median(moe):.0f}) to be host-bound"
        )
    return tight


def patch(host_per_seq: dict[int, float] | None = None, moe_factor: float = 1.0) -> None:
    """What-if hooks on the step cost model (this script only). ``host_per_seq`` maps id(ctx
    hardware) -> b; set per row below through ``_CURRENT``."""
    from servesim.cost import step as st

    st.clear_caches()
    if not hasattr(st._Plan, "_orig_cost"):
        st._Plan._orig_cost = st._Plan.cost
        st._Plan._orig_init = st._Plan.__init__

    def init(self, ctx, role):
        st._Plan._orig_init(self, ctx, role)
        self.moe_scale *= moe_factor
        eng = ctx.engine
        if eng is not None and eng.host_launch_s > 0.0:  # kernels an eager step launches
            _CURRENT["kernels"] = self.eager_kernels / eng.host_launch_s

    def cost(self, agg):
        res = st._Plan._orig_cost(self, agg)
        b = _CURRENT["b"]
        if b <= 0.0:
            return res
        dp = self.consts[0]
        n = agg.decode_seqs + agg.prefill_seqs
        host = self.consts[2] + b * -(-n // dp)  # each DP rank's executor walks its own share
        if self.host_overlap and host > res.seconds:
            return res._replace(seconds=host, overhead_s=res.overhead_s + host - res.seconds)
        if not self.host_overlap:
            return res._replace(seconds=res.seconds + b * -(-n // dp))
        return res

    st._Plan.__init__ = init
    st._Plan.cost = cost


_CURRENT = {"b": 0.0, "kernels": 0.0}


def run(rows, tight, mode: str, max_requests: int, stats: dict | None = None) -> dict[str, float]:
    """Signed error per row; ``stats`` gets the simulated mean step, decoding sequences and
    prefill tokens per step (offline rows: throughput = output tokens / span / GPUs)."""
    import servesim

    errs = {}
    for r in rows:
        _CURRENT["b"] = tight[r["source"]] * 1e-6 if mode == "host" else 0.0
        n = min(int(r["num_requests"]), max_requests)
        res = servesim.simulate(score.config_of(r, n, n))
        req, st = res.requests, res.steps
        span = float(req["finish_s"].max() - req["arrival_s"].min())
        sim = float(req["output_tokens"].sum()) / span / int(r["gpus"])
        errs[r["row"]] = sim / float(r["value"]) - 1.0
        if stats is not None:
            mixed = st.prefill_tokens > 0  # steps with prefill run eagerly (no CUDA graph)
            stats[r["row"]] = (
                st.duration_s.mean(),
                st.decode_seqs.mean(),
                st.prefill_tokens.mean(),
                float(st.duration_s[mixed].sum() / st.duration_s.sum()),
                _CURRENT["kernels"],
            )
    return errs


def gap_table(rows, base: dict[str, float], stats: dict) -> None:
    """The measured step at the simulated batch (same batch, measured rate) minus the simulated
    step, per decoding sequence and per token of the step: which scaling the missing time has."""
    print(
        "Part 4: missing time per step at the simulated batch (measured step = simulated step"
        " x (1 + error))"
    )
    print(f"{'row':>4} {'model':<17}{'hw':<9}{'layout':<6}{'isl/osl':>10} {'step ms':>8} "
          f"{'dec seqs':>8} {'pf tok':>7} {'miss ms':>8} {'us/seq':>7} {'us/tok':>7} "
          f"{'eager':>6} {'kernels':>8} {'us/kern':>8}")  # fmt: skip
    for r in rows:
        if r["kind"] != "moe":
            continue
        step, seqs, pf, eager, kernels = stats[r["row"]]
        miss = step * base[r["row"]]
        # host time per launched kernel that would make an eager step as long as measured
        per_kernel = step * (1 + base[r["row"]]) / kernels * 1e6 if kernels else float("nan")
        print(
            f"{r['row']:>4} {r['model']:<17}{r['hardware']:<9}{r['layout']:<6}"
            f"{r['isl'] + '/' + r['osl']:>10} {step * 1e3:>8.1f} {seqs:>8.0f} {pf:>7.0f} "
            f"{miss * 1e3:>8.1f} {miss / seqs * 1e6:>7.1f} {miss / (seqs + pf) * 1e6:>7.1f} "
            f"{eager:>6.0%} {kernels:>8.0f} {per_kernel:>8.1f}"
        )


# GPT-OSS-20B points of the 2026 perf-overview page that are not table rows (the table was
# fixed before model changes; these are diagnostics only, never scored): (hardware, ISL, OSL,
# output tok/s per GPU, requests as the page's dataset table gives them)
OFF_TABLE = (
    ("h100-sxm", 1024, 8192, 8617, 1500),
    ("h200-sxm", 1024, 8192, 12743, 1500),
    ("b200", 1024, 8192, 34702, 1500),
    ("h200-sxm", 8192, 1024, 4015, 1500),
    ("h200-sxm", 32768, 1024, 915, 1000),
    ("b200", 32768, 1024, 2645, 1000),
    ("b200", 1024, 32768, 14589, 1000),
)


def off_table(rows: list[dict[str, str]]) -> None:
    """The same model and release at other lengths: where the gap appears."""
    import servesim

    like = {r["hardware"]: r for r in rows if r["model"] == "gpt-oss-20b" and r["osl"] == "1000"}
    print("Part 5: GPT-OSS-20B, 2026 page points outside the table (diagnostic, not scored)")
    for hw, isl, osl, meas, n in OFF_TABLE:
        r = {**like[hw], "isl": str(isl), "osl": str(osl)}
        res = servesim.simulate(score.config_of(r, n, n))
        req, st = res.requests, res.steps
        sim = float(req["output_tokens"].sum()) / float(req["finish_s"].max())
        print(f"{hw:<9} {isl:>6}/{osl:<6} measured {meas:>7,} sim {sim:>9,.0f} {sim / meas - 1:+5.0%}"
              f"  decoding {st.decode_seqs.mean():>5.0f}  prefill tok/step {st.prefill_tokens.mean():>5.0f}")  # fmt: skip


def skew_table(data: Path) -> None:
    import numpy as np
    import pandas as pd

    path = data / "measured" / "aiconfigurator" / "moe.csv.gz"
    if not path.exists():
        print(f"Part 3 skipped: {path} not found")
        return
    d = pd.read_csv(path)
    d = d[(d.moe_tp_size == 1) & (d.moe_ep_size == 1) & (d.system == "h100_sxm")]
    keys = ["backend", "kernel_source", "moe_dtype", "hidden_size", "inter_size", "num_experts",
            "topk", "num_tokens"]  # fmt: skip
    p = d.pivot_table(index=keys, columns="distribution", values="latency_ms", aggfunc="median")
    p = p.dropna().reset_index()
    p["skew"] = p["power_law_1.01"] / p["balanced"]
    p["tokens"] = pd.cut(p.num_tokens, [0, 64, 512, 2048, 8192, np.inf], right=False)
    print("Part 3: aiconfigurator H100 fused MoE, EP1: power-law (alpha 1.01) / balanced latency")
    with pd.option_context("display.width", 160):
        print(p.pivot_table(index=["backend", "moe_dtype"], columns="tokens", values="skew",
                            aggfunc="median", observed=True).round(2).to_string())  # fmt: skip


def gpt_oss_moe(data: Path) -> None:
    """GPT-OSS-20B's MoE shape (hidden = inter = 2,880, 32 experts, top 4), TensorRT-LLM, EP1:
    aiconfigurator's latency over servesim's routed-expert time with the engine's MoE factor,
    by token count and routing (the factor is a median over rows per expert)."""
    import engine_factors as ef
    import pandas as pd

    from servesim.specs.dtypes import DTYPE_BYTES
    from servesim.specs.engines import engine_kernels
    from servesim.specs.hardware import load_hardware

    path = data / "measured" / "aiconfigurator" / "moe.csv.gz"
    if not path.exists():
        return
    d = pd.read_csv(path)
    shape = dict(hidden_size=2880, inter_size=2880, num_experts=32, topk=4)
    d = d[(d.moe_tp_size == 1) & (d.moe_ep_size == 1) & (d.backend == "trtllm")]
    d = d[(d[list(shape)] == pd.Series(shape)).all(axis=1)]
    kernels = {("h100_sxm", "w4a16_mxfp4"), ("b300_sxm", "w4a8_mxfp4_mxfp8")}
    print("Part 3b: GPT-OSS-20B MoE shape, TensorRT-LLM, EP1: measured / servesim (with factor)")
    for (system, mdt), g in d.groupby(["system", "moe_dtype"]):
        if (system, mdt) not in kernels:
            continue
        hw = load_hardware(ef.MOE_SYSTEMS[system]).for_engine("trtllm")
        dt = ef.MOE_FORMATS[mdt]
        k = engine_kernels("trtllm", hw, 2, DTYPE_BYTES[dt.weights], DTYPE_BYTES[dt.activations])
        g = g.groupby(["distribution", "num_tokens"]).latency_ms.median().reset_index()
        g = g[g.num_tokens.isin([256, 512, 1024, 2048, 4096, 8192])].assign(moe_dtype=mdt, **shape)
        g["ratio"] = g.latency_ms / [ef.moe_model_s(hw, r) * 1e3 * k.moe_scale
                                     for r in g.itertuples()]  # fmt: skip
        print(f"{system} {mdt} ({k.moe_kernel}, factor {k.moe_scale})")
        print(
            g.pivot(index="distribution", columns="num_tokens", values="ratio").round(2).to_string()
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-sim", action="store_true", help="part 1 (and 3) only")
    ap.add_argument("--max-requests", type=int, default=3000)
    ap.add_argument("--data", default=str(HERE.parents[2] / "shared" / "data"))
    args = ap.parse_args(argv)
    rows = [r for r in score.read_rows(HERE / "measurements.csv")
            if r["source"] in SOURCES and r["scenario"] == "offline"]  # fmt: skip
    tight = bound_table(rows)
    skew_table(Path(args.data))
    gpt_oss_moe(Path(args.data))
    if args.no_sim:
        return 0
    patch()
    stats: dict = {}
    base = run(rows, tight, "base", args.max_requests, stats)
    patch()
    host = run(rows, tight, "host", args.max_requests)
    patch(moe_factor=SKEW)
    skew = run(rows, tight, "base", args.max_requests)
    patch()
    print(
        "Part 2: signed error now / with b = the source's bound / with MoE kernels x"
        f"{SKEW} (what-if)"
    )
    for r in rows:
        k = r["row"]
        print(
            f"{k:>4} {r['model']:<17}{r['hardware']:<9}{r['layout']:<6}"
            f"{r['isl'] + '/' + r['osl']:>10} {base[k]:+6.0%} {host[k]:+6.0%} {skew[k]:+6.0%}"
        )
    for kind in ("dense", "moe"):
        ks = [r["row"] for r in rows if r["kind"] == kind]
        med = [statistics.median(e[k] for k in ks) for e in (base, host, skew)]
        print(f"median signed, {kind} ({len(ks)} rows): " + " / ".join(f"{m:+.0%}" for m in med))
    gap_table(rows, base, stats)
    off_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
