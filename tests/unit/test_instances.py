"""The one instance table (accounting/instances.py): every record shape reads the same, and
utilisation and energy use it (energy filling what a record lacks from the profile)."""

from __future__ import annotations

from types import SimpleNamespace as NS

import numpy as np
import pytest

from servesim.accounting import energy
from servesim.accounting.instances import InstanceTable, instance_table
from servesim.specs.config import Parallelism, PoolSpec
from servesim.specs.hardware import load_hardware

FIELDS = ("instance_id", "pool", "role", "hardware", "devices", "peak_flops", "mem_bw", "tdp_W",
          "idle_W")  # fmt: skip
ROW1 = (1, "decode", "decode", "h100-sxm", 2, 1e15, 3e12, 700.0, 100.0)
ROW0 = (0, "prefill", "prefill", "h100-sxm", 4, 1e15, 3e12, 700.0, 100.0)


@pytest.mark.parametrize("shape", ["tuple", "mapping", "object"])
def test_every_record_shape_gives_the_same_table(shape):
    make = {"tuple": tuple, "mapping": lambda r: dict(zip(FIELDS, r)),
            "object": lambda r: NS(**dict(zip(FIELDS, r)))}[shape]  # fmt: skip
    t = instance_table(NS(instances=[make(ROW1), make(ROW0)]))
    assert isinstance(t, InstanceTable) and t.n == 2
    assert t.ids.tolist() == [0, 1]  # sorted by id
    assert t.pool.tolist() == ["prefill", "decode"] and t.pools == ["prefill", "decode"]
    assert t.devices.tolist() == [4, 2] and t.replica.tolist() == [-1, -1]
    assert t.replicas() == 2
    assert t.subset(t.pool == "decode").ids.tolist() == [1]


def test_energy_fills_missing_numbers_from_the_profile():
    hw = load_hardware("h100-sxm")
    pools = (PoolSpec(role="colocated", hardware=hw, instances=1, parallelism=Parallelism()),)
    cfg = NS(deployment=NS(pools=pools), dtypes=None)
    record = {"instance_id": 0, "pool": "colocated", "devices": 1}  # no peak, bandwidth, power
    inst = energy.instance_table(NS(instances=[record]), cfg)
    assert inst.tdp_W.tolist() == [hw.tdp_W] and inst.idle_W.tolist() == [hw.idle_W]
    assert inst.mem_bw.tolist() == [hw.memory_bw_GBps * 1e9]
    assert inst.peak_flops[0] == hw.peak_flops("bf16")
    assert np.isnan(instance_table(NS(instances=[record])).peak_flops[0])  # the table says unknown
