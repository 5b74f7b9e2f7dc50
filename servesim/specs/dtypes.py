"""Numeric formats: bytes per element and the per-role dtype triple."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from servesim.specs.common import SpecError, check_keys

# Bytes per element. fp4/int4 pack two values per byte. Block scales are not counted: they add
# 3% (int4, one 16-bit scale per 128 values), 6% (MXFP4, one 8-bit scale per 32) or 12.5% (NVFP4,
# one 8-bit scale per 16) to the 4-bit weight bytes.
DTYPE_BYTES: dict[str, float] = {
    "fp32": 4.0,
    "tf32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "fp4": 0.5,
    "int4": 0.5,
}
# Formats in which activations and the KV cache may be held.
ACTIVATION_DTYPES = ("fp32", "bf16", "fp16", "fp8", "int8", "fp4")
KV_DTYPES = ("fp32", "bf16", "fp16", "fp8", "int8", "fp4", "int4")


@dataclass(frozen=True, slots=True)
class DTypes:
    """Formats of the weights, the activations (GEMM inputs) and the KV cache."""

    weights: str = "bf16"
    activations: str = "bf16"
    kv_cache: str = "bf16"

    @property
    def compute(self) -> str:
        """The format the tensor cores run in: the wider of weights and activations.

        Weight-only fp4/int4 (bf16 activations) dequantises to bf16; fp8 x fp8 runs in fp8.
        """
        return max((self.weights, self.activations), key=lambda d: DTYPE_BYTES[d])


def parse_dtypes(data: Any, where: str, field: str = "dtype") -> DTypes:
    """`dtype: bf16` (all three) or `dtype: {weights, activations, kv_cache}` (missing ones: weights').

    A 4-bit name (`dtype: fp4`, `int4`) means weight-only quantisation, as in the mapping form:
    bf16 activations and KV cache (4-bit activations, e.g. NVFP4 W4A4, are set explicitly).
    """
    allowed = ", ".join(DTYPE_BYTES)
    if isinstance(data, str):
        if data not in DTYPE_BYTES:
            raise SpecError(where, field, data, f"must be one of {allowed}")
        if DTYPE_BYTES[data] < 1:  # weight-only 4-bit
            return DTypes(data, "bf16", "bf16")
        act = data if data in ACTIVATION_DTYPES else "bf16"
        kv = data if data in KV_DTYPES else "bf16"
        return DTypes(data, act, kv)
    if not isinstance(data, Mapping):
        raise SpecError(where, field, data, f"must be a dtype name ({allowed}) or a mapping")
    check_keys(data, ("weights", "activations", "kv_cache"), where, field)
    weights = data.get("weights", "bf16")
    if weights not in DTYPE_BYTES:
        raise SpecError(where, f"{field}.weights", weights, f"must be one of {allowed}")
    default_act = weights if weights in ACTIVATION_DTYPES and weights != "fp4" else "bf16"
    act = data.get("activations", default_act)
    if act not in ACTIVATION_DTYPES:
        raise SpecError(
            where, f"{field}.activations", act, "must be one of " + ", ".join(ACTIVATION_DTYPES)
        )
    kv = data.get("kv_cache", act if act in KV_DTYPES else "bf16")
    if kv not in KV_DTYPES:
        raise SpecError(where, f"{field}.kv_cache", kv, "must be one of " + ", ".join(KV_DTYPES))
    return DTypes(weights, act, kv)
