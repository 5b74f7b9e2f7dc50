"""Hand-made stand-ins for the engine's RawRun, shared by the metrics and result tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

REQ_COLS = ("request_id", "arrival_s", "scheduled_s", "first_token_s", "finish_s", "prompt_tokens",
            "output_tokens", "cached_tokens", "preemptions", "instance", "prefill_instance",
            "kv_transfer_s")  # fmt: skip
STEP_COLS = ("instance", "start_s", "duration_s", "prefill_tokens", "decode_seqs", "batch_size",
             "flops", "bytes", "comm_bytes", "compute_s", "memory_s", "comm_s", "kv_used_blocks",
             "kv_total_blocks", "waiting", "running", "new_tokens")  # fmt: skip


class Inst(NamedTuple):
    instance_id: int
    pool: str
    role: str
    hardware: str
    devices: int
    peak_flops: float
    mem_bw: float
    tdp_W: float
    idle_W: float


@dataclass
class FakeRaw:
    requests: dict
    steps: dict
    instances: list
    sim_end_s: float
    transfers: dict = field(default_factory=dict)
