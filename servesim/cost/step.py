"""One engine iteration's cost from batch aggregates: the one narrow call between engine and cost model.

``step_cost(ctx, role, agg)`` is pure and memoised. Per (ctx, role) a plan is built once: the
operator list of ops.py filtered to the role. Every operator except the attention kernels depends
on one row count only (tokens, sampled rows, ...), so those are evaluated (by their kind's time
function, optime.TIME_OF) once per distinct count and cached, and their summed totals once per
tuple of counts; the attention kernels are closures
with their constants bound (roofline.decode_attention_kernel / prefill_attention_kernel). A call
then costs two dictionary look-ups plus one or two kernel evaluations; ``breakdown`` takes the
general path (same arithmetic, tested to the bit).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from functools import lru_cache
from typing import Any, NamedTuple

from servesim.cost import roofline
from servesim.cost.afstep import af_step_cost, moe_imbalance  # noqa: F401  (for the engine)
from servesim.cost.ops import (
    ATTN,
    DECODE,
    PREFILL_KV,
    SAMPLED,
    TOKENS,
    ModelOps,
    Op,
    local_rows,
    merge_ops,
    model_ops,
    role_parts,
)
from servesim.cost.optime import TIME_OF, Row
from servesim.cost.optime import ZERO as _ZERO
from servesim.specs.common import SpecError
from servesim.specs.config import ROLES, Parallelism  # ROLES: the one role registry
from servesim.specs.dtypes import DTypes
from servesim.specs.engines import EngineKernels, kernels_for
from servesim.specs.hardware import HardwareSpec
from servesim.specs.model import ModelSpec


class CostContext(NamedTuple):
    """Everything fixed for one pool: hashable, built once."""

    model: ModelSpec
    hardware: HardwareSpec
    parallel: Parallelism
    dtypes: DTypes
    overhead_s: float  # per-iteration CPU/framework overhead
    moe_imbalance: float = 1.0  # slowest EP rank's routed tokens / mean (1 = uniform)
    engine: EngineKernels | None = None  # the engine's kernels (None: neutral defaults)
    redundant_experts: int = 0  # EPLB replicas over the EP ranks (their weights take memory)


def pool_context(cfg: Any, spec: Any, imbalance: float = 1.0) -> CostContext:
    """The context of one pool (``spec``) of a run config: its devices, layout and per-step
    overhead, the run's formats, the kernels its engine runs, the EPLB replicas of a MoE model;
    ``imbalance``: the slowest EP rank's routed tokens over the mean (1 = uniform)."""
    overhead = spec.overhead_s if spec.overhead_s is not None else spec.hardware.overhead_s
    return CostContext(
        cfg.model,
        spec.hardware,
        spec.parallelism,
        cfg.dtypes,
        overhead,
        imbalance,
        kernels_for(spec.scheduler.engine, spec.hardware, cfg.dtypes, spec.scheduler.max_num_seqs),
        cfg.deployment.moe_load.redundant_experts if cfg.model.num_experts else 0,
    )


class Aggregates(NamedTuple):
    """The whole batch of one step, summed (integers only)."""

    prefill_tokens: int = 0  # new prompt tokens computed this step (sum of chunk sizes c)
    prefill_seqs: int = 0  # sequences with a prefill chunk this step
    prefill_attn: int = 0  # sum over chunks of c*p + c*(c+1)//2: causal (query, key) pairs
    prefill_ctx: int = 0  # sum over chunks of p: cached tokens whose K/V are read
    decode_seqs: int = 0  # sequences decoding one token
    decode_ctx: int = 0  # sum over decoding seqs of their context length (incl. the new token)
    sampled: int = 0  # sequences that sample a token (LM head rows)


class StepCost(NamedTuple):
    """One iteration of one instance (all its devices)."""

    seconds: float  # wall time of the step incl. overhead
    flops: float  # all devices
    bytes: float  # HBM bytes, all devices
    comm_bytes: float  # bytes put on links, all devices
    compute_s: float  # parts of `seconds` by bound
    memory_s: float
    comm_s: float
    overhead_s: float
    devices: int


