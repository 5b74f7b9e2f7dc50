"""Parsing of the dtype block: bytes per element and the weights/activations/KV triple."""

from __future__ import annotations

import pytest

from servesim.specs.common import SpecError
from servesim.specs.dtypes import DTypes, parse_dtypes


@pytest.mark.parametrize("name", ["bf16", "fp8"])
def test_parse_dtypes_plain_name_sets_all_three(name: str):
    assert parse_dtypes(name, "t") == DTypes(name, name, name)


@pytest.mark.parametrize("name", ["fp4", "int4"])
def test_parse_dtypes_4bit_name_is_weight_only_with_bf16_kv(name: str):
    # the same as the mapping form {weights: fp4}: weight-only, no 4-bit KV cache
    assert parse_dtypes(name, "t") == DTypes(name, "bf16", "bf16")
    assert parse_dtypes({"weights": name}, "t") == parse_dtypes(name, "t")


def test_parse_dtypes_explicit_fp4_activations_kept():
    dt = parse_dtypes({"weights": "fp4", "activations": "fp4"}, "t")
    assert (dt.activations, dt.compute) == ("fp4", "fp4")


def test_parse_dtypes_unknown_name_is_spec_error():
    with pytest.raises(SpecError):
        parse_dtypes("fp3", "t")
