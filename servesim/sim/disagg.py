"""Disaggregated pools: prefill -> KV link -> decode, and attention/FFN.

Prefill/decode (DistServe, Splitwise, Dynamo, llm-d):
- a prefill instance runs its own scheduler over prompts only (chunked under the token budget as
  the policy says); when a prompt is done it samples the first token and hands the request to its
  link; the request's KV blocks stay held on the prefill instance until the transfer ends;
- each prefill instance has one KV link to the decode pool: every device of the instance sends its
  TP/PP shard in parallel over its own link of ``kv_link.bandwidth_GBps`` (a NIC per GPU), so the
  instance sends at ``bandwidth x tp x pp``. Transfers that overlap queue FIFO on the link (one at a
  time at full bandwidth; the wait is recorded). The bytes are the prompt tokens x the model's KV
  bytes per token (all layers, unsharded);
- with ``streaming`` the KV leaves layer by layer while the last prefill step runs: the transfer
  may start at that step's start and ends no earlier than one layer's share after the step's end;
- at the end of the transfer the decode router places the request on a decode instance with free
  blocks for it (the configured router when its pick has room, else the least loaded one with room,
  else the router's pick, where it queues). Decode instances admit arrivals ahead of nothing: a
  request preempted there is recomputed locally and has priority; they batch, grow and preempt
  exactly as colocated instances do.
- TTFT: the first token is sampled at the end of the prefill but reaches the user with the
  hand-off, when the KV has arrived (the serving front-end streams from the decode instance, as
  vLLM's disaggregated proxy does). So per request TTFT = prefill done - arrival + KV transfer time
  (``kv_transfer_s``: prefill end to arrival of the last byte), and TTFT >= prefill + transfer.
  A request with one output token finishes in the prefill pool.

Attention/FFN (MegaScale-Infer, Step-3): attention instances are decode instances whose step time
comes from ``cost.step.af_step_cost`` (three stage times and m micro-batches, with fill and drain).
The FFN pool runs no scheduler: its F instances serve the A attention instances in lock-step, each
taking A/F attention instances' tokens per micro-batch; its step-log rows hold its busy time for
every attention step (on the FFN instances paired with that attention instance), so per-pool
utilisation, MFU and energy count it.
"""

from __future__ import annotations

import math
from collections import deque
from heapq import heappop, heappush
from typing import Any

from servesim.sim.events import INF, NORMAL, at
from servesim.sim.instance import Instance
from servesim.sim.kvcache import KVCache
from servesim.sim.pools import ColocatedPool, InstanceInfo
from servesim.sim.request import WAITING
from servesim.specs.common import SpecError
from servesim.specs.rules import validate_af_pools

# One row per hand-off. wait_s: queued behind other transfers on the link; busy_s: time the link
# carried this transfer; decode_queue_s: arrival at the decode pool to admission there.
TRANSFER_COLUMNS = (
    "request_id",
    "prefill_instance",
    "decode_instance",
    "bytes",
    "start_s",
    "end_s",
    "wait_s",
    "busy_s",
    "decode_queue_s",
)


class KVLink:
    """The KV link of one prefill instance: FIFO, one transfer at a time at full bandwidth."""

    __slots__ = ("bw", "lat", "streaming", "layers", "free_at", "busy_s")

    def __init__(self, bytes_per_s: float, latency_s: float, streaming: bool, layers: int):
        self.bw = bytes_per_s
        self.lat = latency_s
        self.streaming = streaming
        self.layers = layers
        self.free_at = 0.0
        self.busy_s = 0.0

    def send(self, nbytes: float, step_start: float, step_end: float) -> tuple[float, float, float]:
        """(start, end, busy) of a transfer of ``nbytes`` whose prefill ran from step_start to
        step_end; busy is the time it occupies the link."""
        ser = nbytes / self.bw if self.bw != INF else 0.0
        if self.streaming:
            start = max(step_start, self.free_at)
            done = max(start + ser, step_end + ser / self.layers)
        else:
            start = max(step_end, self.free_at)
            done = start + ser
        self.free_at = done
        self.busy_s += ser
        return start, done + self.lat, ser