class OpCost(NamedTuple):
    """One operator: ``seconds`` of one instance (one layer, one device), run ``count`` times per step.

    ``flops`` and ``bytes`` are per device per instance; for collectives ``bytes`` is what the
    device puts on the link.
    """

    name: str
    count: int
    flops: float
    bytes: float
    seconds: float
    bound: str


_STEP_CACHE_MAX = 2**16
# Position of each row source's count in a plan's base key.
_KEY_INDEX = {TOKENS: 0, SAMPLED: 1, PREFILL_KV: 2, DECODE: 3}


class _Group(NamedTuple):
    rows: tuple[Row, ...]
    # totals over the group, counts and devices applied: compute, memory, comm, other seconds,
    # flops, HBM bytes, link bytes
    totals: tuple[float, float, float, float, float, float, float]


class _Plan:
    """The per-(ctx, role) constants: operators by row source, caches of their evaluated rows."""

    __slots__ = (
        "ctx",
        "mo",
        "ops",
        "by_src",
        "caches",
        "attn",
        "attn_kw",
        "windowed",
        "stage",
        "scaleout",
        "cache",
        "base",
        "key_srcs",
        "attn_fast",
        "consts",
        "scale",
        "eager_kernels",
        "moe_scale",
        "tbo",
        "host_overlap",
        "decode_fns",
        "pad",
    )

    def __init__(self, ctx: CostContext, role: str):
        if role not in ROLES:
            raise SpecError("cost", "role", role, "must be one of " + ", ".join(ROLES))
        eng = ctx.engine
        mo: ModelOps = model_ops(
            ctx.model,
            ctx.dtypes,
            ctx.parallel,
            rope_fused=bool(eng and eng.rope_fused),
            moe_comm=eng.moe_comm if eng else "alltoall",
            redundant_experts=ctx.redundant_experts,
        )
        parts = role_parts(role)
        self.ctx, self.mo = ctx, mo
        # the role's operators; the same operator in both parts (a TP all-reduce) is one row
        self.ops = merge_ops((op for op in mo.ops if op.part in parts), across_parts=True)
        untimed = {o.kind for o in self.ops if o.m_src != ATTN and o.kind not in TIME_OF}
        if untimed:  # a new kind needs its time function (docs/internals.md)
            raise AssertionError(f"no time function in cost/optime.py for kinds {sorted(untimed)}")
        self.stage = mo.stage_devices
        self.scaleout = _stage_sends_crossing(mo.stage_devices, mo.pp, ctx.hardware.scaleup_devices)
        self.by_src = {
            src: tuple(o for o in self.ops if o.m_src == src)
            for src in (TOKENS, SAMPLED, PREFILL_KV, DECODE)
        }
        self.by_src = {s: ops for s, ops in self.by_src.items() if ops}
        self.caches: dict[str, dict[int, _Group]] = {s: {} for s in self.by_src}
        self.attn = tuple(o for o in self.ops if o.kind in ("attn_prefill", "attn_decode"))
        self.attn_kw = tuple(_attn_kwargs(o) for o in self.attn)
        self.windowed: dict[tuple[str, int], Row] = {}
        self.cache: dict[Aggregates, StepCost] = {}
        # totals of every operator but the attention kernels, per tuple of row counts
        self.base: dict[tuple[int, int, int, int], tuple] = {}
        self.key_srcs = tuple(src in self.by_src for src in (SAMPLED, PREFILL_KV, DECODE))
        hw = ctx.hardware
        # per attention kernel, the constants of the hot path, bound once
        self.attn_fast = tuple(
            (op, op.kind == "attn_prefill", kw, op.count, op.window,
             roofline.prefill_attention_kernel(hw, dtype=op.attn_dtype)
             if op.kind == "attn_prefill" else roofline.decode_attention_kernel(hw, **kw),
             op.kv_tok_bytes, op.qo_tok_bytes, op.q_heads, op.qk_dim + op.v_dim)
            for op, kw in zip(self.attn, self.attn_kw)
        )  # fmt: skip
        self.consts = (mo.dp_attn, self.stage, ctx.overhead_s, mo.devices)
        # engine attention backend: time factors on the fitted kernels (1 without an engine)
        self.scale = {
            "attn_prefill": eng.attn_prefill_scale if eng else 1.0,
            "attn_decode": eng.attn_decode_scale if eng else 1.0,
        }
        # kernels per step launched from the host when a step is not captured in a CUDA graph
        self.eager_kernels = _eager_kernels(self.ops, eng)
        self.moe_scale = eng.moe_scale if eng else 1.0  # the engine's MoE kernel
        self.tbo = bool(eng and eng.two_batch_overlap)
        self.host_overlap = bool(eng and eng.host_overlap)  # overlap scheduler (engines.py)
        self.decode_fns: dict[int, object] = {}  # decode-only batch size -> decode_fn(n)
        # CUDA-graph padding (engine +pad): decode-only rows -> the captured size's rows
        self.pad = _graph_pad(eng.graph_sizes, mo.dp_attn) if eng and eng.graph_sizes else None

    # -- rows that depend on one row count -------------------------------------------------
    def group(self, src: str, m: int) -> _Group:
        cache = self.caches[src]
        g = cache.get(m)
        if g is None:
            rows = tuple(self._row(op, m) for op in self.by_src[src])
            g = cache[m] = _Group(rows, self._totals(self.by_src[src], rows))
        return g

    def _totals(self, ops, rows) -> tuple:
        c = mem = k = o = f = b = cb = 0.0
        for op, (fl, by, s, bound, link) in zip(ops, rows):
            t = op.count * s
            if bound == "compute":
                c += t
            elif bound == "memory":
                mem += t
            elif bound == "comm":
                k += t
            else:
                o += t
            f += op.count * fl
            if link:
                cb += op.count * link
            else:
                b += op.count * by
        return (c, mem, k, o, f * self.stage, b * self.stage, cb * self.stage)

    def _row(self, op: Op, m: int) -> Row:
        # every kind but attention depends on one row count: one time function per kind
        return TIME_OF[op.kind](self, op, m) if m > 0 else _ZERO

    # -- attention kernels: evaluated every call ------------------------------------------
    def attention_rows(self, agg: Aggregates) -> list[Row]:
        out = []
        for op, kw in zip(self.attn, self.attn_kw):
            if op.kind == "attn_prefill":
                out.append(self._prefill_row(op, kw, agg) if agg.prefill_seqs > 0 else _ZERO)
                continue
            if agg.decode_seqs <= 0:
                out.append(_ZERO)
                continue
            dp = self.mo.dp_attn
            seqs = local_rows(agg.decode_seqs, dp)
            pairs = agg.decode_ctx / dp
            if op.window and pairs >= seqs * op.window:
                # every sequence is past its window: the row depends on the batch size only
                row = self.windowed.get((op.name, seqs))
                if row is None:
                    row = self._decode_row(op, kw, seqs, seqs * op.window)
                    self.windowed[(op.name, seqs)] = row
                out.append(row)
            else:
                out.append(self._decode_row(op, kw, seqs, pairs))
        return out

    def _prefill_row(self, op: Op, kw: dict, agg: Aggregates) -> Row:
        dp = self.mo.dp_attn
        new, pairs, ctxt = agg.prefill_tokens / dp, agg.prefill_attn / dp, agg.prefill_ctx / dp
        seqs = local_rows(agg.prefill_seqs, dp)
        if op.window:
            pairs = min(pairs, new * op.window)
            ctxt = min(ctxt, seqs * op.window)
        byt = (ctxt + new) * op.kv_tok_bytes + new * op.qo_tok_bytes
        fl = 2.0 * pairs * op.q_heads * (op.qk_dim + op.v_dim)
        kw = dict(kw, tokens=new, pairs=pairs, causal_pairs=_causal_pairs(agg, pairs, dp))
        t = roofline.attention_time(self.ctx.hardware, fl, byt, "prefill", seqs=seqs, **kw)
        return (fl, byt, t.seconds * self.scale["attn_prefill"], t.bound, 0.0)

    def _decode_row(self, op: Op, kw: dict, seqs: int, pairs: float) -> Row:
        byt = pairs * op.kv_tok_bytes + seqs * op.qo_tok_bytes
        fl = 2.0 * pairs * op.q_heads * (op.qk_dim + op.v_dim)
        # the true keys per sequence (MLA's FLOPs per pair are not 4 x head_dim)
        t = roofline.attention_time(
            self.ctx.hardware, fl, byt, "decode", seqs=seqs, pairs=pairs, **kw
        )
        return (fl, byt, t.seconds * self.scale["attn_decode"], t.bound, 0.0)

    # -- the step ---------------------------------------------------------------------------
    def groups(self, agg: Aggregates) -> list[tuple[str, _Group]]:
        out = []
        ds = agg.decode_seqs
        decode_only = agg.prefill_seqs == 0 and agg.prefill_tokens == 0 and ds > 0
        padded = self.pad(ds) if self.pad and decode_only else 0
        for src in self.by_src:
            if src == TOKENS:
                m = padded or agg.prefill_tokens + agg.decode_seqs
            elif src == SAMPLED:
                m = padded or agg.sampled
            elif src == PREFILL_KV:
                m = agg.prefill_tokens + agg.prefill_ctx
            else:
                m = padded or agg.decode_seqs
            out.append((src, self.group(src, m)))
        return out

    def _base(self, key: tuple[int, int, int, int]) -> tuple:
        """Totals over the row-count operators, summed group by group in plan order."""
        c = mem = k = o = f = b = cb = 0.0
        for src in self.by_src:
            m = key[_KEY_INDEX[src]]
            gc, gm, gk, go, gf, gb, gcb = self.group(src, m).totals
            c += gc
            mem += gm
            k += gk
            o += go
            f += gf
            b += gb
            cb += gcb
        if len(self.base) >= _STEP_CACHE_MAX:
            self.base.clear()
        res = self.base[key] = (c, mem, k, o, f, b, cb)
        return res

    def cost(self, agg: Aggregates) -> StepCost:
        hit = self.cache.get(agg)
        if hit is not None:
            return hit
        res = self._plain(agg)
        if self.tbo and res.comm_s > 0.0 and agg[4] + agg[1] >= 2:
            res = self._two_batch(agg, res)
        if self.host_overlap:
            res = _hide_host(res, self.consts[2])
        if len(self.cache) >= _STEP_CACHE_MAX:
            self.cache.clear()
        self.cache[agg] = res
        return res

    def _two_batch(self, agg: Aggregates, whole: StepCost) -> StepCost:
        """Two-batch overlap (SGLang --enable-two-batch-overlap, DeepEP): the batch runs as two
        micro-batches, the communication of one under the computation of the other. Each
        micro-batch is costed as a step of its own (so weights are read twice); the pipeline of
        two takes 2 max(C, K) + min(C, K) for per-micro-batch compute C and communication K."""
        h = self._plain(_half(agg))
        ovh = self.consts[2]
        comp = h.compute_s + h.memory_s + (h.overhead_s - ovh)
        gpu = 2.0 * max(comp, h.comm_s) + min(comp, h.comm_s)
        busy = 2.0 * comp
        return whole._replace(
            seconds=gpu + ovh,
            compute_s=2.0 * h.compute_s,
            memory_s=2.0 * h.memory_s,
            comm_s=gpu - busy,
            overhead_s=2.0 * (h.overhead_s - ovh) + ovh,
        )

    def _plain(self, agg: Aggregates) -> StepCost:
        pt, ps, pa, pc, ds, dc, sampled = agg
        use_s, use_pkv, use_dec = self.key_srcs
        rows, srows = pt + ds, sampled
        if ps == 0 and pt == 0 and self.pad is not None and ds > 0:  # padded CUDA graph rows
            rows = srows = self.pad(ds)
        key = (rows, srows if use_s else 0, pt + pc if use_pkv else 0, rows - pt if use_dec else 0)
        base = self.base.get(key)
        if base is None:
            base = self._base(key)
        c, mem, k, o, f, b, cb = base
        dp, stage, overhead_s, devices = self.consts
        pscale, dscale = self.scale["attn_prefill"], self.scale["attn_decode"]
        for op, is_prefill, kw, count, window, kernel, kv_tok, qo_tok, qh, qkv in self.attn_fast:
            # a kernel with no sequences contributes exact zeros: skipped
            if is_prefill:
                if ps <= 0:
                    continue
                new, pairs, ctxt = pt / dp, pa / dp, pc / dp
                seqs = ps if dp == 1 else math.ceil(ps / dp)
                if window:
                    pairs = min(pairs, new * window)
                    ctxt = min(ctxt, seqs * window)
                by = (ctxt + new) * kv_tok + new * qo_tok
                fl = 2.0 * pairs * qh * qkv
                if pairs > 0.0:
                    causal = min(pairs, new * (new + 1) / 2.0)  # as _causal_pairs
                    s, bound = kernel(fl, by, seqs, new, pairs, causal)
                    s *= pscale
                else:  # the general kernel model derives pairs from the FLOPs
                    fl, by, s, bound, _ = self._prefill_row(op, kw, Aggregates(*agg))
            else:
                if ds <= 0:
                    continue
                seqs = ds if dp == 1 else math.ceil(ds / dp)
                pairs = dc / dp
                if window and pairs >= seqs * window:
                    # every sequence is past its window: the row depends on the batch size only
                    row = self.windowed.get((op.name, seqs))
                    if row is None:
                        row = self._decode_row(op, kw, seqs, seqs * window)
                        self.windowed[(op.name, seqs)] = row
                    fl, by, s, bound, _ = row
                else:
                    by = pairs * kv_tok + seqs * qo_tok
                    fl = 2.0 * pairs * qh * qkv
                    s, bound = kernel(fl, by, seqs, pairs)
                    s *= dscale
            t = count * s
            if bound == "compute":
                c += t
            elif bound == "memory":
                mem += t
            else:
                o += t
            f += count * fl * stage
            b += count * by * stage
        ovh = o + overhead_s
        gpu = c + mem + k + o
        if ps > 0 and self.eager_kernels:
            # a step with prefill runs (partly) eagerly: the host launches kernels while the GPU
            # works, so host time only shows when it exceeds the GPU time
            ovh += max(0.0, self.eager_kernels - gpu)
        return StepCost(c + mem + k + ovh, f, b, cb, c, mem, k, ovh, devices)

    def breakdown(self, agg: Aggregates) -> list[OpCost]:
        rows: dict[Op, Row] = {}
        for src, g in self.groups(agg):
            rows.update(zip(self.by_src[src], g.rows))
        rows.update(zip(self.attn, self.attention_rows(agg)))
        return [OpCost(op.name, op.count, *rows[op][:4]) for op in self.ops]


