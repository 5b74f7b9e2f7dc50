"""What a run costs: cloud hourly pricing (on-demand, reserved, spot, dedicated, autoscaling), TCO
(purchase amortised + power x PUE x $/kWh + maintenance + network), and per-token API prices.

Prices come from pricing/providers.yaml and pricing/api_prices.yaml (servesim.specs.cost), each
with its date and source, which every result shows. Formulas and the reasons for them:
docs/energy-and-cost.md. Everything here is arithmetic over the engine's step log and the energy
summary (servesim.energy); nothing is simulated again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from servesim.accounting import energy, hwcost
from servesim.accounting.summary import Cost, PoolCost
from servesim.accounting.usage import (  # noqa: F401  (also importable from here)
    PoolUse,
    _integrate_max,
    _merged_windows,
    autoscaled_device_s,
    pool_usage,
)
from servesim.specs.common import SpecError, load_json, require_mapping
from servesim.specs.cost import (
    DAYS_PER_MONTH,
    HOURS_PER_MONTH,
    HOURS_PER_YEAR,
    CostSpec,
    load_api_prices,
    load_providers,
    price_column,
)

if TYPE_CHECKING:  # pandas loads on first use: the print-only run never needs it
    import pandas as pd

SECONDS_PER_MONTH = DAYS_PER_MONTH * 86400.0
TIME_BILLED = ("cloud", "reserved", "spot", "dedicated")


class Quote(NamedTuple):
    """The price of one device-hour of one hardware, and where it comes from."""

    usd_per_device_hour: float | None
    provider: str  # catalog provider, "profile" (hw_profiles price_hour_usd) or "config"
    column: str  # on_demand | reserved_1y | reserved_3y | spot
    date: str
    source: str
    instance: str = ""


def quote(hw: Any, spec: CostSpec, where: str = "cost") -> Quote:
    """$/device-hour for ``hw`` under ``spec``. A provider named in the spec that does not publish
    this device (or this column) is a SpecError; with no provider, the profile's typical price is
    used and may be None (then costs are reported as None with a note)."""
    column = price_column(spec)
    if spec.price_hour_usd is not None:
        return Quote(
            spec.price_hour_usd, "config", column, "", "cost.price_hour_usd in the run config"
        )
    if spec.provider is None:
        price = getattr(hw, "price_hour_usd", None) if column == "on_demand" else None
        if price is None and column == "on_demand" and getattr(hw, "purchase_usd", 0) is None:
            bottom_up = _bottom_up_hour(hw, spec)  # no market price at all: owned, bottom-up
            if bottom_up is not None:
                return Quote(bottom_up, "bottom-up", "on_demand", "", hwcost.SOURCE)
        return Quote(
            price, "profile", "on_demand", "", f"hw_profiles/{hw.name}.yaml price.hour_usd"
        )
    catalog = load_providers()
    devices = catalog[spec.provider]
    entry = devices.get(hw.name)
    if entry is None:
        have = ", ".join(sorted(devices)) or "none"
        raise SpecError(
            where,
            "cost.provider",
            spec.provider,
            f"publishes no price for {hw.name}; it prices: {have}",
        )
    price = entry.column(column)
    if price is None:
        cols = [
            c
            for c in ("on_demand", "reserved_1y", "reserved_3y", "spot")
            if entry.column(c) is not None
        ]
        raise SpecError(where, "cost.pricing", spec.pricing,
                        f"{spec.provider} publishes no {column} price for {hw.name}; it has: {', '.join(cols)}")  # fmt: skip
    return Quote(price, spec.provider, column, entry.date, entry.source, entry.instance)


# --- the run's cost ---------------------------------------------------------------------------


def account(raw: Any, cfg: Any, energy_summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """Cost summary of a run under cfg.cost (flat keys; per pool under cost.<pool>.*)."""
    return measure(raw, cfg, energy_summary).flat()


def measure(raw: Any, cfg: Any, energy_summary: dict[str, Any] | None = None) -> Cost:
    """The typed cost section of a run under cfg.cost (summary.Cost)."""
    spec = getattr(cfg, "cost", None) or CostSpec()
    if energy_summary is None:
        energy_summary = energy.account(raw, cfg)
    return price_run(raw, cfg, energy_summary, spec)


class RunUse(NamedTuple):
    """What every pricing model needs from a run, computed once (comparisons price it ~40 times)."""

    inst: energy.Instances
    sp: energy.StepPower
    T: float
    pools: list[PoolUse]
    n_in: float
    n_out: float


def run_use(raw: Any, cfg: Any, energy_summary: dict[str, Any]) -> RunUse:
    inst = energy.instance_table(raw, cfg)
    sp = energy.step_power(raw, inst)
    T = float(energy_summary.get("energy_duration_s") or energy.horizon_s(raw))
    return RunUse(inst, sp, T, pool_usage(raw, inst, sp, T), *energy.token_totals(raw))


def evaluate(raw: Any, cfg: Any, energy_summary: dict[str, Any], spec: CostSpec,
             use: RunUse | None = None) -> dict[str, Any]:  # fmt: skip
    """The cost of a run under ``spec`` (which may differ from cfg.cost, for comparisons): flat
    keys."""
    return price_run(raw, cfg, energy_summary, spec, use).flat()


def price_run(raw: Any, cfg: Any, energy_summary: dict[str, Any], spec: CostSpec,
              use: RunUse | None = None) -> Cost:  # fmt: skip
    """The typed cost of a run under ``spec``."""
    inst, sp, T, pools, n_in, n_out = use or run_use(raw, cfg, energy_summary)
    if spec.pricing == "api":
        return _api_cost(spec, n_in, n_out, T)
    quotes = [quote(p.hardware, spec) for p in pools] if spec.pricing != "tco" else None
    if quotes is not None and any(q.usd_per_device_hour is None for q in quotes):
        missing = sorted(
            {p.hardware.name for p, q in zip(pools, quotes) if q.usd_per_device_hour is None}
        )
        return _no_price(
            spec, f"no price for {', '.join(missing)}: set cost.provider or cost.price_hour_usd"
        )
    if spec.pricing == "autoscaling":
        billed = autoscaled_device_s(raw, inst, sp, T, spec)
    else:
        billed = np.array([p.device_s for p in pools])
    by_pool: dict[str, PoolCost] = {}
    costs, idles = [], []
    for i, p in enumerate(pools):
        if spec.pricing == "tco":
            cost, idle = _tco_pool_cost(p, spec, energy_summary, T)
            rate = None
        else:
            rate = quotes[i].usd_per_device_hour
            cost = float(rate * billed[i] / 3600.0)
            idle_s = billed[i] - p.busy_device_s
            idle = float(rate * idle_s / 3600.0) if idle_s > 1e-9 * max(billed[i], 1.0) else 0.0
        costs.append(cost)
        idles.append(idle)
        hourly = rate if rate is not None else _ratio(cost * 3600.0, p.device_s)
        by_pool[p.label] = PoolCost(cost, idle, hourly, p.input_share)
    total = float(sum(costs))
    c_in = float(sum(c * p.input_share for c, p in zip(costs, pools)))
    per_hour = _deployment_per_hour(spec, pools, quotes, total, T)
    monthly = (
        per_hour * HOURS_PER_MONTH
        if spec.pricing == "dedicated"
        else _ratio(total * SECONDS_PER_MONTH, T)
    )
    price = _price_keys(spec, quotes)
    if spec.pricing == "tco" and any(p.hardware.purchase_usd is None for p in pools):
        price["price_source"] = hwcost.SOURCE + " + cost.* TCO parameters"
    return Cost(
        pools=by_pool,
        cost_usd=total,
        cost_per_hour_usd=per_hour,
        usd_per_mtok_input=_ratio(c_in * 1e6, n_in),
        usd_per_mtok_output=_ratio((total - c_in) * 1e6, n_out),
        usd_per_mtok_blended=_ratio(total * 1e6, n_in + n_out),
        monthly_usd=monthly,
        idle_fraction=energy_summary.get("idle_fraction"),
        idle_cost_usd=float(sum(idles)),
        price=price,
    )


def _bottom_up_hour(hw: Any, spec: CostSpec) -> float | None:
    """$/device-hour of owning a device priced bottom-up (None without the inputs)."""
    if hwcost.purchase_or_none(hw) is None:
        return None
    owned = tco_breakdown(hw, 1, dataclasses.replace(spec, pricing="tco"))
    return owned["total_usd_per_device_hour"]


def _deployment_per_hour(spec, pools, quotes, total, T) -> float | None:
    """$/hour of the deployment: every device at its rate for hourly billing; the run's average
    for autoscaling and TCO (whose energy part depends on load)."""
    if spec.pricing in TIME_BILLED:
        return float(sum(p.devices * q.usd_per_device_hour for p, q in zip(pools, quotes)))
    return _ratio(total * 3600.0, T)


def _tco_pool_cost(p: PoolUse, spec: CostSpec, es: dict[str, Any], T: float) -> tuple[float, float]:
    """(cost, idle cost) of one pool owned outright: fixed $/device-hour over the run plus the
    pool's simulated facility energy at $/kWh. Idle cost: the fixed part of idle device time plus
    the idle devices' energy (idle_W x PUE)."""
    b = tco_breakdown(p.hardware, 1, spec)
    fixed_h = b["total_usd_per_device_hour"] - b["energy_usd_per_device_hour"]
    energy_usd = float(es.get(f"energy.{p.label}.energy_kwh") or 0.0) * spec.electricity_usd_per_kwh
    idle_dev_s = max(p.device_s - p.busy_device_s, 0.0)
    idle_energy = (
        p.hardware.idle_W * idle_dev_s / energy.J_PER_KWH * spec.pue * spec.electricity_usd_per_kwh
    )
    return fixed_h * p.device_s / 3600.0 + energy_usd, fixed_h * idle_dev_s / 3600.0 + idle_energy


