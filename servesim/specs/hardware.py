"""HardwareSpec: one accelerator (per device numbers) and its cost-model parameters.

The YAML layout of hw_profiles/*.yaml and the loader live here; every number in a profile carries
its source in a comment there. (Loader: see load_hardware.)
"""

from __future__ import annotations

from dataclasses import dataclass

from servesim.specs.common import SpecError

# Every efficiency parameter of the cost model, with the default used when a profile does not set
# it, and what it means. The cost model (servesim/cost/roofline.py) owns the meaning.
EFFICIENCY_DEFAULTS: dict[str, tuple[float, str]] = {
    "gemm_compute": (0.75, "fraction of dense peak FLOP/s a large GEMM reaches"),
    "gemm_memory": (0.80, "fraction of memory bandwidth a weight-streaming GEMM reaches"),
    "attn_compute": (0.55, "fraction of dense peak FLOP/s prefill attention reaches"),
    "attn_memory": (0.70, "fraction of memory bandwidth decode attention reaches"),
    "elementwise_memory": (0.60, "fraction of memory bandwidth norms/activations reach"),
    "comm_scaleup": (0.75, "fraction of scale-up link bandwidth collectives reach"),
    "comm_scaleout": (0.70, "fraction of scale-out NIC bandwidth collectives reach"),
    "kernel_launch_s": (4e-6, "fixed cost per kernel (launch + tail)"),
}


@dataclass(frozen=True, slots=True)
class MemoryTier:
    name: str
    capacity_GB: float
    bandwidth_GBps: float


@dataclass(frozen=True, slots=True)
class HardwareSpec:
    name: str
    display_name: str
    vendor: str
    tflops: tuple[tuple[str, float | None], ...]  # dense peak TFLOP/s per dtype
    memory_GB: float
    memory_bw_GBps: float
    scaleup_devices: int
    scaleup_bw_GBps: float
    scaleup_latency_us: float
    scaleout_bw_GBps: float
    scaleout_latency_us: float
    devices_per_node: int
    tdp_W: float
    idle_W: float
    host_W_per_node: float
    overhead_s: float
    price_hour_usd: float | None = None
    purchase_usd: float | None = None
    efficiency: tuple[tuple[str, float], ...] = ()
    power_model: tuple[tuple[str, float], ...] = ()  # energy-model parameters (servesim/energy.py)
    memory_tiers: tuple[MemoryTier, ...] = ()
    aliases: tuple[str, ...] = ()
    fitted: str = ""
    source: str = ""

    def peak_flops(self, dtype: str) -> float:
        """Dense peak FLOP/s in ``dtype``; falls back to the next wider supported format."""
        table = dict(self.tflops)
        for candidate in _WIDER.get(dtype, (dtype,)):
            value = table.get(candidate)
            if value:
                return value * 1e12
        raise SpecError(self.name, "tflops", dtype, "no compute throughput for this dtype on this device")

    def eff(self, key: str) -> float:
        for k, v in self.efficiency:
            if k == key:
                return v
        return EFFICIENCY_DEFAULTS[key][0]

    @property
    def memory_bytes(self) -> float:
        return self.memory_GB * 1e9

    @property
    def memory_bw(self) -> float:
        return self.memory_bw_GBps * 1e9


# A dtype without its own tensor-core path runs in the next wider one (fp4 on Hopper runs as fp8).
_WIDER: dict[str, tuple[str, ...]] = {
    "fp4": ("fp4", "fp8", "bf16"),
    "int4": ("int4", "int8", "fp8", "bf16"),
    "fp8": ("fp8", "bf16"),
    "int8": ("int8", "fp8", "bf16"),
    "bf16": ("bf16", "fp16"),
    "fp16": ("fp16", "bf16"),
    "fp32": ("fp32",),
    "tf32": ("tf32", "fp32"),
}
