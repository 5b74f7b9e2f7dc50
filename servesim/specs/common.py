"""Shared validation helpers: every input error becomes one SpecError naming where, what and what is allowed."""

from __future__ import annotations

import json
import math
import re
import reprlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

# Limits of the YAML/JSON reader (docs/reliability.md). Real configs nest a handful of levels
# and hold a few thousand values; these bounds stop a hostile file long before memory or the
# interpreter's recursion limit does.
MAX_DEPTH = 64  # nested mappings/lists
MAX_NODES = 1_000_000  # values after aliases are expanded ("billion laughs" expands to 3.9e8)
# PyYAML reads about 1 MB/s in pure Python (the safe loader this module extends); a config,
# sweep or template is kilobytes. JSON (HF config.json) is read by the C parser: no size bound.
MAX_YAML_BYTES = 2 << 20


class LimitError(yaml.YAMLError):
    """A YAML document past MAX_DEPTH or MAX_NODES, or with a duplicate key."""

    def __init__(self, problem: str, mark: Any = None):
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class _Loader(yaml.SafeLoader):
    """SafeLoader (no tags that construct objects) with YAML 1.2 floats (``1e-08`` is a float,
    not PyYAML's 1.1 string), a depth bound, an alias-expansion bound and duplicate keys as
    errors (the last one silently winning would let a second ``workload:`` block replace the
    first)."""

    def compose_node(self, parent, index):
        depth = getattr(self, "_depth", 0)
        if depth >= MAX_DEPTH:
            raise LimitError(f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
        self._depth = depth + 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth = depth

    def compose_document(self):
        node = super().compose_document()
        _check_expanded_size(node)
        return node

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base` merge keys may override, by design
                if isinstance(key_node, yaml.ScalarNode):
                    key = self.construct_object(key_node)
                    if isinstance(key, (str, int, float, bool)) or key is None:
                        if key in seen:
                            raise LimitError(
                                f"duplicate key {_short_repr(key)} (first at line "
                                f"{seen[key].line + 1})",
                                key_node.start_mark,
                            )
                        seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _check_expanded_size(root: Any) -> None:
    """Count the values of the document with every alias expanded (memoised per node, so the
    count costs one pass over the distinct nodes); a cycle or a count past MAX_NODES fails."""
    if root is None:
        return
    size: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        nid = id(node)
        if done:
            active.discard(nid)
            if isinstance(node, yaml.SequenceNode):
                total = 1 + sum(size[id(c)] for c in node.value)
            else:
                total = 1 + sum(size[id(k)] + size[id(v)] for k, v in node.value)
            if total > MAX_NODES:
                raise LimitError(
                    f"expands to more than {MAX_NODES:,} values (aliases)", node.start_mark
                )
            size[nid] = total
            continue
        if nid in size:
            continue
        if isinstance(node, yaml.ScalarNode):
            size[nid] = 1
            continue
        if nid in active:
            raise LimitError("an alias refers to itself (a recursive value)", node.start_mark)
        active.add(nid)
        stack.append((node, True))
        children = (
            node.value
            if isinstance(node, yaml.SequenceNode)
            else [x for kv in node.value for x in kv]
        )
        for child in children:
            if id(child) in active:
                raise LimitError("an alias refers to itself (a recursive value)", node.start_mark)
            if id(child) not in size:
                stack.append((child, False))


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
    """yaml.safe_load with YAML 1.2 floats and the reader's limits (MAX_DEPTH, MAX_NODES, no
    duplicate keys); raises yaml.YAMLError (LimitError for a limit) like safe_load."""
    if len(text) > MAX_YAML_BYTES:
        raise LimitError(f"longer than {MAX_YAML_BYTES >> 20} MiB ({len(text):,} characters)")
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def parse_json(text: str, where: str) -> Any:
    """JSON with the same rules as YAML: no duplicate keys, at most MAX_DEPTH levels; a bad
    document is one SpecError."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                raise SpecError(where, "", k, "duplicate key in JSON object")
            out[k] = v
        return out

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except RecursionError:
        raise SpecError(where, "", "<document>", f"nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise SpecError(
            where,
            "",
            "<document>",
            f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
        ) from None
    if _depth(data) > MAX_DEPTH:
        raise SpecError(where, "", "<document>", f"nested deeper than {MAX_DEPTH} levels")
    return data


def load_json(path: str | Path, where: str | None = None) -> Any:
    """Read a JSON file with parse_json's rules; a missing or unreadable file is a SpecError."""
    p = Path(path)
    where = where or str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(where, "", str(p), f"cannot be read ({exc.__class__.__name__})") from None
    return parse_json(text, where)


def _depth(data: Any) -> int:
    """Nesting depth of plain data (iterative: safe on any input)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, d)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((c, d + 1) for c in children)
    return deepest


MAX_SHOWN = 80  # characters of a value echoed back in an error line


def _short_repr(value: Any, limit: int = MAX_SHOWN) -> str:
    """A value as an error line shows it: at most ``limit`` characters, with the full length
    stated when cut. Built from a bounded repr, so a huge or deeply nested value costs nothing."""
    if isinstance(value, str):
        if len(value) <= limit:
            return value
        return f"{value[: limit - 3]}... ({len(value):,} characters)"
    r = _REPR.repr(value)
    if len(r) > limit:
        r = r[: limit - 3] + "..."
    size = len(value) if isinstance(value, (list, tuple, dict, set, bytes)) else None
    return f"{r} ({size:,} items)" if size is not None and "..." in r else r


short_value = _short_repr  # for messages built outside SpecError (OS errors naming a path)

_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = MAX_SHOWN
_REPR.maxother = MAX_SHOWN
_REPR.maxlong = 40


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
        shown = _short_repr(value)
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
        kind = "refused" if isinstance(exc, LimitError) else "malformed"
        raise SpecError(where, "", str(p), f"{kind} YAML/JSON{pos}: {problem}") from None


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


def flatten_keys(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (dotted keys; empty mappings stay values)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten_keys(value, name + "."))
        else:
            out[name] = value
    return out
