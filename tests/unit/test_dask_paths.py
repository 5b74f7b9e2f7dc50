"""Dask: a malformed address and an unreachable scheduler are one error line, fast; rows from
Dask workers are bit-identical to local ones."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from servesim.cli import main
from servesim.specs import SpecError

sys.path.insert(0, str(Path(__file__).parent))
from test_sweep import TINY_SWEEP  # noqa: E402


def test_sweep_dask_notanaddress_is_one_error_line(tmp_path, capsys):
    pytest.importorskip("dask.distributed")
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({**TINY_SWEEP, "seeds": [0]}))
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(spec), "--dask", "notanaddress", "--quiet"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    assert err.startswith("error: sweep: dask = notanaddress: not a scheduler address")


def test_unreachable_scheduler_fails_within_the_connect_timeout(monkeypatch):
    pytest.importorskip("dask.distributed")
    import servesim.sweep as sw

    monkeypatch.setattr(sw, "DASK_CONNECT_S", 1.0)
    t0 = time.monotonic()
    with pytest.raises(SpecError, match="cannot reach the scheduler"):
        sw.sweep({**TINY_SWEEP, "seeds": [0]}, dask="tcp://127.0.0.1:9")
    assert time.monotonic() - t0 < 15  # dask's own default would wait 30 s


def test_dask_rows_are_bit_identical_to_local_rows():
    distributed = pytest.importorskip("dask.distributed")
    from servesim.sweep import sweep

    spec = {**TINY_SWEEP, "seeds": [0]}
    local = sweep(spec, jobs=1)
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None) as c:
        remote = sweep(spec, dask=c.scheduler_address)
    pd.testing.assert_frame_equal(local, remote, check_exact=True)
    assert local["kv_usage_mean"].tolist() == remote["kv_usage_mean"].tolist()
