"""Hugging Face models as people name them: repo ids, the local HF cache, quantization_config.

Name resolution (``resolve_hf``), used by ``load_model`` when the catalog does not know a name:
1. a repo id (``org/name``) whose ``config.json`` is in the local Hugging Face cache
   (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``; the snapshot
   ``refs/main`` points to, else the newest). With ``huggingface_hub`` installed its
   ``try_to_load_from_cache`` is asked first; it reads the same cache and never the network;
2. the repo id's common spellings, looked up in the catalog: without the org, without a leading
   ``Meta-`` (``Meta-Llama-3.1-8B-Instruct`` is ``Llama-3.1-8B-Instruct``), without the
   ``-Instruct``/``-Chat``/``-it``/``-hf`` suffix (a fine-tune has the base model's shapes).
Nothing here downloads: a model that is neither cached nor in the catalog is a SpecError that
says how to get its config.json (``huggingface-cli download ORG/NAME config.json``).

Quantization (``quantization_dtypes``): a checkpoint's ``quantization_config`` fixes the format
its weights are stored in, and sometimes activations and KV cache:
- ``awq`` (bits 4) and ``gptq`` (bits 4 or 8): int4/int8 weights, 16-bit activations and KV;
- ``fp8``: fp8 weights and activations (vLLM's Fp8Config), 16-bit KV unless ``kv_cache_scheme``;
- ``compressed-tensors``: the first config group's ``weights`` and ``input_activations``
  (``num_bits`` and ``type`` int/float), ``kv_cache_scheme`` for the KV cache;
- ``mxfp4`` (gpt-oss): fp4 weights (MXFP4 covers the MoE experts, which hold over 90% of
  gpt-oss's parameters; servesim has one weight format per model), bf16 activations and KV;
- ``bitsandbytes``: int4 (``load_in_4bit``) or int8 weights; ``modelopt``: FP8 or NVFP4.
The run config's ``dtype`` then defaults to that (specs/config.py); a dtype the user gives as a
mapping still wins.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from servesim.specs.common import SpecError

_SUFFIXES = ("-instruct", "-chat", "-it", "-hf", "-base")


def hub_cache_dir() -> Path:
    """The local Hugging Face hub cache folder (see the module doc)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def is_repo_id(text: str) -> bool:
    """``org/name``: one slash, no file suffix, not a relative or absolute path."""
    return (
        text.count("/") == 1
        and not text.startswith((".", "/", "~"))
        and not text.endswith((".yaml", ".yml", ".json"))
        and all(re.fullmatch(r"[\w.\-]+", part) for part in text.split("/"))
    )


def cached_config(repo_id: str) -> Path | None:
    """The cached ``config.json`` of a repo id, or None; never a network call."""
    try:
        from huggingface_hub import try_to_load_from_cache  # optional
    except ImportError:
        try_to_load_from_cache = None
    if try_to_load_from_cache is not None:
        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=str(hub_cache_dir()))
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    repo = hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    snaps = repo / "snapshots"
    if not snaps.is_dir():
        return None
    ref = repo / "refs" / "main"
    if ref.is_file():
        f = snaps / ref.read_text(encoding="utf-8").strip() / "config.json"
        if f.is_file():
            return f
    found_files = sorted(
        (p for p in snaps.glob("*/config.json") if p.is_file()),
        key=lambda p: p.stat().st_mtime_ns,
    )
    return found_files[-1] if found_files else None


def name_candidates(repo_id: str) -> list[str]:
    """Spellings of a repo id to look up in the catalog, most specific first."""
    org, _, name = repo_id.rpartition("/")
    names = [name]
    if name.lower().startswith("meta-"):
        names.append(name[5:])
    for n in list(names):
        for suffix in _SUFFIXES:
            if n.lower().endswith(suffix):
                names.append(n[: -len(suffix)])
    out = []
    for n in names:
        out += [f"{org}/{n}", n] if org else [n]
    return list(dict.fromkeys(out))


def resolve_hf(name: str, lookup: Any) -> Path | None:
    """A file for an HF-style name: the cached config.json, else a catalog entry found under one
    of its spellings (``lookup(text) -> Path | None``); None when neither knows it."""
    if is_repo_id(name):
        cfg = cached_config(name)
        if cfg is not None:
            return cfg
    for cand in name_candidates(name)[1:] if "/" in name else name_candidates(name):
        found = lookup(cand)
        if found is not None:
            return found
    return None