def _api_cost(spec: CostSpec, n_in: float, n_out: float, T: float) -> Cost:
    api = load_api_prices()[spec.api_model]
    c_in = n_in * api.input_usd_per_mtok / 1e6
    c_out = n_out * api.output_usd_per_mtok / 1e6
    total = c_in + c_out
    return Cost(
        cost_usd=total,
        cost_per_hour_usd=_ratio(total * 3600.0, T),
        usd_per_mtok_input=api.input_usd_per_mtok,
        usd_per_mtok_output=api.output_usd_per_mtok,
        usd_per_mtok_blended=_ratio(total * 1e6, n_in + n_out),
        monthly_usd=_ratio(total * SECONDS_PER_MONTH, T),
        idle_fraction=0.0,
        idle_cost_usd=0.0,
        price={
            "pricing": "api",
            "price_provider": api.vendor,
            "price_model": api.model,
            "price_source": api.source,
            "price_date": api.date,
        },
    )


def _price_keys(spec: CostSpec, quotes: Sequence[Quote] | None) -> dict[str, Any]:
    if quotes is None:  # tco
        return {"pricing": "tco", "price_provider": "owned", "price_source": "hw_profiles purchase_usd + cost.* TCO parameters",
                "price_date": "", "price_column": "", "price_usd_per_device_hour": None}  # fmt: skip
    uniq = lambda xs: "; ".join(dict.fromkeys(x for x in xs if x))  # noqa: E731
    rates = {q.usd_per_device_hour for q in quotes}
    return {
        "pricing": spec.pricing,
        "price_provider": uniq(q.provider for q in quotes),
        "price_column": uniq(q.column for q in quotes),
        "price_source": uniq(q.source for q in quotes),
        "price_date": uniq(q.date for q in quotes),
        "price_usd_per_device_hour": rates.pop() if len(rates) == 1 else None,
    }


