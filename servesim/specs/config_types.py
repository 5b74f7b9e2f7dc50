"""The run config's types: the frozen specs `load_config` returns (servesim.specs.config parses
them) and the name registries every other module derives from (policies, roles, routers, queue
orders, admissions, MoE load distributions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from servesim.specs.dtypes import DTypes
from servesim.specs.limits import DEFAULT_MAX_DURATION_S, DEFAULT_MAX_REQUESTS


@dataclass(frozen=True, slots=True)
class Parallelism:
    tp: int = 1  # tensor parallel
    pp: int = 1  # pipeline stages
    ep: int = 1  # expert parallel (devices the experts are spread over)
    dp_attn: int = 1  # attention data-parallel ranks inside one instance (DeepSeek-style)

    @property
    def devices(self) -> int:
        """Devices of one instance. With DP attention the EP group spans dp_attn x tp devices."""
        return self.tp * self.pp * self.dp_attn


POLICIES = ("vllm", "sarathi", "prefill_first", "orca", "static")
ROLES = ("colocated", "prefill", "decode", "attention", "ffn")
# Role sets a deployment may have (each role at most once).
LAYOUTS = (
    frozenset({"colocated"}),
    frozenset({"prefill", "decode"}),
    frozenset({"prefill", "attention", "ffn"}),
    frozenset({"attention", "ffn"}),
)
ROUTERS = ("round_robin", "least_loaded", "power_of_two", "random", "session")
# waiting-queue order (sim/queues.py): arrival order, a per-request priority from the workload, or
# earliest TTFT deadline first
QUEUE_ORDERS = ("fifo", "priority", "slo")
# what an instance does with a request that can never fit its KV (sim/admission.py)
ADMISSIONS = ("all", "reject_oversized")
# how expert load spreads over the experts of a MoE layer (deployment.moe_load.distribution)
MOE_DISTRIBUTIONS = ("uniform", "zipf", "fixed")
PCT_NAMES = ("mean", "p50", "p90", "p95", "p99", "p99.9")
STEP_LOG_MODES = ("full", "runs")

# The per-iteration token budget when none is given (vLLM's default on GPUs of >= 70 GiB; see
# ENGINE_PROFILES["vllm"]): every default budget in servesim (scheduler, memory model, roofline,
# planner) is this one number.
DEFAULT_MAX_NUM_BATCHED_TOKENS = 8192


@dataclass(frozen=True, slots=True)
class SchedulerSpec:
    policy: str = (
        "sarathi"  # vllm | sarathi | prefill_first | orca | static (sim.batching.SCHEDULERS)
    )
    max_num_seqs: int | None = 256  # None = bounded only by KV memory
    # token budget per iteration (chunk size for sarathi)
    max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS
    block_size: int = 16  # tokens per KV block
    gpu_memory_utilization: float = 0.9  # fraction of device memory for weights + KV + activations
    enable_prefix_caching: bool = False
    engine: str | None = None  # engine profile whose defaults filled the unset keys
    reserve_output: bool = False  # reserve KV for prompt + output at admission (no preemption)
    queue: str = "fifo"  # waiting-queue order: fifo | priority | slo (sim/queues.py)
    admission: str = "all"  # a request that can never fit: all (fail the run) | reject_oversized


@dataclass(frozen=True, slots=True)
class PoolSpec:
    role: str
    hardware: Any  # HardwareSpec
    instances: int = 1
    parallelism: Parallelism = Parallelism()
    scheduler: SchedulerSpec = SchedulerSpec()
    overhead_s: float | None = None  # per-iteration overhead; None = the hardware profile's
    micro_batches: int = 1  # attention/FFN ping-pong micro-batches
    speculative: Any = None  # specs.speculative.SpeculativeSpec, or None (no speculation)

    @property
    def devices(self) -> int:
        return self.instances * self.parallelism.devices


@dataclass(frozen=True, slots=True)
class LinkSpec:
    bandwidth_GBps: float
    latency_us: float = 0.0
    streaming: bool = False  # KV sent layer by layer, overlapping the prefill


@dataclass(frozen=True, slots=True)
class MoELoadSpec:
    """How routed tokens spread over experts (sets the slowest EP rank's load)."""

    distribution: str = "uniform"  # uniform | zipf | fixed
    zipf_s: float = 1.0  # zipf: the expert of popularity rank r gets a share ~ r^-s
    factor: float | None = None  # fixed: slowest EP rank's load / mean (>= 1)
    redundant_experts: int = 0  # EPLB: extra replicas of the hottest experts over the EP ranks


@dataclass(frozen=True, slots=True)
class DeploymentSpec:
    pools: tuple[PoolSpec, ...]
    router: str = "least_loaded"
    kv_link: LinkSpec | None = None
    af_link: LinkSpec | None = None
    moe_load: MoELoadSpec = MoELoadSpec()

    def pool(self, role: str) -> PoolSpec | None:
        for p in self.pools:
            if p.role == role:
                return p
        return None


@dataclass(frozen=True, slots=True)
class SLOSpec:
    ttft_ms: tuple[tuple[str, float], ...] = ()
    tpot_ms: tuple[tuple[str, float], ...] = ()
    e2el_ms: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class SimOptions:
    """Engine options that change speed or output volume, never the simulated results."""

    fast_forward: bool = True  # advance runs of decode-only steps without SimPy events
    step_log: str = "full"  # full: one row per step | runs: one row per fast-forwarded run
    # caps and strictness (specs/limits.py, docs/reliability.md)
    max_requests: int = DEFAULT_MAX_REQUESTS  # requests a run may issue
    max_duration_s: float = DEFAULT_MAX_DURATION_S  # simulated seconds a workload may span
    strict: bool = False  # a request that can never be served fails the run (else: dropped)


@dataclass(frozen=True, slots=True)
class RunConfig:
    model: Any  # ModelSpec
    dtypes: DTypes
    deployment: DeploymentSpec
    workload: Any  # WorkloadSpec
    slo: SLOSpec
    cost: Any  # CostSpec
    seed: int = 0
    source: str = "<default>"
    sim: SimOptions = SimOptions()
    model_ref: str = ""  # the name or path the model was given by (for config_to_dict)
