"""CostSpec: the `cost:` block of a run config (pricing model and its parameters), and the price
catalogs it refers to (pricing/providers.yaml, pricing/api_prices.yaml).

The catalogs are input data like hw_profiles/: they are read and validated here, once, and every
price in them carries its date and source. Defaults below carry their source in a comment; the
formulas that use them live in servesim/costing.py and servesim/energy.py.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from servesim.specs.common import (
    SpecError,
    check_keys,
    get_choice,
    get_number,
    get_str,
    load_yaml,
    require_mapping,
)

PRICING_MODELS = ("cloud", "reserved", "spot", "autoscaling", "dedicated", "tco", "api")
COMMITMENTS = ("none", "1y", "3y")
# Catalog columns, $/device-hour. Which column a pricing model reads: costing.price_column().
PRICE_COLUMNS = ("on_demand", "reserved_1y", "reserved_3y", "spot")

HOURS_PER_YEAR = 365.25 * 24.0
DAYS_PER_MONTH = 30.4  # 365 / 12, rounded as finance teams quote "a month"
HOURS_PER_MONTH = DAYS_PER_MONTH * 24.0


@dataclass(frozen=True, slots=True)
class CostSpec:
    pricing: str = "cloud"
    provider: str | None = None  # None: the hardware profile's typical price (price_hour_usd)
    region: str | None = None  # informational; catalog prices name their own region
    commitment: str = "none"  # reserved/dedicated: which catalog column (1y, 3y)
    price_hour_usd: float | None = None  # explicit $/device-hour (your contract); beats the catalog
    # autoscaling: billed replica time (see costing.autoscaled_replica_seconds)
    min_replicas: int = 0
    scale_up_delay_s: float = 0.0  # a replica is billed this long before each busy period (boot)
    idle_timeout_s: float = 0.0  # ...and kept billed this long after its last step
    # TCO: purchase amortised over the lifetime, plus power x PUE x $/kWh, maintenance, network
    # Amazon shortened the useful life of part of its servers from 6 to 5 years in Feb 2025,
    # citing the pace of AI hardware (Q4 2024 results; realclear.ai, tmls.com summaries).
    lifetime_years: float = 5.0
    # EIA Electric Power Monthly Table 5.6.B (July 2024 YTD), industrial sector: 7.7-8.3 c/kWh in
    # the Middle Atlantic, East and West North Central census divisions.
    electricity_usd_per_kwh: float = 0.08
    # Uptime Institute Global Data Center Survey 2024: average annual PUE 1.56 at respondents'
    # largest site (new large facilities reach ~1.3; hyperscalers ~1.1).
    pue: float = 1.56
    maintenance_fraction: float = 0.0  # of purchase price per year; no published default found
    # Switches + InfiniBand cabling ~11% of H100 node cost for a 128-node cluster (public H100
    # cluster cost sheet, Aug 2024, Thinkmate and FS.com quotes).
    network_share: float = 0.11
    hosting_usd_per_kw_month: float | None = None  # colocation space+cooling per provisioned kW
    utilisation: float = 0.5  # tco_breakdown only: device utilisation the energy line assumes
    api_model: str | None = None  # pricing/api_prices.yaml id for `api` pricing and comparisons


_DEFAULT = CostSpec()
_KEYS = tuple(f.name for f in fields(CostSpec))


def parse_cost(data: Mapping[str, Any] | None, where: str) -> CostSpec:
    """The `cost:` block -> CostSpec. None (absent) = cloud on-demand at the profile's price."""
    if data is None:
        return _DEFAULT
    data = require_mapping(data, where, "cost")
    check_keys(data, _KEYS, where, "cost")
    p = "cost"
    pricing = get_choice(data, "pricing", PRICING_MODELS, where, p, default="cloud")
    provider = _opt_str(data, "provider", where)
    if provider is not None:
        known = sorted(load_providers())
        if provider not in known:
            raise SpecError(
                where, "cost.provider", provider, "unknown provider; one of " + ", ".join(known)
            )
    commitment = get_choice(data, "commitment", COMMITMENTS, where, p, default="none")
    if pricing == "reserved" and commitment == "none":
        commitment = "1y"  # "reserved" without a term means the shortest published one
    api_model = _opt_str(data, "api_model", where)
    if api_model is not None:
        known = sorted(load_api_prices())
        if api_model not in known:
            raise SpecError(
                where, "cost.api_model", api_model, "unknown API model; one of " + ", ".join(known)
            )
    if pricing == "api" and api_model is None:
        raise SpecError(
            where,
            "cost.api_model",
            "<missing>",
            "required for pricing: api; one of " + ", ".join(sorted(load_api_prices())),
        )
    num = functools.partial(get_number, data, where=where, prefix=p)
    spec = CostSpec(
        pricing=pricing,
        provider=provider,
        region=_opt_str(data, "region", where),
        commitment=commitment,
        price_hour_usd=num("price_hour_usd", default=None, minimum=0.0, allow_none=True),
        min_replicas=num("min_replicas", default=0, minimum=0, integer=True),
        scale_up_delay_s=num("scale_up_delay_s", default=0.0, minimum=0.0),
        idle_timeout_s=num("idle_timeout_s", default=0.0, minimum=0.0),
        lifetime_years=num(
            "lifetime_years", default=_DEFAULT.lifetime_years, minimum=0.0, exclusive_min=True
        ),
        electricity_usd_per_kwh=num(
            "electricity_usd_per_kwh", default=_DEFAULT.electricity_usd_per_kwh, minimum=0.0
        ),
        pue=num("pue", default=_DEFAULT.pue, minimum=1.0),
        maintenance_fraction=num("maintenance_fraction", default=0.0, minimum=0.0),
        network_share=num("network_share", default=_DEFAULT.network_share, minimum=0.0),
        hosting_usd_per_kw_month=num(
            "hosting_usd_per_kw_month", default=None, minimum=0.0, allow_none=True
        ),
        utilisation=num("utilisation", default=_DEFAULT.utilisation, minimum=0.0, maximum=1.0),
        api_model=api_model,
    )
    if price_column(spec) != "on_demand" and spec.provider is None and spec.price_hour_usd is None:
        raise SpecError(where, "cost.provider", "<missing>",
                        f"pricing {pricing} needs a provider that publishes {price_column(spec)} prices "
                        "(or cost.price_hour_usd); one of " + ", ".join(sorted(load_providers())))  # fmt: skip
    return spec


