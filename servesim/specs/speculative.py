"""Speculative decoding of a pool: ``deployment.pools[].speculative``, named as vLLM's
``speculative_config`` names it, and the acceptance model.

Acceptance model: ``per_position[i]`` is the probability that draft token i+1 is accepted given
that tokens 1..i were (so a constant rate a is ``[a] * k``). A step then emits
``1 + sum_j prod_{i<=j} p_i`` tokens per sequence on average (the bonus token included):
``1 + a + a^2 + ... + a^k`` for a constant rate. A named dataset resolves through
ACCEPTANCE_TABLE: the published acceptance length tau at k_ref draft tokens gives the constant
rate a with 1 + a + ... + a^k_ref = tau, used at the configured k.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from servesim.specs.common import SpecError, check_keys, get_number, require_mapping

METHODS = ("eagle", "eagle3", "mtp", "draft", "ngram")
SPEC_KEYS = ("method", "num_speculative_tokens", "model", "draft_tensor_parallel_size",
             "acceptance", "disable_by_batch_size")  # fmt: skip
MAX_SPECULATIVE_TOKENS = 16

# Published acceptance lengths tau (mean tokens emitted per verification step, bonus token
# counted) with chain drafting at temperature 0: (method, model family, dataset) ->
# ((k_ref, tau), ...), source. A configured k uses the entry with the nearest k_ref.
_I20780 = ("vLLM issue #20780: Llama-3.1-8B-Instruct, MT-bench, batch 1, vLLM V1 (EAGLE-LLaMA3.1-"
           "Instruct-8B / EAGLE3-LLaMA3.1-Instruct-8B), AL per num_speculative_tokens")  # fmt: skip
ACCEPTANCE_TABLE: dict[tuple[str, str, str], tuple[tuple[tuple[int, float], ...], str]] = {
    ("eagle3", "llama", "mt-bench"): (
        ((2, 2.36), (3, 2.79), (4, 3.08), (5, 3.32), (6, 3.46), (7, 3.54)), _I20780),
    ("eagle", "llama", "mt-bench"): (
        ((2, 2.10), (3, 2.29), (4, 2.39), (5, 2.43), (6, 2.45), (7, 2.47)), _I20780),
    ("eagle", "llama", "blazedit"): (
        ((3, 2.46),), "vLLM PR #24344: EAGLE on vdaita/edit_5k_char (code editing), k=3, AL 2.46, "
                      "acceptance at positions 0.77/0.45/0.24"),
    ("ngram", "any", "blazedit"): (
        ((5, 4.59),), "vLLM PR #24344: ngram (lookup 2..5) on vdaita/edit_5k_char, k=5, AL 4.59 "
                      "over the steps that drafted"),
    ("mtp", "deepseek", "mixed"): (
        ((1, 1.875),), "DeepSeek-V3 technical report (arXiv:2412.19437) 5.4.3: second-token "
                       "acceptance 85-90% across generation topics (midpoint 87.5%)"),
    ("mtp", "deepseek", "mt-bench"): (
        ((7, 3.20),), "huggingface.co/nebius/MTP-DeepSeek-V3-0324 model card: original MTP module, "
                      "K=7, tau 3.20 (mean of MT-bench, HumanEval, GSM8K), temperature 0"),
}  # fmt: skip
DATASETS = tuple(sorted({d for _, _, d in ACCEPTANCE_TABLE}))


@dataclass(frozen=True, slots=True)
class SpeculativeSpec:
    method: str
    num_speculative_tokens: int
    per_position: tuple[float, ...]  # conditional acceptance of draft position i (len k)
    draft_model: Any = None  # ModelSpec of a `draft` method's model, else None
    model_ref: str = ""  # the name the draft model was given by
    draft_tensor_parallel_size: int = 1
    acceptance: Any = None  # the acceptance mapping as given (for config_to_dict)
    disable_by_batch_size: int | None = None  # no speculation while more seqs decode

    @property
    def k(self) -> int:
        return self.num_speculative_tokens

    @property
    def expected_length(self) -> float:
        """Mean tokens a sequence emits per step (bonus token included)."""
        return expected_length(self.per_position)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "num_speculative_tokens": self.k,
                               "acceptance": self.acceptance}  # fmt: skip
        if self.model_ref:
            out["model"] = self.model_ref
        if self.method == "draft":
            out["draft_tensor_parallel_size"] = self.draft_tensor_parallel_size
        if self.disable_by_batch_size is not None:
            out["disable_by_batch_size"] = self.disable_by_batch_size
        return out


def expected_length(per_position: tuple[float, ...] | list[float]) -> float:
    """1 + p1 + p1 p2 + ... : the mean tokens per step of the product-form acceptance model."""
    total, run = 1.0, 1.0
    for p in per_position:
        run *= p
        total += run
    return total


def rate_for_length(tau: float, k: int) -> float:
    """The constant rate a with 1 + a + ... + a^k = tau (bisection; tau in [1, k + 1])."""
    tau = min(max(tau, 1.0), k + 1.0)
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if expected_length([mid] * k) < tau:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def family_of(model: Any) -> str:
    name = f"{getattr(model, 'name', '')} {getattr(model, 'architecture', '')}".lower()
    for fam in ("deepseek", "llama", "qwen"):
        if fam in name:
            return fam
    return "any"


def table_rate(method: str, model: Any, dataset: str, k: int, where: str, field: str) -> float:
    """The constant acceptance rate a published (method, family, dataset) entry implies."""
    fam = family_of(model)
    entry = None
    for key in ((method, fam, dataset), (method, "any", dataset)):
        entry = ACCEPTANCE_TABLE.get(key)
        if entry is not None:
            break
    if entry is None:
        known = ", ".join(f"{m}/{f}/{d}" for m, f, d in ACCEPTANCE_TABLE)
        raise SpecError(where, field, dataset,
                        f"no published acceptance for method {method} on a {fam} model and this "
                        f"dataset; known method/family/dataset: {known}; or give acceptance.rate")  # fmt: skip
    points, _src = entry
    k_ref, tau = min(points, key=lambda p: (abs(p[0] - k), -p[0]))
    return rate_for_length(tau, k_ref)


def _probability(v: Any, where: str, field: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
        raise SpecError(where, field, v, "must be a probability in [0, 1]")
    return float(v)


def parse_acceptance(
    data: Any, method: str, k: int, model: Any, where: str, field: str
) -> tuple[float, ...]:
    data = require_mapping(data, where, field)
    check_keys(data, ("rate", "per_position", "dataset"), where, field)
    if len(data) != 1:
        raise SpecError(where, field, ", ".join(data) or "{}",
                        "give exactly one of rate, per_position, dataset")  # fmt: skip
    if "rate" in data:
        a = _probability(data["rate"], where, f"{field}.rate")
        return (a,) * k
    if "per_position" in data:
        pp = data["per_position"]
        if not isinstance(pp, (list, tuple)) or len(pp) != k:
            raise SpecError(where, f"{field}.per_position", pp,
                            f"must be a list of num_speculative_tokens ({k}) probabilities")  # fmt: skip
        return tuple(_probability(v, where, f"{field}.per_position.{i}") for i, v in enumerate(pp))
    ds = data["dataset"]
    if not isinstance(ds, str) or ds.lower() not in DATASETS:
        raise SpecError(where, f"{field}.dataset", ds, "must be one of " + ", ".join(DATASETS))
    return (table_rate(method, model, ds.lower(), k, where, f"{field}.dataset"),) * k


def parse_speculative(
    data: Any, model: Any, where: str, field: str, load_model: Any = None
) -> SpeculativeSpec | None:
    """``deployment.pools[i].speculative`` -> SpeculativeSpec (None when absent or null)."""
    if data is None:
        return None
    data = require_mapping(data, where, field)
    check_keys(data, SPEC_KEYS, where, field)
    method = data.get("method")
    if method not in METHODS:
        raise SpecError(where, f"{field}.method", method, "must be one of " + ", ".join(METHODS))
    k = get_number(data, "num_speculative_tokens", where, field, default=None, minimum=1,
                   integer=True, allow_none=True)  # fmt: skip
    if k is None:
        raise SpecError(where, f"{field}.num_speculative_tokens", "missing", "give k >= 1")
    if k > MAX_SPECULATIVE_TOKENS:
        raise SpecError(where, f"{field}.num_speculative_tokens", k,
                        f"at most {MAX_SPECULATIVE_TOKENS}")  # fmt: skip
    ref = data.get("model")
    draft = None
    if method == "draft":
        if not isinstance(ref, str) or not ref:
            raise SpecError(where, f"{field}.model", ref, "method draft needs a draft model name")
        if load_model is None:
            from servesim.specs.model import load_model
        draft = load_model(ref, where)
        if getattr(draft, "vocab_size", None) != getattr(model, "vocab_size", None):
            raise SpecError(where, f"{field}.model", ref,
                            "draft and target models must share a vocabulary (vocab_size differs)")  # fmt: skip
    elif ref is not None and not isinstance(ref, str):
        raise SpecError(where, f"{field}.model", ref, "must be a name")
    dtp = get_number(data, "draft_tensor_parallel_size", where, field, default=1, minimum=1,
                     integer=True)  # fmt: skip
    dis = get_number(data, "disable_by_batch_size", where, field, default=None, minimum=1,
                     integer=True, allow_none=True)  # fmt: skip
    acc_data = data.get("acceptance")
    if acc_data is None:
        raise SpecError(where, f"{field}.acceptance", "missing",
                        "give {rate: a}, {per_position: [...]} or {dataset: name}")  # fmt: skip
    pp = parse_acceptance(acc_data, method, k, model, where, f"{field}.acceptance")
    acc = {key: (list(v) if isinstance(v, (list, tuple)) else v) for key, v in acc_data.items()}
    return SpeculativeSpec(method, k, pp, draft, ref or "", dtp, acc, dis)