def _hide_host(res: StepCost, host: float) -> StepCost:
    """An engine that prepares the next step on the host while the GPU runs this one (overlap
    scheduler) shows its per-step host time only where it exceeds the step's GPU time."""
    hidden = min(host, res.seconds - host)
    return res._replace(seconds=res.seconds - hidden, overhead_s=res.overhead_s - hidden)


def _half(agg: Aggregates) -> Aggregates:
    """The larger of two micro-batches of a step, split by sequence (sizes rounded up)."""
    pt, ps, pa, pc, ds, dc, sampled = agg
    return Aggregates(
        -(-pt // 2), -(-ps // 2), -(-pa // 2), -(-pc // 2), -(-ds // 2), -(-dc // 2),
        -(-sampled // 2),
    )  # fmt: skip


def _graph_pad(sizes: tuple[int, ...], dp: int):
    """``n -> rows`` of a decode-only step of ``n`` sequences run in a padded CUDA graph: every
    attention-DP rank runs the graph of the smallest captured size >= its share (the ranks
    agree on one size), dummy rows included; above the largest size the step runs unpadded."""
    top = sizes[-1]

    def pad(n: int) -> int:
        local = n if dp == 1 else -(-n // dp)
        if local > top:
            return n
        return sizes[bisect_left(sizes, local)] * dp

    return pad


def _eager_kernels(ops, eng: EngineKernels | None) -> float:
    """Host seconds to launch the kernels of a step that is not captured in a CUDA graph: all of
    them (no graphs for mixed steps), or the attention kernels only (piecewise graphs)."""
    if eng is None:
        return 0.0
    if eng.mixed_graph == "piecewise":
        n = sum(op.count for op in ops if op.kind in ("attn_prefill", "attn_decode"))
    else:
        n = sum(op.count * max(1, len(op.dims)) for op in ops)
    return n * eng.host_launch_s


def _stage_sends_crossing(stage: int, pp: int, domain: int) -> int:
    """Pipeline sends (of pp - 1) between stages that do not share a scale-up domain, with the
    stages' ``stage`` devices each laid out in order over domains of ``domain`` devices."""
    return sum((i * stage) // domain != ((i + 2) * stage - 1) // domain for i in range(pp - 1))


def _causal_pairs(agg: Aggregates, pairs: float, dp: int) -> float:
    """An estimate of this batch's causal (new x new) pairs: min(all pairs, T(T+1)/2) for T new
    tokens. Exact for one chunk, or for chunks without cached context; otherwise an upper bound.
    Non-decreasing in every aggregate, so a bigger batch never looks cheaper."""
    t = agg.prefill_tokens / dp
    return min(pairs, t * (t + 1) / 2.0)


def _attn_kwargs(op: Op) -> dict:
    return dict(q_heads=op.q_heads, kv_heads=op.kv_heads, head_dim=op.head_dim, dtype=op.attn_dtype)


@lru_cache(maxsize=1024)
def _plan_by_value(ctx: CostContext, role: str) -> _Plan:
    return _Plan(ctx, role)


# Hashing a CostContext hashes every field of the model and hardware specs; the engine passes the
# same context object every step, so an identity look-up skips that. Holding `ctx` keeps its id
# from being reused while the entry lives.
_BY_ID: dict[tuple[int, str], tuple[CostContext, _Plan]] = {}


def _plan(ctx: CostContext, role: str) -> _Plan:
    hit = _BY_ID.get((id(ctx), role))
    if hit is not None and hit[0] is ctx:
        return hit[1]
    plan = _plan_by_value(ctx, role)
    if len(_BY_ID) >= 1024:
        _BY_ID.clear()
    _BY_ID[(id(ctx), role)] = (ctx, plan)
    return plan


def step_cost(ctx: CostContext, role: str, agg: Aggregates) -> StepCost:
    """Wall time, FLOPs, bytes and link bytes of one step of one instance; memoised on (ctx, role, agg)."""
    return _plan(ctx, role).cost(agg)


def breakdown(ctx: CostContext, role: str, agg: Aggregates) -> list[OpCost]:
    """Per-operator costs of the same step (same formulas): sum(count*seconds) + overhead == seconds."""
    return _plan(ctx, role).breakdown(agg)


def clear_caches() -> None:
    """Drop every memoised plan, step and operator list (tests, after editing a profile in place,
    or after adding an operator at run time)."""
    from servesim.cost.afstep import af_link

    _BY_ID.clear()
    _plan_by_value.cache_clear()
    model_ops.cache_clear()
    af_link.cache_clear()
