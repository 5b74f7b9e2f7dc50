"""The run summary as a nested typed value; its flat keys (summary.json, CSV rows, the
``Result.summary`` dict) come from ``flat()`` only, at the edge.

A ``Section`` is a frozen dataclass whose fields are its metrics, in key order. ``flat()`` walks
the fields: a plain value is one key (the field name, or the ``key`` its field declares), a
``Stats`` is the seven ``<name>_<stat>`` keys, a nested section adds its own keys, a mapping field
declared with ``each(pattern)`` gives one group of keys per entry (``pool.<name>.*``), and a
field holding ``ABSENT`` is no key at all (``kv_transfers`` of a run without a prefill/decode
split). Later sections overwrite the value of a key an earlier one wrote, keeping its place (so
``idle_fraction``, which energy and cost both report, stays where energy put it).

Adding a metric: one field on the section it belongs to, computed by that section's function in
metrics.py (docs/internals.md, "Adding a metric", works an example).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from servesim.accounting.stats import Stats


class _Absent:
    """The value of a metric the run does not have (its key is left out of the flat summary)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "ABSENT"  # unpickles as the module's one instance, so `is ABSENT` holds


ABSENT: Any = _Absent()


def key(name: str, default: Any = ABSENT) -> Any:
    """A field whose flat key differs from its name (``spec.method``)."""
    return field(default=default, metadata={"key": name})


def each(pattern: str) -> Any:
    """A mapping field: entry ``name`` flattens under ``pattern.format(name)``."""
    return field(default_factory=dict, metadata={"each": pattern})