# ------------------------------------------------------------------------------ instances


class PrefillInstance(Instance):
    """Prefills only; hands every request over to its pool after the first token."""

    step_start = 0.0

    def enqueue(self, r: Any) -> None:
        if not self.check_request(r, r.prompt, "prefill instance", "max_input"):
            return
        r.instance = self.id
        r.prefill_instance = self.id
        was_idle = self.idle
        self.queue(r, r.prompt + 1)
        if was_idle:
            self.busy_until = self.env.now  # about to start: bounds decode fast-forwarding

    def apply(self, batch, start, end, cost, agg) -> None:
        self.step_start = start
        super().apply(batch, start, end, cost, agg)

    def prefill_done(self, r: Any, now: float) -> None:
        r.generated += 1
        self.kvm.publish_prefix(r)
        if r.generated >= r.output:
            r.first_token_s = now
            self.finish(r, now)
            return
        # the KV stays in this instance's blocks until the transfer ends (the decode side reads
        # it from here, as vLLM's NIXL connector, Mooncake and DistServe do); see PrefillPool._land
        self.held += 1
        r.state = WAITING
        self.sink.handoff(self, r, self.step_start, now)


class DecodeInstance(Instance):
    """Takes requests whose KV arrived over the link; otherwise a colocated instance. Landed
    requests are admitted by its ``intake`` before each scheduling decision; then its policy
    decides as on a colocated instance."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.landing: deque = deque()
        self.intake = self.admit_landed

    def land(self, r: Any) -> None:
        need = self.kv.blocks_for(r.prompt + r.output - 1)
        if need > self.kv.total:
            self.sink.fail(
                SpecError(
                    "workload",
                    "request",
                    f"#{r.id}: {r.prompt} prompt + {r.output} output tokens",
                    f"needs {need} KV blocks, more than decode instance {self.id} has "
                    f"({self.kv.total}); clip lengths or give the decode pool more memory",
                )
            )
        r.instance = self.id
        self.landing.append(r)
        self.sink.landed[r.id] = self.env.now
        self.load += r.output - r.generated
        self.wake_up()

    def _landing_blocks(self, r: Any) -> tuple[int, int]:
        """(blocks to hold now, blocks admission requires): its KV, plus the next token's growth,
        or with ``reserve`` the KV of the whole output."""
        kv = self.kv
        if self.reserve:
            need = kv.blocks_for(r.target + r.output - r.generated - 1)
            return need, need
        return kv.blocks_for(r.target), kv.blocks_for(r.target + 1)

    def room_for(self, r: Any) -> bool:
        """Whether ``r`` would be admitted now: nothing queued ahead of it, a free seat, and its
        blocks (as ``next_batch`` counts them) fit."""
        if self.waiting or self.landing:
            return False
        if self.max_seqs is not None and self.n_running >= self.max_seqs:
            return False
        return self._landing_blocks(r)[1] + self.decode_blocks_needed() <= self.kv.available

    def admit_landed(self) -> None:
        """Landed requests join the decode set in landing order while a seat and their blocks
        (plus the decode set's next growth) are free and no preempted request waits."""
        kv = self.kv
        while self.landing and not self.waiting:
            if self.max_seqs is not None and self.n_running >= self.max_seqs:
                break
            r = self.landing[0]
            need, admit = self._landing_blocks(r)
            if admit + self.decode_blocks_needed() > kv.available:
                break
            self.landing.popleft()
            kv.allocate(need)
            r.blocks = need
            r.reserved = self.reserve
            r.computed = r.target
            r.seq = self.next_seq
            self.next_seq += 1
            self.dec.join(r)
            self.sink.admitted(r, self.env.now)


class FFNInstance:
    """An FFN/expert instance: no queue, no KV; only what the step log reads."""

    __slots__ = ("id", "kv", "waiting", "prefilling", "n_dec", "load", "busy_until", "steps")

    def __init__(self, iid: int):
        self.id = iid
        self.kv = KVCache(0, 16)
        self.waiting: deque = deque()
        self.prefilling: list = []
        self.n_dec = 0
        self.load = 0
        self.busy_until = INF
        self.steps = 0

    @property
    def n_running(self) -> int:
        return 0


# ------------------------------------------------------------------------------ pools


def moe_imbalance_of(cfg: Any, spec: Any) -> float:
    """The expert-load imbalance of a pool's EP group under the deployment's ``moe_load``."""
    load = getattr(cfg.deployment, "moe_load", None)
    if load is None or not cfg.model.num_experts:
        return 1.0
    from servesim.cost import moe_imbalance

    return moe_imbalance(
        cfg.model.num_experts, spec.parallelism.ep, load.distribution, load.zipf_s, load.factor,
        load.redundant_experts,
    )  # fmt: skip


def _kv_bytes_per_token(cfg: Any) -> float:
    from servesim.cost import kv_bytes_per_token

    return kv_bytes_per_token(cfg.model, cfg.dtypes)


class PrefillPool(ColocatedPool):
    """Prefill instances, their KV links, and the hand-off to the decode (or attention) pool."""

    role = "prefill"
    instance_class = PrefillInstance

    def reserves_output(self, s: Any) -> bool:
        return False  # the output is generated on the decode side

    pipelined = False  # its KV links are per instance: pp keeps one batch through all stages

    def __init__(self, cluster: Any, spec: Any, *args: Any):
        super().__init__(cluster, spec, *args)
        cfg = cluster.cfg
        link = cfg.deployment.kv_link
        hw = spec.hardware
        bw_GBps = link.bandwidth_GBps if link is not None else hw.scaleout_bw_GBps
        lat_us = link.latency_us if link is not None else hw.scaleout_latency_us
        streaming = bool(link is not None and link.streaming)
        shards = spec.parallelism.tp * spec.parallelism.pp
        bw = bw_GBps * 1e9 * shards
        layers = cfg.model.num_layers
        self.links = [KVLink(bw, lat_us * 1e-6, streaming, layers) for _ in self.instances]
        self.kv_per_token = _kv_bytes_per_token(cfg)
        self.rows: dict[str, list] = {k: [] for k in TRANSFER_COLUMNS}
        self.pending: list[tuple[float, int]] = []  # (transfer end, request id) in flight
        self.next: Any = None  # the pool that decodes
        cluster.horizon_sources.append(self.horizon_for)

    def start(self) -> None:
        roles = {p.role: p for p in self.cluster.pools}
        self.next = roles.get("decode") or roles.get("attention")
        if self.next is None:
            self.fail(SpecError(self.cluster.cfg.source, "deployment.pools", "prefill",
                                "a prefill pool needs a decode or attention pool"))  # fmt: skip
        super().start()

    def handoff(self, inst: Any, r: Any, step_start: float, step_end: float) -> None:
        nbytes = r.prompt * self.kv_per_token
        start, end, busy = self.links[inst.id - self.instances[0].id].send(
            nbytes, step_start, step_end
        )
        r.kv_transfer_s = end - step_end
        r.first_token_s = end
        rows = self.rows
        rows["request_id"].append(r.id)
        rows["prefill_instance"].append(inst.id)
        rows["bytes"].append(nbytes)
        rows["start_s"].append(start)
        rows["end_s"].append(end)
        rows["wait_s"].append(start - (step_start if self.links[0].streaming else step_end))
        rows["busy_s"].append(busy)
        heappush(self.pending, (end, r.id))
        ev = at(self.cluster.env, end, NORMAL)
        ev.callbacks.append(lambda _ev, r=r: self._land(r))

    def _land(self, r: Any) -> None:
        heappop(self.pending)
        inst = self.instances[r.prefill_instance - self.instances[0].id]
        inst.kvm.release(r)  # the transfer is done: the prefill side's blocks are free again
        inst.held -= 1
        r.keys = None  # prefix keys belong to the prefill instance's block size
        if inst.idle and inst.waiting:  # it may have stalled on KV that was held for transfers
            inst.idle = False
            inst.busy_until = self.cluster.env.now
            inst.wake.succeed()
        self.next.submit(r)

    def horizon_for(self, inst: Any) -> float:
        """Earliest hand-off that could reach a decode instance: a transfer in flight or the
        end of a prefill step (its transfer ends no earlier)."""
        if inst.sink is not self.next:
            return INF
        h = self.pending[0][0] if self.pending else INF
        for x in self.instances:
            if x.busy_until < h:
                h = x.busy_until
        return h

    def transfers(self) -> dict[str, Any]:
        import numpy as np

        rows = dict(self.rows)
        ids = rows["request_id"]
        placed = self.next.placed
        rows["decode_instance"] = [placed.get(i, (-1, -1.0))[0] for i in ids]
        rows["decode_queue_s"] = [placed.get(i, (-1, -1.0))[1] for i in ids]
        types = {"request_id": np.int64, "prefill_instance": np.int64, "decode_instance": np.int64}
        return {k: np.asarray(rows[k], dtype=types.get(k, np.float64)) for k in TRANSFER_COLUMNS}

    def link_busy_s(self) -> float:
        return sum(x.busy_s for x in self.links)


class DecodePool(ColocatedPool):
    """Decode instances fed by a prefill pool's hand-offs."""

    role = "decode"
    instance_class = DecodeInstance
    pipelined = False  # pp keeps one batch in flight through all stages

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.landed: dict[int, float] = {}  # request id -> time its KV arrived (until admitted)
        self.placed: dict[int, tuple[int, float]] = {}  # request id -> (instance, decode queue s)

    def admitted(self, r: Any, now: float) -> None:
        self.placed[r.id] = (r.instance, now - self.landed.pop(r.id))

    def submit(self, r: Any) -> None:
        insts = self.instances
        if r.prefill_instance < 0:  # no prefill pool in front (attention + ffn only)
            super().submit(r)
            return
        i = 0 if len(insts) == 1 else self.router.route(r, insts)
        if not insts[i].room_for(r):
            fits = [j for j, x in enumerate(insts) if x.room_for(r)]
            if fits:
                i = min(fits, key=lambda j: (insts[j].load, j))
        insts[i].land(r)


class AttentionPool(DecodePool):
    """Attention instances of an attention/FFN split: decode instances with the AF step time."""

    role = "attention"

    def __init__(self, cluster: Any, spec: Any, first_id: int, cost: Any, *args: Any):
        super().__init__(cluster, spec, first_id, cost, *args)
        self.attention_cost = cost
        self.ffn: Any = None
        self.memo: dict = {}
        self.ffn_of: list[list[int]] = []  # attention instance -> the FFN instances serving it
        cfg = cluster.cfg  # load_config ran the same rule; a RunConfig built in code may not have
        validate_af_pools(cfg.model, cfg.deployment.pools, cfg.source)

    def start(self) -> None:
        self.ffn = next(p for p in self.cluster.pools if p.role == "ffn")
        a, f = len(self.instances), len(self.ffn.instances)
        # A >= F: FFN instance j serves attention instances j, j + F, ...; A < F: attention
        # instance i is served by FFN instances i, i + A, ... (a fixed pairing, so the FFN rows do
        # not depend on the order in which instances log their steps)
        self.ffn_of = [[i % f] if a >= f else list(range(i, f, a)) for i in range(a)]
        super().start()

    def instance_cost(self, cost: Any) -> Any:
        return self._cost  # the AF step time (below), from the attention cost and the FFN pool

    def step_log(self) -> Any:
        self.log_attention = self.cluster.steps.log
        return self._log  # attention rows, plus the FFN instances' rows of the same step

    def _cost(self, agg: tuple) -> Any:
        hit = self.memo.get(agg)
        if hit is None:
            hit = self._af(agg)
            if len(self.memo) >= 200_000:
                self.memo.clear()
            self.memo[agg] = hit
        return hit[0]

    def _af(self, agg: tuple) -> tuple:
        from servesim.cost import af_stage_cost

        cfg = self.cluster.cfg
        ffn = self.ffn
        link = cfg.deployment.af_link
        hw = self.spec.hardware
        par, fpar = self.spec.parallelism, ffn.spec.parallelism
        m = self.spec.micro_batches
        share = self.spec.instances / ffn.spec.instances
        # the FFN rows' batch size: tokens of one FFN pass (``share`` instances' micro-batches)
        rows = (0, math.ceil(share * -(-(agg[0] + agg[4]) // m) - 1e-9), 0, 0, 0, 0, 0)
        return *af_stage_cost(
            self.attention_cost,
            ffn.cost,
            agg,
            model=cfg.model,
            dtypes=cfg.dtypes,
            micro_batches=m,
            share=share,
            attention_devices=par.tp * par.dp_attn,
            ffn_devices=fpar.tp * fpar.dp_attn,
            bandwidth_GBps=link.bandwidth_GBps if link is not None else hw.scaleout_bw_GBps,
            latency_us=link.latency_us if link is not None else hw.scaleout_latency_us,
            attention_overhead_s=self.spec.overhead_s or 0.0,
            ffn_overhead_s=ffn.spec.overhead_s or 0.0,
            ffn_ep=fpar.ep,
        ), rows

    def _log(self, inst, start, dur, cost, agg, emitted, steps) -> None:
        self.log_attention(inst, start, dur, cost, agg, emitted, steps)
        hit = self.memo.get(agg)
        hit = hit if hit is not None else self._af(agg)
        f_cost = hit[1]
        if f_cost.seconds > 0:
            targets = self.ffn_of[inst.id - self.instances[0].id]
            if len(targets) > 1:  # this step's FFN work is spread over its FFN instances
                k = 1.0 / len(targets)
                f_cost = f_cost._replace(**{f: getattr(f_cost, f) * k for f in _SCALED})
            for j in targets:
                finst = self.ffn.instances[j]
                finst.steps += steps
                self.log_attention(finst, start, f_cost.seconds, f_cost, hit[3], 0, steps)


_SCALED = (
    "seconds",
    "flops",
    "bytes",
    "comm_bytes",
    "compute_s",
    "memory_s",
    "comm_s",
    "overhead_s",
)


class FFNPool:
    """FFN/expert instances: capacity for the attention pool's steps; no scheduler of their own."""

    role = "ffn"

    def __init__(self, cluster, spec, first_id, cost, kv_blocks, router, rng):
        self.cluster = cluster
        self.spec = spec
        self.name = spec.role
        self.cost = cost
        self.instances = [FFNInstance(first_id + i) for i in range(spec.instances)]
        cfg = cluster.cfg
        if cfg.deployment.pool("attention") is None:
            raise SpecError(
                cfg.source, "deployment.pools", "ffn", "an ffn pool needs an attention pool"
            )
        validate_af_pools(cfg.model, cfg.deployment.pools, cfg.source)

    def start(self) -> None:
        return None

    def submit(self, r: Any) -> None:
        raise AssertionError("requests never enter an FFN pool")

    def info(self, dtypes: Any) -> list[InstanceInfo]:
        return ColocatedPool.info(self, dtypes)


DISAGG_POOLS: dict[str, type] = {
    "prefill": PrefillPool,
    "decode": DecodePool,
    "attention": AttentionPool,
    "ffn": FFNPool,
}

__all__ = [
    "DISAGG_POOLS",
    "TRANSFER_COLUMNS",
    "moe_imbalance_of",
    "AttentionPool",
    "DecodeInstance",
    "DecodePool",
    "FFNPool",
    "KVLink",
    "PrefillInstance",
    "PrefillPool",
]
