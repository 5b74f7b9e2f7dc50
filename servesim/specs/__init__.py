"""Every input of servesim as frozen dataclasses, loaded and validated once, at the edge."""

from servesim.specs.common import SpecError
from servesim.specs.config import Parallelism
from servesim.specs.dtypes import DTYPE_BYTES, DTypes
from servesim.specs.hardware import HardwareSpec
from servesim.specs.model import ModelSpec

__all__ = ["DTYPE_BYTES", "DTypes", "HardwareSpec", "ModelSpec", "Parallelism", "SpecError"]