def _no_price(spec: CostSpec, note: str) -> Cost:
    """Every cost None (no idle fraction), with the reason."""
    return Cost(price={"pricing": spec.pricing}, cost_note=note)


def _ratio(a: float, b: float) -> float | None:
    return float(a) / float(b) if b and b > 0 else None


# --- TCO ---------------------------------------------------------------------------------------


def tco_breakdown(hardware: Any, devices: int = 1, spec: CostSpec | None = None) -> dict[str, Any]:
    """Owning ``devices`` of ``hardware``: $ per device-hour and per hour of the lot.

    capex       purchase_usd / (lifetime_years x 8766 h)
    network     capex x network_share (switches, optics, cables bought with the devices)
    maintenance purchase_usd x maintenance_fraction / 8766 h
    energy      (idle_W + (tdp_W - idle_W) x utilisation + host_W_per_node / devices_per_node)
                x PUE x electricity_usd_per_kwh / 1000
    hosting     (tdp_W + host share) / 1000 x hosting_usd_per_kw_month / 729.6 h (if set)
    """
    spec = spec or CostSpec()
    if devices < 1:
        raise SpecError(hardware.name, "devices", devices, "must be >= 1")
    purchase = getattr(hardware, "purchase_usd", None)
    source = "purchase_usd"
    if purchase is None and hasattr(hardware, "bu"):  # no market price: the bottom-up one
        purchase, source = hwcost.purchase_or_none(hardware), "bottom-up"
    if purchase is None:
        raise SpecError(
            hardware.name,
            "price.purchase_usd",
            None,
            "no purchase price in the profile; TCO needs one",
        )
    capex = purchase / (spec.lifetime_years * HOURS_PER_YEAR)
    host_W = (hardware.host_W_per_node or 0.0) / max(hardware.devices_per_node or 1, 1)
    power_W = hardware.idle_W + (hardware.tdp_W - hardware.idle_W) * spec.utilisation + host_W
    kwh = power_W / 1000.0 * spec.pue
    per = {
        "capex": capex,
        "energy": kwh * spec.electricity_usd_per_kwh,
        "maintenance": purchase * spec.maintenance_fraction / HOURS_PER_YEAR,
        "network": capex * spec.network_share,
        "hosting": (hardware.tdp_W + host_W) / 1000.0 * spec.hosting_usd_per_kw_month / HOURS_PER_MONTH
        if spec.hosting_usd_per_kw_month is not None else 0.0,
    }  # fmt: skip
    total = sum(per.values())
    out: dict[str, Any] = {
        "hardware": hardware.name,
        "devices": devices,
        "purchase_usd": purchase,
        "price_source": source,
        "lifetime_years": spec.lifetime_years,
        "utilisation": spec.utilisation,
        "power_W_per_device": power_W,
        "pue": spec.pue,
        "electricity_usd_per_kwh": spec.electricity_usd_per_kwh,
        "energy_kwh_per_device_hour": kwh,
    }
    for k, v in per.items():
        out[f"{k}_usd_per_device_hour"] = v
    out["total_usd_per_device_hour"] = total
    for k, v in per.items():
        out[f"{k}_usd_per_hour"] = v * devices
    out["total_usd_per_hour"] = total * devices
    out["monthly_usd"] = total * devices * HOURS_PER_MONTH
    return out


