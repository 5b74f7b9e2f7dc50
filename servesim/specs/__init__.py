"""Every input of servesim as frozen dataclasses, loaded and validated once, at the edge."""

from servesim.specs.common import SpecError, flatten_keys, parse_yaml, short_value
from servesim.specs.config import Parallelism
from servesim.specs.cost import CostSpec
from servesim.specs.derive import derivation
from servesim.specs.dtypes import DTYPE_BYTES, DTypes, parse_dtypes
from servesim.specs.hardware import HardwareSpec, load_hardware, profile_comments
from servesim.specs.model import ModelSpec, load_model

__all__ = [
    "DTYPE_BYTES", "CostSpec", "DTypes", "HardwareSpec", "ModelSpec", "Parallelism", "SpecError",
    "derivation", "flatten_keys", "load_hardware", "load_model", "parse_dtypes", "parse_yaml",
    "profile_comments", "short_value",
]  # fmt: skip
