"""The run config: deployment (pools, parallelism, schedulers, links), workload, SLO, cost, seed.

See docs/internals.md for the full contract. (The parser, load_config, lives here too.)
"""

from __future__ import annotations

from dataclasses import dataclass


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