def cost_to_dict(spec: CostSpec) -> dict[str, Any]:
    """Every field, so that the resolved config round-trips through parse_cost."""
    return {name: getattr(spec, name) for name in _KEYS}


def _opt_str(data: Mapping[str, Any], key: str, where: str) -> str | None:
    if data.get(key) is None:
        return None
    return get_str(data, key, where, "cost")


# --- price catalogs -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DevicePrice:
    """One provider's published $/device-hour for one catalog device; a column not published is None."""

    provider: str
    device: str
    on_demand: float | None
    reserved_1y: float | None
    reserved_3y: float | None
    spot: float | None
    instance: str
    region: str
    date: str
    source: str
    note: str = ""

    def column(self, name: str) -> float | None:
        return getattr(self, name)


@dataclass(frozen=True, slots=True)
class ApiPrice:
    model: str
    vendor: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    date: str
    source: str
    serves: str = ""  # model_templates/ id of the open model this API serves ("" for proprietary)
    note: str = ""


def pricing_dir() -> Path:
    """pricing/ at the repository root, or servesim/_data/pricing in an installed wheel."""
    here = Path(__file__).resolve().parent.parent  # servesim/
    for cand in (here.parent / "pricing", here / "_data" / "pricing"):
        if cand.is_dir():
            return cand
    raise SpecError(
        "pricing", "", str(here.parent / "pricing"), "price catalog directory not found"
    )


@functools.lru_cache(maxsize=8)
def load_providers(path: str | None = None) -> dict[str, dict[str, DevicePrice]]:
    """providers.yaml -> provider -> device id -> DevicePrice (validated; dates and sources required)."""
    p = Path(path) if path else pricing_dir() / "providers.yaml"
    where = str(p)
    data = require_mapping(load_yaml(p), where, "")
    out: dict[str, dict[str, DevicePrice]] = {}
    for prov, block in data.items():
        block = require_mapping(block, where, str(prov))
        check_keys(block, ("name", "url", "devices"), where, str(prov))
        devices = require_mapping(block.get("devices", {}), where, f"{prov}.devices")
        out[str(prov)] = {
            str(dev): _device_price(str(prov), str(dev), e, where) for dev, e in devices.items()
        }
    return out


