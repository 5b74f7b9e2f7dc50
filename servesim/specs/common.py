"""Shared validation helpers: every input error becomes one SpecError naming where, what and what is allowed."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser when built
    """SafeLoader that reads ``1e-08`` as a float (YAML 1.2), not the string PyYAML's 1.1 rules give."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str):
    """yaml.safe_load with YAML 1.2 floats; raises yaml.YAMLError like safe_load."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


class SpecError(ValueError):
    """A bad input: ``where`` (file or source), ``field`` (dotted key), ``value`` and what is ``allowed``.

    ``str(err)`` is the one line the CLI prints before exiting with code 2.
    """

    def __init__(self, where: str, field: str, value: Any, allowed: str):
        if hasattr(value, "item") and not isinstance(value, (str, bytes)):
            value = value.item()  # numpy scalar: show 5, not np.int64(5)
        self.where = str(where)
        self.field = field
        self.value = value
        self.allowed = allowed
        shown = repr(value) if not isinstance(value, str) else value
        if len(shown) > 80:
            shown = shown[:77] + "..."
        loc = f"{self.where}: " if self.where else ""
        if field and shown == field.rsplit(".", 1)[-1]:
            fld = f"{field}: "  # an unknown key is its own value
        elif field:
            fld = f"{field} = {shown}: "
        else:
            fld = f"{shown}: " if shown and shown != self.where else ""
        super().__init__(f"{loc}{fld}{allowed}")


def load_yaml(path: str | Path, where: str | None = None) -> Any:
    """Read a YAML (or JSON) file; a missing or malformed file is a SpecError, not a traceback."""
    p = Path(path)
    where = where or str(p)
    if not p.is_file():
        raise SpecError(where, "", str(p), "file not found")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(where, "", str(p), f"cannot be read ({exc.__class__.__name__})") from None
    try:
        return parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        pos = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid syntax"
        raise SpecError(where, "", str(p), f"malformed YAML/JSON{pos}: {problem}") from None


def require_mapping(data: Any, where: str, field: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise SpecError(where, field, data, "must be a mapping")
    return data


def check_keys(data: Mapping[str, Any], allowed: Iterable[str], where: str, prefix: str) -> None:
    """Unknown keys are errors (typos must not become silent defaults)."""
    allowed = list(allowed)
    for key in data:
        if key not in allowed:
            field = f"{prefix}.{key}" if prefix else str(key)
            raise SpecError(where, field, key, "unknown key; allowed: " + ", ".join(allowed))


def _join(prefix: str, field: str) -> str:
    return f"{prefix}.{field}" if prefix else field


def get_number(
    data: Mapping[str, Any],
    key: str,
    where: str,
    prefix: str = "",
    *,
    default: Any = ...,
    minimum: float | None = None,
    exclusive_min: bool = False,
    maximum: float | None = None,
    integer: bool = False,
    allow_none: bool = False,
) -> Any:
    """A finite number (or int) in range; ``default=...`` means required."""
    field = _join(prefix, key)
    if key not in data:
        if default is ...:
            raise SpecError(where, field, "<missing>", "required")
        return default
    value = data[key]
    if value is None:
        if allow_none:
            return None
        raise SpecError(where, field, value, "must be a number")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(where, field, value, "must be a number")
    if integer and not (isinstance(value, int) or float(value).is_integer()):
        raise SpecError(where, field, value, "must be a whole number")
    if not math.isfinite(float(value)):
        raise SpecError(where, field, value, "must be finite")
    rng = _range_text(minimum, exclusive_min, maximum)
    if minimum is not None and (value <= minimum if exclusive_min else value < minimum):
        raise SpecError(where, field, value, f"must be {rng}")
    if maximum is not None and value > maximum:
        raise SpecError(where, field, value, f"must be {rng}")
    return int(value) if integer else float(value)


def _range_text(minimum, exclusive_min, maximum) -> str:
    parts = []
    if minimum is not None:
        parts.append(f"{'>' if exclusive_min else '>='} {minimum:g}")
    if maximum is not None:
        parts.append(f"<= {maximum:g}")
    return " and ".join(parts) or "a number"


def get_choice(
    data: Mapping[str, Any],
    key: str,
    choices: Iterable[str],
    where: str,
    prefix: str = "",
    *,
    default: Any = ...,
) -> Any:
    field = _join(prefix, key)
    choices = list(choices)
    if key not in data:
        if default is ...:
            raise SpecError(where, field, "<missing>", "required; one of " + ", ".join(choices))
        return default
    value = data[key]
    if value not in choices:
        raise SpecError(where, field, value, "must be one of " + ", ".join(choices))
    return value


def get_str(
    data: Mapping[str, Any], key: str, where: str, prefix: str = "", *, default: Any = ...
) -> Any:
    field = _join(prefix, key)
    if key not in data:
        if default is ...:
            raise SpecError(where, field, "<missing>", "required")
        return default
    value = data[key]
    if not isinstance(value, str) or not value:
        raise SpecError(where, field, value, "must be a non-empty string")
    return value


def get_bool(
    data: Mapping[str, Any], key: str, where: str, prefix: str = "", *, default: Any = ...
) -> Any:
    field = _join(prefix, key)
    if key not in data:
        if default is ...:
            raise SpecError(where, field, "<missing>", "required")
        return default
    value = data[key]
    if not isinstance(value, bool):
        raise SpecError(where, field, value, "must be true or false")
    return value
