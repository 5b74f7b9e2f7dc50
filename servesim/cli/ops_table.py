"""`servesim show model NAME --ops`: the operator list the cost model derives from."""

from __future__ import annotations

from typing import Any

from servesim.cli._render import fmt_num, key_values, table, to_json


def render_operators(
    model: Any, dtypes: Any, *, tp: int, pp: int, ep: int, fmt: str, fit: dict | None = None
) -> str:
    """One row per operator on one device: kind, part, scope, count, weights; then the totals,
    and with ``fit`` (hw, gpu_memory_utilization) whether it fits and the KV tokens left."""
    import servesim

    df = servesim.operators(model, tp=tp, pp=pp, ep=ep, dtype=dtypes)
    s = dict(df.attrs)
    if fit is not None:
        info = servesim.model_info(model, fit["hw"], tp=tp, pp=pp, ep=ep, dtype=dtypes,
                                   gpu_memory_utilization=fit["gpu_memory_utilization"])  # fmt: skip
        s.update({k: info[k] for k in ("hardware", "fits", "kv_capacity_tokens")})
    if fmt == "json":
        return to_json({"ops": df.to_dict(orient="records"), "summary": s})
    rows = [
        [r.name, r.kind, r.part, r.scope, r.count, r.rows, fmt_num(r.params),
         fmt_num(r.weight_bytes / 1e6), fmt_num(r.act_bytes)]
        for r in df.itertuples(index=False)
    ]  # fmt: skip
    head = f"{s['model']} (tp={tp} pp={pp} ep={ep}), {s['dtype']}: operators on one device"
    body = table(
        rows,
        ["op", "kind", "part", "scope", "count", "rows", "params", "weights MB", "live B/row"],
        align="llllrlrrr",
    )
    kv = [
        ("weights", f"{fmt_num(s['weight_bytes_per_device'] / 1e9)} GB per device (largest stage)"),
        ("activations", f"{fmt_num(s['activation_reserve_bytes'] / 1e9)} GB reserve"),
    ]
    if "fits" in s:
        kv.append((f"on {s['hardware']}", f"fits: {fmt_num(s['fits'])}, KV tokens "
                   f"{fmt_num(s['kv_capacity_tokens'])}"))  # fmt: skip
    return "\n".join([head, "", body, "", key_values(kv)])
