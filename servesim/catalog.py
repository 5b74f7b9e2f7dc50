"""The packaged catalogs: hw_profiles/ and model_templates/ (and traces/, pricing/).

Finds the data directories (repository root in a checkout, ``servesim/_data/`` in a wheel),
resolves catalog ids and aliases case-insensitively, and lists the entries as tables.
The loaders themselves live in servesim.specs (load_hardware, load_model).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

from servesim.specs.hardware import catalog_ids, data_dir, normalise_name, resolve_catalog

__all__ = [
    "data_dir", "describe_hardware", "describe_model", "hardware_ids", "list_hardware",
    "list_models", "list_schedulers", "list_traces", "model_ids", "normalise_name", "resolve",
]  # fmt: skip


def hardware_ids() -> list[str]:
    """Ids of the hardware profiles (file stems of hw_profiles/*.yaml), sorted."""
    return catalog_ids("hardware")


def model_ids() -> list[str]:
    """Ids of the model templates (file stems of model_templates/*), sorted."""
    return catalog_ids("model")


def resolve(kind: str, name_or_path: str | Path, where: str | None = None) -> Path:
    """The file behind a catalog id, alias or path (see servesim.specs.hardware.resolve_catalog)."""
    return resolve_catalog(kind, name_or_path, where)


# ---------------------------------------------------------------------------------------- tables


def list_hardware() -> pd.DataFrame:
    """One row per hardware profile: id, vendor, dense peak TFLOP/s, memory, links, power, price."""
    import pandas as pd

    from servesim.specs.hardware import load_hardware

    rows = [_hardware_row(load_hardware(ident)) for ident in hardware_ids()]
    frame = pd.DataFrame(rows, columns=_HW_COLUMNS)
    return frame.astype({"compute_units": "Int64"})


_HW_COLUMNS = [
    "id", "name", "vendor", "bf16_tflops", "fp8_tflops", "fp4_tflops", "compute_units", "memory_GB",
    "memory_bw_GBps", "scaleup_devices", "scaleup_bw_GBps", "scaleout_bw_GBps", "tdp_W",
    "idle_W", "price_hour_usd", "purchase_usd",
]  # fmt: skip


def _hardware_row(hw: Any) -> dict[str, Any]:
    tf = dict(hw.tflops)
    return {
        "id": hw.name,
        "name": hw.display_name,
        "vendor": hw.vendor,
        "bf16_tflops": tf.get("bf16"),
        "fp8_tflops": tf.get("fp8"),
        "fp4_tflops": tf.get("fp4"),
        "compute_units": hw.compute_units,
        "memory_GB": hw.memory_GB,
        "memory_bw_GBps": hw.memory_bw_GBps,
        "scaleup_devices": hw.scaleup_devices,
        "scaleup_bw_GBps": hw.scaleup_bw_GBps,
        "scaleout_bw_GBps": hw.scaleout_bw_GBps,
        "tdp_W": hw.tdp_W,
        "idle_W": hw.idle_W,
        "price_hour_usd": hw.price_hour_usd,
        "purchase_usd": hw.purchase_usd,
    }


def list_models() -> pd.DataFrame:
    """One row per model template: id, type (dense/moe), attention, params, layers, KV per token."""
    import pandas as pd

    from servesim.specs.model import load_model

    rows = [_model_row(load_model(ident)) for ident in model_ids()]
    frame = pd.DataFrame(rows, columns=_MODEL_COLUMNS)
    return frame.astype({"experts": "Int64", "experts_per_token": "Int64"})


_MODEL_COLUMNS = [
    "id", "name", "architecture", "type", "attention", "params_total_B", "params_active_B",
    "layers", "hidden", "heads", "kv_heads", "experts", "experts_per_token",
    "kv_bytes_per_token_bf16", "max_context",
]  # fmt: skip


def _model_row(m: Any) -> dict[str, Any]:
    return {
        "id": m.name,
        "name": m.display_name or m.name,
        "architecture": m.architecture,
        "type": "moe" if m.is_moe else "dense",
        "attention": m.attention,
        "params_total_B": round(m.params_total / 1e9, 2),
        "params_active_B": round(m.params_active / 1e9, 2),
        "layers": m.num_layers,
        "hidden": m.hidden_size,
        "heads": m.num_heads,
        "kv_heads": m.num_kv_heads,
        "experts": m.num_experts if m.is_moe else None,
        "experts_per_token": m.experts_per_token if m.is_moe else None,
        "kv_bytes_per_token_bf16": m.kv_elems_per_token_per_layer * m.num_layers * 2,
        "max_context": m.max_position_embeddings,
    }


def list_schedulers() -> pd.DataFrame:
    """Scheduler policies and engine profiles (from servesim.sim.batching's registries).

    Empty when the engine is not installed yet.
    """
    import pandas as pd

    rows: list[dict[str, str]] = []
    try:
        from servesim.sim import batching
    except ImportError:
        return pd.DataFrame(rows, columns=["kind", "name", "description"])
    for name, cls in sorted(getattr(batching, "SCHEDULERS", {}).items()):
        doc = (cls.__doc__ or "").strip().splitlines()
        rows.append({"kind": "policy", "name": name, "description": doc[0] if doc else ""})
    for name, profile in sorted(getattr(batching, "ENGINE_PROFILES", {}).items()):
        desc = profile.get("description", "") if isinstance(profile, dict) else ""
        rows.append({"kind": "engine", "name": name, "description": desc})
    return pd.DataFrame(rows, columns=["kind", "name", "description"])


def list_traces() -> pd.DataFrame:
    """Public traces that `servesim trace fetch` knows, plus the files bundled in traces/."""
    import pandas as pd

    rows: list[dict[str, str]] = []
    try:
        from servesim.workload.traces import PUBLIC_TRACES
    except ImportError:
        PUBLIC_TRACES = {}
    for name, info in sorted(PUBLIC_TRACES.items()):
        rows.append({
            "name": name, "kind": "public", "format": info.get("format", ""),
            "location": info.get("url", ""), "description": info.get("description", ""),
        })  # fmt: skip
    folder = data_dir("traces")
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix in (".csv", ".jsonl", ".json", ".gz", ".parquet"):
                rows.append({
                    "name": path.stem, "kind": "bundled", "format": path.suffix.lstrip("."),
                    "location": str(path), "description": "",
                })  # fmt: skip
    return pd.DataFrame(rows, columns=["name", "kind", "format", "location", "description"])


def describe_hardware(hw: Any) -> dict[str, Any]:
    """Every field of a HardwareSpec as a flat, JSON-ready dict (for `servesim show hardware`)."""
    out: dict[str, Any] = {
        "id": hw.name, "display_name": hw.display_name, "vendor": hw.vendor,
        "aliases": list(hw.aliases),
    }  # fmt: skip
    for dtype, value in hw.tflops:
        out[f"{dtype}_tflops_dense"] = value
    out.update(
        compute_units=hw.compute_units,
        memory_type=hw.memory_type,
        memory_GB=hw.memory_GB,
        memory_bw_GBps=hw.memory_bw_GBps,
        memory_tiers=[
            {"name": t.name, "capacity_GB": t.capacity_GB, "bandwidth_GBps": t.bandwidth_GBps}
            for t in hw.memory_tiers
        ],
        scaleup=hw.scaleup_name,
        scaleup_devices=hw.scaleup_devices,
        scaleup_bw_GBps=hw.scaleup_bw_GBps,
        scaleup_latency_us=hw.scaleup_latency_us,
        scaleout=hw.scaleout_name,
        scaleout_bw_GBps=hw.scaleout_bw_GBps,
        scaleout_latency_us=hw.scaleout_latency_us,
        devices_per_node=hw.devices_per_node,
        tdp_W=hw.tdp_W,
        idle_W=hw.idle_W,
        host_W_per_node=hw.host_W_per_node,
        host_W_per_device=hw.host_W_per_node / hw.devices_per_node,
        price_hour_usd=hw.price_hour_usd,
        purchase_usd=hw.purchase_usd,
        overhead_s=hw.overhead_s,
        efficiency=dict(hw.efficiency),
        fitted=hw.fitted,
        source=hw.source,
    )
    return out


def describe_model(m: Any, dtypes: tuple[str, ...] = ("bf16", "fp8")) -> dict[str, Any]:
    """Shapes, parameter counts and per-dtype weight and KV bytes of a ModelSpec.

    Bytes here are whole-model, unsharded: params x bytes per element; KV per token over all
    layers. Sharding, fit and KV capacity come from the cost model (servesim.model_info).
    """
    from servesim.specs.dtypes import DTYPE_BYTES

    out: dict[str, Any] = {
        "id": m.name, "display_name": m.display_name or m.name, "architecture": m.architecture,
        "type": "moe" if m.is_moe else "dense", "attention": m.attention,
        "params_total": m.params_total, "params_active": m.params_active,
        "layers": m.num_layers, "hidden_size": m.hidden_size, "heads": m.num_heads,
        "kv_heads": m.num_kv_heads, "head_dim": m.head_dim,
        "intermediate_size": m.intermediate_size, "vocab_size": m.vocab_size,
        "tie_word_embeddings": m.tie_word_embeddings,
        "max_position_embeddings": m.max_position_embeddings,
    }  # fmt: skip
    if m.attention == "mla":
        out.update(q_lora_rank=m.q_lora_rank, kv_lora_rank=m.kv_lora_rank,
                   qk_rope_head_dim=m.qk_rope_head_dim, v_head_dim=m.v_head_dim)  # fmt: skip
    if m.is_moe:
        out.update(
            experts=m.num_experts, experts_per_token=m.experts_per_token,
            shared_experts=m.num_shared_experts, moe_intermediate_size=m.moe_intermediate_size,
            moe_layers=m.moe_layers, dense_layers=m.dense_layers,
        )  # fmt: skip
    if m.sliding_window:
        out.update(sliding_window=m.sliding_window, sliding_layers=m.sliding_layers)
    if m.attention_chunk_size:
        out.update(attention_chunk_size=m.attention_chunk_size, chunked_layers=m.chunked_layers)
    kv_elems = m.kv_elems_per_token_per_layer * m.num_layers
    for dtype in dict.fromkeys(dtypes):
        out[f"weight_bytes_{dtype}"] = m.params_total * DTYPE_BYTES[dtype]
        out[f"kv_bytes_per_token_{dtype}"] = kv_elems * DTYPE_BYTES[dtype]
    out["source"] = m.source
    return out
