"""The run's instance table: one row per engine instance, read once from ``RawRun.instances``.

Every accounting part that needs per-instance numbers (utilisation, energy, costing, the time
series) reads this table, never ``raw.instances`` itself. Columns are aligned numpy arrays sorted
by instance id; ``pool`` holds the pool name each instance reported (a pool's role, with its index
when two pools share a role). Energy adds the power-model columns it derives from the config
(energy.Instances); the columns here come from the engine's record alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

# InstanceInfo field names in the engine's order (sim/pools.py): a record may be that NamedTuple,
# another object with these attributes, a mapping, or a plain tuple in this order.
INFO_FIELDS = (
    "instance_id", "pool", "role", "hardware", "devices", "peak_flops", "mem_bw", "tdp_W",
    "idle_W", "replica",
)  # fmt: skip


class InstanceTable(NamedTuple):
    """Per-instance columns, sorted by instance id. Unknown numbers are NaN (a record read back
    from disk may lack them); ``replica`` is -1 where the record has none."""

    ids: np.ndarray  # int64
    pool: np.ndarray  # str: the pool name the instance reported
    pool_ref: np.ndarray  # object: the record's pool as given (a name, or an index into the pools)
    role: np.ndarray  # str
    devices: np.ndarray  # int64: devices this instance runs on
    peak_flops: np.ndarray  # float64, per device, FLOP/s in the compute dtype
    mem_bw: np.ndarray  # float64, per device, bytes/s
    tdp_W: np.ndarray  # float64, per device
    idle_W: np.ndarray  # float64, per device
    replica: np.ndarray  # int64: the replica's first instance id (pp virtual engines share it)

    @property
    def n(self) -> int:
        """Rows (``len()`` of a NamedTuple counts its columns)."""
        return len(self.ids)

    @property
    def pools(self) -> list[str]:
        """Pool names in order of their first instance."""
        return list(dict.fromkeys(self.pool.tolist()))

    def subset(self, mask: np.ndarray) -> InstanceTable:
        return InstanceTable(*(np.asarray(c)[mask] for c in self))

    def replicas(self) -> int:
        """Model replicas (not the virtual engines of a pipelined replica)."""
        return len(set(np.where(self.replica < 0, self.ids, self.replica).tolist()))


def info_field(info: Any, name: str, default: Any = None) -> Any:
    """One field of an instance record, whatever its shape."""
    if hasattr(info, name):
        return getattr(info, name)
    if isinstance(info, Mapping):
        return info.get(name, default)
    i = INFO_FIELDS.index(name)
    if isinstance(info, (tuple, list)) and i < len(info):
        return info[i]
    return default


def _number(value: Any) -> float:
    return np.nan if value is None else float(value)


def instance_table(raw: Any) -> InstanceTable:
    """The instance table of a run (``raw.instances``, any record shape)."""
    rows = sorted(
        (  # sorted by id (ids are unique, so later columns never compare)
            int(info_field(i, "instance_id")),
            str(info_field(i, "pool")),
            info_field(i, "pool"),
            str(info_field(i, "role", "")),
            int(info_field(i, "devices")),
            _number(info_field(i, "peak_flops")),
            _number(info_field(i, "mem_bw")),
            _number(info_field(i, "tdp_W")),
            _number(info_field(i, "idle_W")),
            int(info_field(i, "replica", -1)),
        )
        for i in raw.instances
    )
    cols = list(zip(*rows)) if rows else [()] * 10
    kinds = (np.int64, str, object, str, np.int64, *(np.float64,) * 4, np.int64)
    return InstanceTable(*(np.asarray(c, dtype=k) for c, k in zip(cols, kinds)))
