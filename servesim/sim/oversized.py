"""Admission: what an instance does with an arriving request it can never serve (its prompt plus
output need more KV blocks than the instance has).

- ``all`` (the default): every request is admitted; one that can never fit stops the run with one
  SpecError naming it (a trace to clip, or a deployment with too little memory);
- ``reject_oversized``: such a request is turned away at arrival, as a server answers one that
  exceeds its context limit with an error: it counts as issued and failed (summary ``failed``),
  and a closed-loop client sends its next request after its think time.
"""

from __future__ import annotations

from typing import Any

from servesim.specs.common import SpecError
from servesim.specs.config import ADMISSIONS


class AdmitAll:
    name = "all"

    @staticmethod
    def oversized(inst: Any, r: Any, err: SpecError) -> None:
        inst.sink.fail(err)


class RejectOversized:
    name = "reject_oversized"

    @staticmethod
    def oversized(inst: Any, r: Any, err: SpecError) -> None:
        inst.sink.reject(r)


POLICIES: dict[str, type] = {c.name: c for c in (AdmitAll, RejectOversized)}
assert tuple(POLICIES) == ADMISSIONS, "specs.config.ADMISSIONS names every admission policy once"
