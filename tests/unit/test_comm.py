"""Collectives (cost/comm.py) against hand-computed alpha-beta closed forms."""

from __future__ import annotations

import pytest

from servesim.cost import comm
from servesim.specs.hardware import HardwareSpec

MIB = 1 << 20


def make_hw(**eff: float) -> HardwareSpec:
    """8 devices per domain at 400 GB/s (2 us per hop); NIC 50 GB/s (5 us)."""
    return HardwareSpec(
        name="test-gpu", display_name="Test GPU", vendor="other",
        tflops=(("bf16", 1000.0),), memory_GB=80.0, memory_bw_GBps=4000.0,
        scaleup_devices=8, scaleup_bw_GBps=400.0, scaleup_latency_us=2.0,
        scaleout_bw_GBps=50.0, scaleout_latency_us=5.0, devices_per_node=8,
        tdp_W=700.0, idle_W=80.0, host_W_per_node=4000.0, overhead_s=0.002,
        efficiency=tuple(sorted(eff.items())),
    )  # fmt: skip


def test_allreduce_time_ring_closed_form_in_one_domain():
    hw = make_hw(comm_scaleup=0.5, comm_launch_s=10e-6)  # 400 GB/s * 0.5, 2 us per hop
    n, size = 8, 64 * MIB
    # 2 (n-1)/n * bytes / bw  +  2 * min(n-1, ceil(log2 n)) hops * latency  +  launch
    expect = 2 * 7 / 8 * 67108864 / 200e9 + 2 * 3 * 2e-6 + 10e-6
    assert comm.allreduce_time(hw, size, n) == pytest.approx(expect, rel=1e-12)


def test_allreduce_time_across_domains_uses_the_nic():
    hw = make_hw(comm_scaleup=0.5, comm_scaleout=0.8, comm_launch_s=10e-6)
    n, size = 16, 64 * MIB  # two 8-device domains: ring bottleneck is the 50 GB/s NIC
    expect = 2 * 15 / 16 * 67108864 / 40e9 + 2 * 4 * 5e-6 + 10e-6
    assert comm.allreduce_time(hw, size, n) == pytest.approx(expect, rel=1e-12)
    assert comm.allreduce_time(hw, size, 16) > 5 * comm.allreduce_time(hw, size, 8)


def test_allreduce_time_large_group_latency_is_a_tree():
    hw = make_hw(comm_launch_s=1e-9)
    tiny = 1.0
    assert comm.allreduce_time(hw, tiny, 64) == pytest.approx(2 * 6 * 5e-6, rel=0.01)


def test_allreduce_time_single_device_or_empty_is_free():
    hw = make_hw()
    assert comm.allreduce_time(hw, 1e6, 1) == 0.0
    assert comm.allreduce_time(hw, 0.0, 8) == 0.0


def test_allgather_time_half_the_allreduce_bandwidth_term():
    hw = make_hw(comm_launch_s=1e-9)
    big = 1e10  # bandwidth term dominates
    assert comm.allgather_time(hw, big, 8) == pytest.approx(
        comm.allreduce_time(hw, big, 8) / 2, rel=0.01
    )


def test_alltoall_time_closed_form_and_scaleout_slower():
    hw = make_hw(comm_scaleup=0.5, comm_scaleout=0.5, comm_launch_s=10e-6)
    size = 8 * MIB
    intra = comm.alltoall_time(hw, size, 8)
    assert intra == pytest.approx(size * 7 / 8 / 200e9 + 2e-6 + 10e-6)
    inter = comm.alltoall_time(hw, size, 16)  # half the traffic leaves the node over the NIC
    assert inter == pytest.approx(size * 8 / 16 / 25e9 + 5e-6 + 10e-6)


def test_p2p_time_closed_form():
    hw = make_hw(p2p_scaleup=0.8, p2p_scaleout=0.6, p2p_launch_s=4e-6)
    assert comm.p2p_time(hw, 1e9) == pytest.approx(1e9 / 320e9 + 2e-6 + 4e-6)
    assert comm.p2p_time(hw, 1e9, scaleout=True) == pytest.approx(1e9 / 30e9 + 5e-6 + 4e-6)


def test_link_transfer_time_closed_form():
    assert comm.link_transfer_time(50e9, 50.0, 20.0) == pytest.approx(1.0 + 20e-6)
    assert comm.link_transfer_time(0, 50.0, 20.0) == 0.0


def test_collectives_in_graph_charge_graph_launch_not_eager_launch():
    from servesim.cost.roofline import params
    from servesim.specs.hardware import load_hardware

    hw = load_hardware("h100-sxm")
    e = params(hw)
    for fn in (comm.allreduce_time, comm.allgather_time, comm.alltoall_time):
        eager, graph = fn(hw, 16384, 2), fn(hw, 16384, 2, graph=True)
        assert eager - graph == pytest.approx(e["comm_launch_s"] - e["comm_graph_launch_s"])
    assert comm.p2p_time(hw, 16384) - comm.p2p_time(hw, 16384, graph=True) == pytest.approx(
        e["p2p_launch_s"]
    )
