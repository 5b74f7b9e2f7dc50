"""A training layout: how devices split a model (TP, PP with virtual stages, DP, CP, EP), the
batch, recomputation, ZeRO stage and precision; validated once, with one clear error per problem."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from servesim.specs.common import SpecError
from servesim.specs.model import ModelSpec

RECOMPUTE = ("none", "selective", "full")
ZERO = ("0", "1", "2", "3", "fsdp")
# Training precisions: the GEMM format; master weights, gradients reduction and optimizer states
# follow the mixed-precision recipe (FP32 master + Adam moments, BF16 gradients).
TRAIN_DTYPES = ("bf16", "fp16", "fp8", "fp8-block", "nvfp4")
FRAMEWORKS = ("megatron", "megatron-legacy", "torchtitan")
SCHEDULES = ("1f1b", "dualpipe")  # 1f1b is interleaved when vp > 1


@dataclass(frozen=True, slots=True)
class TrainLayout:
    devices: int
    tp: int = 1
    pp: int = 1
    dp: int = 1
    cp: int = 1
    ep: int = 1
    vp: int = 1
    seq_len: int = 4096
    global_batch: int = 1  # sequences per optimizer step
    micro_batch: int = 1  # sequences per micro-batch per DP rank
    recompute: str = "selective"
    zero: str = "1"  # 3 and fsdp are the same sharding
    dtype: str = "bf16"
    optimizer_bytes: float = 12.0  # Adam: fp32 master + m + v per parameter (16 with fp32 grads)
    sequence_parallel: bool = True  # Megatron SP: norms/dropout split over TP, AG/RS instead of AR
    framework: str = "megatron"  # kernel and overlap choices (servesim.training.step.FRAMEWORKS)
    schedule: str = "1f1b"

    @property
    def microbatches(self) -> int:
        """Micro-batches per DP rank per step (gradient accumulation x pipeline fill)."""
        return self.global_batch // (self.dp * self.micro_batch)

    @property
    def zero_stage(self) -> int:
        return 3 if self.zero == "fsdp" else int(self.zero)

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch * self.seq_len


def _int(value, field: str, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(where, field, value, f"must be a whole number >= {minimum}")
    return value


def make_layout(
    model: ModelSpec,
    *,
    devices: int | None,
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
    optimizer_bytes: float = 12.0,
    framework: str = "megatron",
    schedule: str = "1f1b",
    where: str = "train",
) -> TrainLayout:
    """Validate and complete a layout: dp is devices / (tp x pp x cp) unless given; EP is carved
    out of the DP x CP ranks of each stage (Megatron-Core's expert parallel groups)."""
    for name, v in (("tp", tp), ("pp", pp), ("cp", cp), ("ep", ep), ("vp", vp),
                    ("seq_len", seq_len), ("global_batch", global_batch),
                    ("micro_batch", micro_batch)):  # fmt: skip
        _int(v, name, where)
    model_par = tp * pp * cp
    if devices is None and dp is None:
        raise SpecError(where, "devices", None, "give devices (or --gpus) or dp")
    if devices is not None:
        _int(devices, "devices", where)
        if devices % model_par:
            raise SpecError(where, "devices", devices,
                            f"must be a multiple of tp x pp x cp = {model_par}")  # fmt: skip
        if dp is None:
            dp = devices // model_par
    dp = _int(dp, "dp", where)
    if devices is None:
        devices = dp * model_par
    if dp * model_par != devices:
        raise SpecError(
            where, "dp", dp, f"tp x pp x cp x dp = {dp * model_par} != devices {devices}"
        )
    zero = str(zero).lower()
    if zero not in ZERO:
        raise SpecError(where, "zero", zero, "must be one of 0, 1, 2, 3, fsdp")
    if recompute not in RECOMPUTE:
        raise SpecError(where, "recompute", recompute, "must be one of " + ", ".join(RECOMPUTE))
    if dtype not in TRAIN_DTYPES:
        raise SpecError(where, "dtype", dtype, "must be one of " + ", ".join(TRAIN_DTYPES))
    if framework not in FRAMEWORKS:
        raise SpecError(where, "framework", framework, "must be one of " + ", ".join(FRAMEWORKS))
    if schedule not in SCHEDULES:
        raise SpecError(where, "schedule", schedule, "must be one of " + ", ".join(SCHEDULES))
    if schedule == "dualpipe" and (pp < 2 or pp % 2 or vp > 1):
        raise SpecError(where, "schedule", schedule, "dualpipe needs an even pp >= 2 and vp 1")
    _check_model(model, tp=tp, pp=pp, vp=vp, cp=cp, ep=ep, dp=dp, seq_len=seq_len, where=where)
    if global_batch % (dp * micro_batch):
        raise SpecError(where, "global_batch", global_batch,
                        f"must be a multiple of dp x micro_batch = {dp * micro_batch}")  # fmt: skip
    if not optimizer_bytes > 0:
        raise SpecError(where, "optimizer_bytes", optimizer_bytes, "must be > 0")
    return TrainLayout(
        devices=devices, tp=tp, pp=pp, dp=dp, cp=cp, ep=ep, vp=vp, seq_len=seq_len,
        global_batch=global_batch, micro_batch=micro_batch, recompute=recompute, zero=zero,
        dtype=dtype, optimizer_bytes=float(optimizer_bytes), framework=framework,
        schedule=schedule, sequence_parallel=framework != "megatron-legacy",
    )  # fmt: skip


def _check_model(model: ModelSpec, *, tp: int, pp: int, vp: int, cp: int, ep: int, dp: int,
                 seq_len: int, where: str) -> None:  # fmt: skip
    """The degrees must split the model: heads by TP, layers by PP x VP, the sequence by CP,
    the experts by EP (carved out of DP x CP)."""
    if model.num_heads % tp:
        raise SpecError(where, "tp", tp, f"must divide the {model.num_heads} attention heads")
    kvh = model.num_kv_heads
    if model.attention != "mla" and kvh % tp and tp % kvh:
        raise SpecError(where, "tp", tp, f"must divide the {kvh} KV heads or be a multiple")
    if pp > model.num_layers:
        raise SpecError(where, "pp", pp, f"must be <= the {model.num_layers} layers")
    if vp > 1 and (pp == 1 or pp * vp > model.num_layers):
        raise SpecError(where, "vp", vp,
                        f"needs pp > 1 and pp x vp <= the {model.num_layers} layers")  # fmt: skip
    if seq_len % cp or (cp > 1 and (seq_len // cp) % 2):
        raise SpecError(where, "cp", cp, f"must split seq_len {seq_len} into even chunks")
    if ep > 1:
        if not model.is_moe:
            raise SpecError(where, "ep", ep, f"must be 1: {model.name} has no experts")
        if model.num_experts % ep:
            raise SpecError(where, "ep", ep, f"must divide the {model.num_experts} experts")
        if (dp * cp) % ep:
            raise SpecError(where, "ep", ep, f"must divide dp x cp = {dp * cp}")


# The layout arguments (make_layout's keywords); servesim.train takes the same, with the same
# defaults, and hands them on (tests/unit/test_train.py checks the two signatures agree).
LAYOUT_ARGS = tuple(
    p for p in inspect.signature(make_layout).parameters if p not in ("model", "where")
)