# --- comparisons -------------------------------------------------------------------------------

COMPARE_COLUMNS = ("pricing", "provider", "price_column", "usd_per_device_hour", "usd_per_hour",
                   "cost_usd", "usd_per_mtok_input", "usd_per_mtok_output", "usd_per_mtok_blended",
                   "monthly_usd", "idle_cost_usd", "price_date", "price_source")  # fmt: skip


def compare_pricing(target: Any, cfg: Any = None, *, providers: Iterable[str] | None = None,
                    devices: int = 1, tokens_per_day: float | None = None) -> pd.DataFrame:  # fmt: skip
    """One row per pricing model / provider: $/hour, $/Mtok in/out/blended, monthly.

    ``target``: a Result (``.raw`` and ``.config``), a raw run (then ``cfg`` is required), a finished
    run directory (summary.json, steps.parquet, requests.parquet, config.yaml), or a HardwareSpec
    (then ``devices`` always-on devices, and $/Mtok at ``tokens_per_day`` if given).
    """
    wanted = _check_providers(providers)
    if tokens_per_day is not None and not (0 < tokens_per_day < float("inf")):
        # inf priced every token at $0/Mtok
        raise SpecError("cost", "tokens_per_day", tokens_per_day, "must be a finite number > 0")
    if hasattr(target, "tdp_W") and hasattr(target, "peak_flops"):
        return _compare_hardware(
            target, devices, tokens_per_day, wanted, (cfg.cost if cfg else None)
        )
    if isinstance(target, (str, Path)):
        target, cfg = load_run(target)
    elif hasattr(target, "raw") and hasattr(target, "config"):
        target, cfg = target.raw, target.config
    if cfg is None:
        raise SpecError("compare_pricing", "cfg", None, "a raw run needs its RunConfig")
    base = getattr(cfg, "cost", None) or CostSpec()
    es = energy.account(target, cfg)
    use = run_use(target, cfg, es)
    rows = []
    for spec, label in _candidate_specs(cfg, base, wanted):
        try:
            r = evaluate(target, cfg, es, spec, use)
        except SpecError:
            continue  # this provider does not price every pool's hardware
        if r.get("cost_usd") is None:
            continue
        rows.append(_row(r, spec, label))
    import pandas as pd

    return pd.DataFrame(rows, columns=list(COMPARE_COLUMNS))


