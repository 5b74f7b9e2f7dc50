"""``servesim.train(...)``: one training layout -> a TrainEstimate (step time, throughput, MFU/HFU,
memory, bubble, exposed communication, time-to-train, GPU-hours, energy, cost)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from servesim.specs.common import SpecError
from servesim.specs.cost import CostSpec
from servesim.specs.hardware import HardwareSpec, load_hardware
from servesim.specs.model import ModelSpec, load_model
from servesim.training import collectives as coll
from servesim.training import step as st
from servesim.training.flops import hardware_flops_per_token, model_flops_per_token
from servesim.training.layout import LAYOUT_ARGS, TrainLayout, make_layout
from servesim.training.memory import memory
from servesim.training.money import training_cost


@dataclass
class TrainEstimate:
    model: str
    hardware: str
    layout: TrainLayout
    step_s: float
    tokens_per_s: float
    tokens_per_s_per_device: float
    tflops_per_device: float  # model FLOPs (causal attention halved) per second per device
    mfu: float  # model FLOPs / (devices x dense peak of the GEMM format)
    hfu: float  # model + recomputed FLOPs over the same peak
    peak_tflops: float
    memory_per_device_bytes: float
    memory_breakdown: dict[str, float]
    capacity_bytes: float
    fits: bool
    bubble_fraction: float
    exposed_comm_s: dict[str, float]
    bottleneck: str
    breakdown: pd.DataFrame = field(repr=False)
    tokens: float | None = None
    time_to_train_s: float | None = None
    gpu_hours: float | None = None
    energy_kwh: float | None = None
    cost_usd: float | None = None
    cost_detail: dict[str, Any] | None = None

    @property
    def headroom_bytes(self) -> float:
        return self.capacity_bytes - self.memory_per_device_bytes

    def to_dict(self) -> dict[str, Any]:
        out = {
            k: v for k, v in dataclasses.asdict(self).items() if k not in ("breakdown", "layout")
        }
        out["layout"] = dataclasses.asdict(self.layout)
        out["headroom_bytes"] = self.headroom_bytes
        out["breakdown"] = self.breakdown.to_dict(orient="records")
        return out


def train(
    model: str | ModelSpec,
    hardware: str | HardwareSpec,
    *,
    devices: int | None = None,
    gpus: int | None = None,
    tp: int = 1,
    pp: int = 1,
    dp: int | None = None,
    cp: int = 1,
    ep: int = 1,
    vp: int = 1,
    seq_len: int,
    global_batch: int,
    micro_batch: int = 1,
    recompute: str = "selective",
    zero: int | str = 1,
    dtype: str = "bf16",
    tokens: float | None = None,
    optimizer_bytes: float = 12.0,
    framework: str = "megatron",
    schedule: str = "1f1b",
    cost: CostSpec | None = None,
) -> TrainEstimate:
    """Estimate one training layout. ``gpus`` is an alias of ``devices``; ``dp`` is derived from
    the device count unless given; ``zero`` 3 and "fsdp" are the same sharding."""
    if gpus is not None:
        if devices is not None and devices != gpus:
            raise SpecError("train", "gpus", gpus, f"conflicts with devices={devices}")
        devices = gpus
    m = model if isinstance(model, ModelSpec) else load_model(model, where="train --model")
    hw = (
        hardware
        if isinstance(hardware, HardwareSpec)
        else load_hardware(hardware, where="train --hw")
    )
    given = locals()  # train's layout arguments are make_layout's, same names and defaults
    layout = make_layout(m, **{k: given[k] for k in LAYOUT_ARGS})
    if tokens is not None and not tokens > 0:
        raise SpecError("train", "tokens", tokens, "must be > 0")
    return estimate(m, hw, layout, tokens=tokens, cost=cost)


def _peak(hw: HardwareSpec, layout: TrainLayout) -> float:
    dt, _ = st.precision(layout)
    # the datasheet must list tensor cores for the format (no silent fallback to a wider one)
    peak = dict(hw.tflops).get(dt.compute) and hw.peak_flops(dt.compute)
    if not peak:
        raise SpecError(hw.name, "compute.tflops", dt.compute,
                        f"{hw.name} has no {dt.compute} tensor peak; --dtype {layout.dtype} cannot run on it")  # fmt: skip
    return peak


def estimate(m: ModelSpec, hw: HardwareSpec, layout: TrainLayout, *, tokens: float | None = None,
             cost: CostSpec | None = None) -> TrainEstimate:  # fmt: skip
    """One layout on one device type: step time = pipeline (micro-batches + bubble) + exposed
    data-parallel communication + optimizer + per-step overhead."""
    peak = _peak(hw, layout)
    mb = layout.microbatches
    parts: list[st.Part] = []
    fwd, bwd, rec, attn_fwd = _compute(m, hw, layout, parts)
    per_micro, bubble_s, exposed = _schedule(m, hw, layout, parts, fwd, bwd, rec, attn_fwd)
    pipeline_s = mb * per_micro
    dp_exposed = _data_parallel(m, hw, layout, parts, fwd + bwd + rec, bubble_s)
    exposed["dp"] = dp_exposed
    opt_s = st.optimizer_time(m, hw, layout)
    parts.append(st.Part("optimizer", "adam_step", opt_s, opt_s, "memory"))
    parts.append(st.Part("pipeline", "bubble", bubble_s, bubble_s, "idle"))
    parts.append(
        st.Part("overhead", "per_iteration", st.STEP_OVERHEAD_S, st.STEP_OVERHEAD_S, "overhead")
    )
    step_s = pipeline_s + bubble_s + dp_exposed + opt_s + st.STEP_OVERHEAD_S
    tok_s = layout.tokens_per_step / step_s
    per_dev = tok_s / layout.devices
    mf = model_flops_per_token(m, layout.seq_len)
    hf = hardware_flops_per_token(m, layout)
    mem = memory(m, layout)
    frame = pd.DataFrame.from_records(parts, columns=st.Part._fields)
    est = TrainEstimate(
        model=m.name, hardware=hw.name, layout=layout, step_s=step_s, tokens_per_s=tok_s,
        tokens_per_s_per_device=per_dev, tflops_per_device=per_dev * mf / 1e12,
        mfu=per_dev * mf / peak, hfu=per_dev * hf / peak, peak_tflops=peak / 1e12,
        memory_per_device_bytes=mem.total, memory_breakdown=mem._asdict(),
        capacity_bytes=hw.memory_bytes, fits=mem.total <= hw.memory_bytes,
        bubble_fraction=bubble_s / pipeline_s, exposed_comm_s=exposed,
        bottleneck=_bottleneck(parts, step_s), breakdown=frame,
    )  # fmt: skip
    if tokens is not None:
        est = training_cost(est, hw, tokens, cost or CostSpec(), step_s, mf)
    return est


def _compute(m: ModelSpec, hw: HardwareSpec, layout: TrainLayout,
             parts: list) -> tuple[float, float, float, float]:  # fmt: skip
    """(forward, backward, recompute, attention forward) seconds of one micro-batch on the
    busiest stage; appends the per-operator rows (per step) to ``parts``."""
    rows = st.layer_compute(m, hw, layout)
    frac = st.stage_fraction(m, layout)
    mb = layout.microbatches
    fwd = bwd = rec = 0.0
    attn_fwd = sum(r[1] for r in rows if r[0].startswith("attn_prefill"))
    for name, f, b, bound, elementwise in rows:
        share = 1.0 if name in ("lm_head", "final_norm", "embedding") else frac
        if name == "lm_head":  # each multi-token-prediction module runs the shared head again
            share += m.mtp_layers
        f, b = f * share, b * share
        r = 0.0 if name == "lm_head" else _recompute(layout, f, elementwise, name)
        fwd, bwd, rec = fwd + f, bwd + b, rec + r
        parts.append(st.Part("forward", name, f * mb, f * mb, bound))
        parts.append(st.Part("backward", name, b * mb, b * mb, bound))
        if r:
            parts.append(st.Part("recompute", name, r * mb, r * mb, bound))
    return fwd, bwd, rec, attn_fwd


def _schedule(m, hw, layout: TrainLayout, parts: list, fwd: float, bwd: float, rec: float,
              attn_fwd: float) -> tuple[float, float, dict[str, float]]:  # fmt: skip
    """(seconds per micro-batch on the critical path, bubble seconds, exposed communication per
    kind per step) under the pipeline schedule."""
    mb, frac = layout.microbatches, st.stage_fraction(m, layout)
    c = st.micro_comm(m, hw, layout, attn_fwd)
    tp_s, ep_s, cp_s, pp_s = c.tp * frac, c.ep * frac, c.cp * frac, c.pp * layout.vp
    compute = fwd + bwd + rec
    if layout.schedule == "dualpipe":
        # DualPipe pairs a forward and a backward chunk of two micro-batches so that one's
        # all-to-all and pipeline sends run under the other's computation (DeepSeek-V3 section
        # 3.2.1); what does not fit stays exposed. Bubble: (pp/2 - 1)(F&B + B - 3W) with the
        # weight-gradient half of the backward W = B/2.
        slow = st.dualpipe_slowdown(hw) if layout.ep > 1 else 1.0
        if slow > 1.0:
            sms = (slow - 1.0) * compute * mb
            parts.append(st.Part("comm", "ep_kernels_sm_share", sms, sms, "comm"))
        compute *= slow
        left = max(0.0, ep_s + pp_s - compute)
        share = ep_s / (ep_s + pp_s) if ep_s + pp_s > 0 else 0.0
        ep_s, pp_s = left * share, left * (1.0 - share)
        per_micro = compute + tp_s + cp_s + ep_s + pp_s + st.MICROBATCH_OVERHEAD_S
        bubble_s = (layout.pp / 2 - 1) * (fwd + 0.5 * bwd + rec) * slow if layout.pp > 2 else 0.0
    else:
        per_micro = compute + tp_s + ep_s + cp_s + pp_s + st.MICROBATCH_OVERHEAD_S
        bubble_s = (layout.pp - 1) / layout.vp * per_micro if layout.pp > 1 else 0.0
    for kind, sec in (("tp", tp_s), ("ep", ep_s), ("cp", cp_s), ("pp", pp_s)):
        if sec:
            parts.append(st.Part("comm", f"{kind}_collectives", sec * mb, sec * mb, "comm"))
    return per_micro, bubble_s, {"tp": tp_s * mb, "ep": ep_s * mb, "cp": cp_s * mb, "pp": pp_s * mb}


def _data_parallel(m, hw, layout: TrainLayout, parts: list, compute_micro: float,
                   bubble_s: float) -> float:  # fmt: skip
    """Exposed seconds per step of the gradient / parameter collectives."""
    mb = layout.microbatches
    overlap = st.FRAMEWORKS[layout.framework].dp_overlap
    dp_step, dp_micro, dp_kind = st.dp_comm(m, hw, layout)
    n_dp = layout.dp * layout.cp
    last_bucket = st.bucket_exposed(hw, n_dp, coll.members_per_domain(hw, n_dp, layout.tp))
    if dp_micro:  # FSDP: per micro-batch, overlapped with that micro-batch's compute
        exposed = mb * max(0.0, dp_micro - overlap * compute_micro) + last_bucket
        total = mb * dp_micro
    else:
        # gradients reduce under the last micro-batch's backward and the cooldown bubble, the
        # parameter gather under the first forward and the warmup bubble (the NIC is idle then)
        window = overlap * (compute_micro + bubble_s)
        exposed = max(0.0, dp_step - window) + (last_bucket if dp_step else 0.0)
        total = dp_step
    if total:
        parts.append(st.Part("comm", f"dp_{dp_kind}", total, exposed, "comm"))
    return exposed


def _recompute(layout: TrainLayout, fwd_s: float, elementwise: bool, name: str) -> float:
    """Forward time run again in the backward: full recomputation re-runs every operator;
    selective re-runs element-wise ops (Megatron; attention's core is recomputed inside
    FlashAttention's backward anyway) or, torchtitan's op-level policy, every second matmul."""
    if layout.recompute == "full":
        return fwd_s
    if layout.recompute == "none":
        return 0.0
    if elementwise:
        return fwd_s
    if st.FRAMEWORKS[layout.framework].selective == "half-gemms" and not name.startswith("attn"):
        return 0.5 * fwd_s
    return 0.0


def _bottleneck(parts: list, step_s: float) -> str:
    """The largest share of the step: compute (forward+backward+recompute), a communication kind,
    the pipeline bubble, the optimizer or overhead."""
    groups: dict[str, float] = {}
    for p in parts:
        key = "compute" if p.phase in ("forward", "backward", "recompute") else p.op
        groups[key] = groups.get(key, 0.0) + p.exposed_s
    key, sec = max(groups.items(), key=lambda kv: kv[1])
    return f"{key} ({sec / step_s:.0%} of the step)"