_ENTRY_KEYS = (*PRICE_COLUMNS, "instance", "region", "date", "source", "note")


def _device_price(prov: str, dev: str, entry: Any, where: str) -> DevicePrice:
    prefix = f"{prov}.devices.{dev}"
    entry = require_mapping(entry, where, prefix)
    check_keys(entry, _ENTRY_KEYS, where, prefix)
    cols = {
        c: get_number(entry, c, where, prefix, default=None, minimum=0.0, allow_none=True)
        for c in PRICE_COLUMNS
    }
    if all(v is None for v in cols.values()):
        raise SpecError(
            where, prefix, dev, "no price in any column (" + ", ".join(PRICE_COLUMNS) + ")"
        )
    return DevicePrice(
        provider=prov,
        device=dev,
        instance=str(entry.get("instance", "")),
        region=str(entry.get("region", "")),
        date=str(get_str_or_date(entry, "date", where, prefix)),
        source=get_str(entry, "source", where, prefix),
        note=str(entry.get("note", "")),
        **cols,
    )


def get_str_or_date(entry: Mapping[str, Any], key: str, where: str, prefix: str) -> str:
    """YAML reads 2026-11-09 as a date; keep it as ISO text. Required."""
    if key not in entry or entry[key] in (None, ""):
        raise SpecError(
            where, f"{prefix}.{key}", "<missing>", "required (every price carries its date)"
        )
    return str(entry[key])


@functools.lru_cache(maxsize=8)
def load_api_prices(path: str | None = None) -> dict[str, ApiPrice]:
    """api_prices.yaml -> model id -> ApiPrice ($ per million input/output tokens)."""
    p = Path(path) if path else pricing_dir() / "api_prices.yaml"
    where = str(p)
    data = require_mapping(load_yaml(p), where, "")
    out: dict[str, ApiPrice] = {}
    for model, e in data.items():
        prefix = str(model)
        e = require_mapping(e, where, prefix)
        check_keys(
            e,
            (
                "vendor",
                "serves",
                "input_usd_per_mtok",
                "output_usd_per_mtok",
                "date",
                "source",
                "note",
            ),
            where,
            prefix,
        )
        out[prefix] = ApiPrice(
            model=prefix,
            vendor=get_str(e, "vendor", where, prefix),
            input_usd_per_mtok=get_number(e, "input_usd_per_mtok", where, prefix, minimum=0.0),
            output_usd_per_mtok=get_number(e, "output_usd_per_mtok", where, prefix, minimum=0.0),
            date=get_str_or_date(e, "date", where, prefix),
            source=get_str(e, "source", where, prefix),
            serves=str(e.get("serves", "") or ""),
            note=str(e.get("note", "")),
        )
    return out


def price_column(spec: CostSpec) -> str:
    """Catalog column a pricing model reads. Autoscaling reads on-demand; dedicated reads the
    committed column when a commitment is set."""
    if spec.pricing == "spot":
        return "spot"
    if spec.pricing in ("reserved", "dedicated") and spec.commitment in ("1y", "3y"):
        return f"reserved_{spec.commitment}"
    return "on_demand"


def check_prices(spec: CostSpec, hardware_names: Sequence[str], where: str) -> None:
    """Fail before simulating when the named provider does not price a pool's hardware in the
    column the pricing model needs (the same rule as costing.quote)."""
    if spec.provider is None or spec.price_hour_usd is not None or spec.pricing in ("tco", "api"):
        return
    column = price_column(spec)
    devices = load_providers()[spec.provider]
    for name in hardware_names:
        entry = devices.get(name)
        if entry is None or entry.column(column) is None:
            have = ", ".join(sorted(devices)) or "none"
            raise SpecError(
                where,
                "cost.provider",
                spec.provider,
                f"publishes no {column} price for {name}; it prices: {have}",
            )