def _check_providers(providers: Iterable[str] | None) -> list[str] | None:
    if providers is None:
        return None
    known = load_providers()
    wanted = [p for p in providers if p]
    for p in wanted:
        if p not in known:
            raise SpecError(
                "--providers",
                "providers",
                p,
                "unknown provider; one of " + ", ".join(sorted(known)),
            )
    return wanted


def _candidate_specs(cfg: Any, base: CostSpec, wanted: list[str] | None):
    rep = lambda **kw: dataclasses.replace(base, price_hour_usd=None, **kw)  # noqa: E731
    yield rep(pricing="cloud", provider=None, commitment="none"), "profile"
    for prov in wanted if wanted is not None else sorted(load_providers()):
        yield rep(pricing="cloud", provider=prov, commitment="none"), prov
        yield rep(pricing="reserved", provider=prov, commitment="1y"), prov
        yield rep(pricing="reserved", provider=prov, commitment="3y"), prov
        yield rep(pricing="spot", provider=prov, commitment="none"), prov
    yield (
        rep(pricing="autoscaling", provider=base.provider, commitment="none"),
        base.provider or "profile",
    )
    yield (
        rep(pricing="dedicated", provider=base.provider, commitment=base.commitment),
        base.provider or "profile",
    )
    yield rep(pricing="tco", provider=None), "owned"
    model = getattr(getattr(cfg, "model", None), "name", None)
    for name, api in sorted(load_api_prices().items()):
        if name == base.api_model or (model and api.serves == model):
            yield rep(pricing="api", api_model=name), api.vendor


def _row(r: dict[str, Any], spec: CostSpec, label: str) -> dict[str, Any]:
    return {
        "pricing": spec.pricing if spec.pricing != "api" else f"api:{spec.api_model}",
        "provider": label,
        "price_column": r.get("price_column", ""),
        "usd_per_device_hour": r.get("price_usd_per_device_hour"),
        "usd_per_hour": r.get("cost_per_hour_usd"),
        "cost_usd": r.get("cost_usd"),
        "usd_per_mtok_input": r.get("usd_per_mtok_input"),
        "usd_per_mtok_output": r.get("usd_per_mtok_output"),
        "usd_per_mtok_blended": r.get("usd_per_mtok_blended"),
        "monthly_usd": r.get("monthly_usd"),
        "idle_cost_usd": r.get("idle_cost_usd"),
        "price_date": r.get("price_date", ""),
        "price_source": r.get("price_source", ""),
    }