class Section:
    """Base of the summary's typed parts (frozen dataclasses)."""

    __slots__ = ()

    def flat(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is ABSENT:
                continue
            name = f.metadata.get("key", f.name)
            if isinstance(value, Stats):
                out.update(value.flat(name))
            elif isinstance(value, Section):
                out.update(value.flat())
            elif "each" in f.metadata:
                for entry, item in value.items():
                    prefix = f.metadata["each"].format(entry)
                    out.update(
                        item.flat_as(prefix) if isinstance(item, Section) else {prefix: item}
                    )
            else:
                out[name] = value
        return out

    def flat_as(self, prefix: str) -> dict[str, Any]:
        """Its keys under ``prefix`` (an entry of an ``each`` mapping)."""
        return {prefix + k: v for k, v in self.flat().items()}


@dataclass(frozen=True, slots=True)
class Requests(Section):
    num_requests: int  # issued: every request that arrived
    completed: int
    failed: int  # issued - completed
    failed_by: dict[str, int] = each("failed_{}")  # reason -> requests refused at entry
    duration_s: float = 0.0  # first arrival to last finish
    sim_end_s: float = 0.0
    total_input_tokens: int = 0  # of the completed requests
    total_output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Throughput(Section):
    request_throughput: float | None  # completed requests / duration_s
    output_throughput: float | None  # tokens/s
    total_token_throughput: float | None


@dataclass(frozen=True, slots=True)
class Latency(Section):
    ttft_ms: Stats
    tpot_ms: Stats
    itl_ms: Stats
    e2el_ms: Stats


@dataclass(frozen=True, slots=True)
class Queue(Section):
    queue_ms_mean: float | None  # arrival to first scheduled
    queue_ms_p99: float | None
    queue_ms_max: float | None


@dataclass(frozen=True, slots=True)
class SloTarget(Section):
    target: float  # ms
    value: float | None  # the run's value of the statistic
    met: bool


@dataclass(frozen=True, slots=True)
class Slo(Section):
    goodput_fraction: float | None  # requests meeting every per-request threshold
    goodput_rps: float | None
    targets: dict[str, SloTarget] = each("slo.{}.")  # "ttft_ms_p90" -> target, value, met
    slo_attained: bool | None = None  # every target met (None without targets)


@dataclass(frozen=True, slots=True)
class Utilisation(Section):
    steps: int  # engine iterations
    busy_fraction: float | None
    mfu: float | None
    mbu: float | None
    batch_size_mean: float | None
    batch_size_max: int | None
    kv_usage_mean: float | None  # step-duration weighted
    kv_usage_max: float | None
    queue_len_mean: float | None  # time weighted, per instance
    queue_len_max: int | None


@dataclass(frozen=True, slots=True)
class Cache(Section):
    preemptions: int
    preempted_requests: int
    cached_prompt_tokens: int
    prefix_cache_hit_rate: float | None


@dataclass(frozen=True, slots=True)
class Transfers(Section):
    """KV hand-offs of a prefill/decode split; every key is absent without one."""

    kv_transfer_ms_mean: Any = ABSENT  # per request, prefill end to decode side
    kv_transfer_ms_p99: Any = ABSENT
    kv_transfers: Any = ABSENT
    kv_transfer_bytes_total: Any = ABSENT
    kv_transfer_wait_ms_mean: Any = ABSENT  # queued behind other transfers on the link
    kv_transfer_wait_ms_p99: Any = ABSENT
    kv_link_utilisation: Any = ABSENT
    decode_queue_ms_mean: Any = ABSENT  # landed on the decode pool to admitted there
    decode_queue_ms_p99: Any = ABSENT


@dataclass(frozen=True, slots=True)
class PoolStats(Section):
    instances: int  # replicas
    utilisation: float | None  # the pool's busy fraction
    steps: int
    mfu: float | None
    mbu: float | None
    batch_size_mean: float | None
    kv_usage_mean: float | None
    kv_usage_max: float | None
    queue_len_mean: float | None
    queue_len_max: int | None
    requests: int  # served (either stage)
    queue_ms_mean: float | None  # at the pool of the first stage


@dataclass(frozen=True, slots=True)
class Speculative(Section):
    method: str = key("spec.method")
    num_speculative_tokens: int = key("spec.num_speculative_tokens")
    steps: int = key("spec.steps")
    plain_steps: int = key("spec.plain_steps")  # decode steps run without speculation
    acceptance_length: float | None = key("spec.acceptance_length")
    draft_ms_per_step: float | None = key("spec.draft_ms_per_step")
    verify_ms_per_step: float | None = key("spec.verify_ms_per_step")
    acceptance_rate: dict[str, float | None] = each("spec.acceptance_rate.{}")  # "pos1", ...


@dataclass(frozen=True, slots=True)
class PoolEnergy(Section):
    energy_kwh: float  # facility energy (x PUE)
    energy_device_kwh: float
    energy_host_kwh: float
    power_avg_W: float | None
    idle_fraction: float
    j_per_token: float | None  # per input token for a prefill pool, else per output token
    charged_per: str  # "input" | "output"

    def flat_as(self, label: str) -> dict[str, Any]:
        pre = f"energy.{label}."
        return {
            pre + "energy_kwh": self.energy_kwh,
            pre + "energy_device_kwh": self.energy_device_kwh,
            pre + "energy_host_kwh": self.energy_host_kwh,
            pre + "power_avg_W": self.power_avg_W,
            pre + "idle_fraction": self.idle_fraction,
            pre + f"j_per_{self.charged_per}_token": self.j_per_token,
            f"pool.{label}.energy_kwh": self.energy_kwh,
        }


@dataclass(frozen=True, slots=True)
class Energy(Section):
    pools: dict[str, PoolEnergy] = each("{}")  # pool label -> its energy
    energy_j: float = 0.0  # facility energy over 0 .. energy_duration_s
    energy_kwh: float = 0.0
    energy_device_kwh: float = 0.0
    energy_host_kwh: float = 0.0
    energy_it_kwh: float = 0.0
    pue: float = 1.0
    power_avg_W: float | None = None
    power_it_avg_W: float | None = None
    power_device_avg_W: float | None = None
    power_peak_W: float = 0.0
    j_per_output_token: float | None = None
    j_per_input_token: float | None = None
    j_per_total_token: float | None = None
    tokens_per_s_per_W: float | None = None
    idle_fraction: float = 1.0
    device_s: float = 0.0
    device_busy_s: float = 0.0
    energy_duration_s: float = 0.0


@dataclass(frozen=True, slots=True)
class PoolCost(Section):
    cost_usd: float
    idle_cost_usd: float
    usd_per_device_hour: float | None
    input_share: float  # share of the pool's cost charged to input tokens

    def flat_as(self, label: str) -> dict[str, Any]:
        pre = f"cost.{label}."
        return {
            pre + "cost_usd": self.cost_usd,
            pre + "idle_cost_usd": self.idle_cost_usd,
            pre + "usd_per_device_hour": self.usd_per_device_hour,
            pre + "input_share": self.input_share,
            f"pool.{label}.cost_usd": self.cost_usd,
        }


@dataclass(frozen=True, slots=True)
class Cost(Section):
    """What the run cost under cfg.cost (costing.py). ``price`` says where the price comes from
    (pricing, price_provider, price_column or price_model, price_source, price_date, ...): its
    keys and their order depend on the pricing model, so it stays a mapping."""

    pools: dict[str, PoolCost] = each("{}")  # pool label -> its cost (none for api, no price)
    cost_usd: float | None = None
    cost_per_hour_usd: float | None = None
    usd_per_mtok_input: float | None = None
    usd_per_mtok_output: float | None = None
    usd_per_mtok_blended: float | None = None
    monthly_usd: float | None = None
    idle_fraction: Any = ABSENT  # absent when no price is known
    idle_cost_usd: float | None = None
    price: dict[str, Any] = each("{}")
    cost_note: Any = ABSENT  # why there is no cost (no price for a device)


@dataclass(frozen=True, slots=True)
class Keyed(Section):
    """A section whose key set depends on its inputs (intervals: the calibrated metrics), kept as
    its ordered flat keys."""

    values: Mapping[str, Any] = field(default_factory=dict)

    def flat(self) -> dict[str, Any]:
        return dict(self.values)


@dataclass(frozen=True, slots=True)
class Summary(Section):
    """One run's summary (docs/metrics.md lists every flat key)."""

    requests: Requests
    throughput: Throughput
    latency: Latency
    queue: Queue
    slo: Slo
    utilisation: Utilisation
    cache: Cache
    transfers: Transfers
    pools: dict[str, PoolStats] = each("pool.{}.")  # only with more than one pool
    speculative: Any = ABSENT  # Speculative, with speculative decoding
    energy: Any = ABSENT  # Energy (result.build_result adds it)
    cost: Any = ABSENT  # Cost (result.build_result adds it)
    interval: Any = ABSENT  # Keyed: cost.intervals' interval.* keys