def resolve_model_file(name_or_path: Any, where: str | None) -> Path:
    """load_model's fallback after the catalog: the HF file for ``name_or_path``, or the
    catalog's own SpecError (with a hint to fetch the config) when nothing knows it."""
    from servesim.specs.hardware import resolve_catalog

    def lookup(text: str) -> Path | None:
        try:
            return resolve_catalog("model", text, where)
        except SpecError:
            return None

    text = str(name_or_path)
    found = resolve_hf(text, lookup) if isinstance(name_or_path, str) else None
    if found is not None:
        return found
    try:
        return resolve_catalog("model", name_or_path, where)  # re-raise the catalog's error
    except SpecError as exc:
        hint = download_hint(text)
        if not hint:
            raise
        raise SpecError(where or "", "model", text, f"unknown model; {hint}") from exc


def download_hint(name: str) -> str:
    if not is_repo_id(name):
        return ""
    return (
        f"not in the local HF cache ({hub_cache_dir()}) either; fetch its config with "
        f"`huggingface-cli download {name} config.json` or pass a folder with config.json"
    )


# ------------------------------------------------------------------------------- quantization


@functools.lru_cache(maxsize=64)
def _config_of(path: str, mtime_ns: int) -> Mapping[str, Any] | None:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def model_quantization(model: str | Path | None) -> dict[str, str] | None:
    """The dtype mapping a model's quantization_config implies (``model``: a name or path as
    load_model takes), or None (not quantized, or not an HF config.json)."""
    if model is None or model == "":
        return None
    from servesim.specs.hardware import resolve_catalog

    try:
        p = resolve_catalog("model", model)
    except SpecError:
        p = resolve_model_file(model, None)
    if p.suffix != ".json" or not p.is_file():
        return None
    data = _config_of(str(p), p.stat().st_mtime_ns)
    q = data.get("quantization_config") if data else None
    if not isinstance(q, Mapping):
        return None
    return quantization_dtypes(q, str(p))


def quantization_dtypes(q: Mapping[str, Any], where: str = "quantization_config") -> dict:
    """``quantization_config`` -> ``{weights, activations, kv_cache}`` (servesim dtype names)."""
    method = str(q.get("quant_method", "")).lower().replace("_", "-")
    kv = _scheme(q.get("kv_cache_scheme"))
    if method in ("awq", "gptq", "awq-marlin", "gptq-marlin"):
        bits = int(q.get("bits", q.get("w_bit", 4)))
        if bits not in (4, 8):
            raise SpecError(where, "quantization_config.bits", bits, "must be 4 or 8")
        return _dtypes("int4" if bits == 4 else "int8", "bf16", kv)
    if method == "fp8":
        return _dtypes("fp8", "fp8", kv)
    if method == "compressed-tensors":
        groups = q.get("config_groups")
        first = next(iter(groups.values()), None) if isinstance(groups, Mapping) else None
        if not isinstance(first, Mapping):
            raise SpecError(where, "quantization_config.config_groups", groups, "needs a group")
        w = _scheme(first.get("weights"))
        if w is None:
            raise SpecError(where, "quantization_config.config_groups.weights", None, "missing")
        act = _scheme(first.get("input_activations")) or "bf16"
        return _dtypes(w, act if act != "int4" else "bf16", kv)
    if method == "mxfp4":
        return _dtypes("fp4", "bf16", kv)
    if method == "bitsandbytes":
        return _dtypes("int4" if q.get("load_in_4bit") else "int8", "bf16", kv)
    if method == "modelopt":
        algo = str(q.get("quant_algo", "")).upper()
        if algo in ("FP8", "NVFP4"):
            w = "fp8" if algo == "FP8" else "fp4"
            return _dtypes(w, w, _scheme(q.get("kv_cache_quant_algo")) or kv)
    raise SpecError(
        where, "quantization_config.quant_method", q.get("quant_method"),
        "unsupported; awq, gptq, fp8, compressed-tensors, mxfp4, bitsandbytes, modelopt "
        "(or set dtype explicitly)",
    )  # fmt: skip


def _scheme(s: Any) -> str | None:
    """A compressed-tensors scheme ({num_bits, type}) or a name ("FP8") -> a dtype name."""
    if isinstance(s, str):
        return {"FP8": "fp8", "INT8": "int8", "NVFP4": "fp4"}.get(s.upper())
    if not isinstance(s, Mapping) or "num_bits" not in s:
        return None
    bits, kind = int(s["num_bits"]), str(s.get("type", "int")).lower()
    table = {(8, "float"): "fp8", (8, "int"): "int8", (4, "float"): "fp4", (4, "int"): "int4"}
    return table.get((bits, kind), "bf16" if bits >= 16 else None)


def _dtypes(weights: str, activations: str, kv: str | None) -> dict[str, str]:
    return {"weights": weights, "activations": activations, "kv_cache": kv or "bf16"}