def _compare_hardware(hw: Any, devices: int, tokens_per_day: float | None,
                      wanted: list[str] | None, base: CostSpec | None) -> pd.DataFrame:  # fmt: skip
    """Always-on ``devices`` of ``hw``: every published price, the profile's, and TCO."""
    base = base or CostSpec()
    quotes: list[tuple[str, str, Quote]] = []
    if hw.price_hour_usd is not None:
        quotes.append(
            (
                "cloud",
                "profile",
                Quote(hw.price_hour_usd, "profile", "on_demand", "", f"hw_profiles/{hw.name}.yaml"),
            )
        )
    for prov, devs in sorted(load_providers().items()):
        if (wanted is not None and prov not in wanted) or hw.name not in devs:
            continue
        e = devs[hw.name]
        for col, pricing in (
            ("on_demand", "cloud"),
            ("reserved_1y", "reserved"),
            ("reserved_3y", "reserved"),
            ("spot", "spot"),
        ):
            if e.column(col) is not None:
                quotes.append(
                    (pricing, prov, Quote(e.column(col), prov, col, e.date, e.source, e.instance))
                )
    mtok_day = tokens_per_day / 1e6 if tokens_per_day else None
    rows = []
    for pricing, label, q in quotes:
        per_hour = q.usd_per_device_hour * devices
        rows.append(
            _hw_row(
                pricing,
                label,
                q.column,
                q.usd_per_device_hour,
                per_hour,
                mtok_day,
                q.date,
                q.source,
            )
        )
    if hw.purchase_usd is not None or hwcost.purchase_or_none(hw) is not None:
        b = tco_breakdown(hw, devices, base)
        src = "bottom-up " if b["price_source"] == "bottom-up" else ""
        rows.append(_hw_row("tco", "owned", "", b["total_usd_per_device_hour"], b["total_usd_per_hour"], mtok_day,
                            "", f"{src}purchase ${b['purchase_usd']:,.0f}, {base.lifetime_years:g} y, utilisation {base.utilisation:g}"))  # fmt: skip
    import pandas as pd

    return pd.DataFrame(rows, columns=list(COMPARE_COLUMNS))


def _hw_row(pricing, label, column, rate, per_hour, mtok_day, date, source) -> dict[str, Any]:
    blended = per_hour * 24.0 / mtok_day if mtok_day else None
    return {"pricing": pricing, "provider": label, "price_column": column, "usd_per_device_hour": rate,
            "usd_per_hour": per_hour, "cost_usd": None, "usd_per_mtok_input": None,
            "usd_per_mtok_output": None, "usd_per_mtok_blended": blended,
            "monthly_usd": per_hour * HOURS_PER_MONTH, "idle_cost_usd": None,
            "price_date": date, "price_source": source}  # fmt: skip


# --- finished run directories ------------------------------------------------------------------


def _read_parquet(p: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_parquet(p)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise SpecError(
            str(p), "", p.name, f"not a readable Parquet file ({exc.__class__.__name__})"
        ) from None


def load_run(path: str | Path) -> tuple[Any, Any]:
    """(raw-like view, RunConfig) of a run directory written by Result.to_dir. The view has the
    step and request columns, and instances rebuilt from the config (numbered in pool order)."""
    from servesim.specs.config import load_config

    d = Path(path)
    for name in ("summary.json", "steps.parquet", "requests.parquet", "config.yaml"):
        if not (d / name).is_file():
            raise SpecError(str(d), "", name, "missing: not a finished servesim run directory")
    cfg = load_config(str(d / "config.yaml"))
    steps = {k: v.to_numpy() for k, v in _read_parquet(d / "steps.parquet").items()}
    reqs = {k: v.to_numpy() for k, v in _read_parquet(d / "requests.parquet").items()}
    # a summary cut short (a killed writer, a truncated copy) is one SpecError, not a traceback
    summary = require_mapping(load_json(d / "summary.json"), str(d / "summary.json"), "")
    instances, i = [], 0
    for pidx, pool in enumerate(cfg.deployment.pools):
        for _ in range(pool.instances):
            instances.append(SimpleNamespace(instance_id=i, pool=pidx, role=pool.role, hardware=pool.hardware.name,
                                             devices=pool.parallelism.devices, peak_flops=None, mem_bw=None,
                                             tdp_W=None, idle_W=None))  # fmt: skip
            i += 1
    end = float(summary.get("energy_duration_s") or summary.get("duration_s") or 0.0)
    raw = SimpleNamespace(
        requests=reqs, steps=steps, instances=instances, sim_end_s=end, transfers={}
    )
    return raw, cfg
