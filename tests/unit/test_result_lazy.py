"""Result builds its DataFrames on first use, stays read-only, and pickles (sweep workers)."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

import servesim
from servesim.result import requests_frame


@pytest.fixture(scope="module")
def res():
    return servesim.simulate(overrides={"workload.num_requests": 30})


def test_frames_are_built_on_first_use_from_the_raw_arrays(res):
    fresh = servesim.Result(res.summary, config=res.config, raw=res.raw)
    assert fresh._requests is None and fresh._steps is None
    steps = fresh.steps
    assert fresh.steps is steps  # built once
    for k, v in res.raw.steps.items():
        assert np.array_equal(steps[k].to_numpy(), v) and steps[k].dtype == v.dtype
    assert fresh.requests.equals(requests_frame(res.raw))


def test_result_is_read_only(res):
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.summary = {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        del res.raw


def test_result_pickles_with_or_without_its_frames(res):
    for r in (res, servesim.Result(res.summary, config=res.config, raw=res.raw)):
        back = pickle.loads(pickle.dumps(r))
        assert back.summary == r.summary
        assert back.requests.equals(r.requests) and back.steps.equals(r.steps)
