"""Catalog files: where the packaged hardware profiles and model templates live, their ids and
aliases, and resolving a name, alias or path to a file. Here (not in servesim.catalog) because
the loaders need it and specs imports nothing outside specs; servesim.catalog re-exports it."""

from __future__ import annotations

import difflib
import functools
import re
from pathlib import Path

import yaml

from servesim.specs.common import SpecError, parse_yaml

_PACKAGE = Path(__file__).resolve().parent.parent  # servesim/
# kind -> (directory, file suffixes, `servesim list` word)
_KINDS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "hardware": ("hw_profiles", (".yaml", ".yml"), "hardware"),
    "model": ("model_templates", (".yaml", ".yml", ".json"), "models"),
}


def data_dir(name: str) -> Path:
    """``servesim/_data/<name>`` when installed as a wheel, else ``<repository root>/<name>``."""
    packaged = _PACKAGE / "_data" / name
    if packaged.is_dir():
        return packaged
    return _PACKAGE.parent / name


def _entries(kind: str) -> dict[str, Path]:
    """Catalog id (file stem) -> file, sorted by id."""
    folder, suffixes, _ = _KINDS[kind]
    root = data_dir(folder)
    if not root.is_dir():
        return {}
    files = [p for p in root.iterdir() if p.is_file() and p.suffix in suffixes]
    return {p.stem: p for p in sorted(files)}


def catalog_ids(kind: str) -> list[str]:
    """Ids (file stems) of one catalog: kind "hardware" or "model", sorted."""
    return list(_entries(kind))


def normalise_name(name: str) -> str:
    """Lowercase, with spaces and underscores as hyphens: 'H100_SXM' -> 'h100-sxm'."""
    return re.sub(r"[\s_]+", "-", name.strip().lower())


@functools.lru_cache(maxsize=8)
def _alias_index(kind: str, stamp: tuple[tuple[str, int], ...]) -> dict[str, str]:
    """Normalised id or alias -> id. ``stamp`` (file names and mtimes) invalidates the cache."""
    index: dict[str, str] = {}
    for ident, path in _entries(kind).items():
        index[normalise_name(ident)] = ident
        for alias in _read_aliases(path):
            index.setdefault(normalise_name(alias), ident)
    return index


def _read_aliases(path: Path) -> list[str]:
    """The `aliases:` list of a catalog YAML; a broken file has none (its loader reports it)."""
    if path.suffix == ".json":
        return []
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    aliases = data.get("aliases") if isinstance(data, dict) else None
    return [str(a) for a in aliases] if isinstance(aliases, list) else []


def _stamp(kind: str) -> tuple[tuple[str, int], ...]:
    return tuple((p.name, p.stat().st_mtime_ns) for p in _entries(kind).values())


def looks_like_path(name_or_path: str) -> bool:
    """A value with a path separator or a file suffix is a path, anything else a catalog name."""
    text = str(name_or_path)
    return "/" in text or "\\" in text or text.endswith((".yaml", ".yml", ".json"))


def _hub_id(text: str) -> bool:
    """'meta-llama/Llama-3.1-8B' style ids (one slash, no suffix) are looked up as aliases."""
    return (
        text.count("/") == 1
        and not text.startswith((".", "/", "~"))
        and not text.endswith((".yaml", ".yml", ".json"))
    )


def resolve_catalog(kind: str, name_or_path: str | Path, where: str | None = None) -> Path:
    """The file behind a catalog id, alias (case-insensitive) or path.

    Unknown names raise SpecError with the closest ids and a pointer to ``servesim list``.
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown catalog kind {kind!r}")
    listing = _KINDS[kind][2]
    where = where or ""
    if isinstance(name_or_path, Path) or looks_like_path(str(name_or_path)):
        path = Path(name_or_path).expanduser()
        if kind == "model" and path.is_dir() and (path / "config.json").is_file():
            path = path / "config.json"  # an HF checkpoint folder
        if path.is_file():
            return path.resolve()
        if not _hub_id(str(name_or_path)):
            raise SpecError(where, kind, str(name_or_path), "file not found")
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise SpecError(
            where, kind, name_or_path, f"must be a name (see `servesim list {listing}`) or a path"
        )
    key = normalise_name(name_or_path)
    entries = _entries(kind)
    if key in entries:  # an exact id: the alias index (every catalog file parsed) is not needed
        return entries[key].resolve()
    index = _alias_index(kind, _stamp(kind))
    ident = index.get(key)
    if ident is None:
        local = Path(name_or_path)
        if local.is_file():  # a bare file name in the working directory
            return local.resolve()
        close = difflib.get_close_matches(key, list(index), n=4, cutoff=0.5)
        close_ids = list(dict.fromkeys(index[c] for c in close))
        hint = f"did you mean {', '.join(close_ids)}? " if close_ids else ""
        raise SpecError(
            where, kind, name_or_path, f"unknown {kind}; {hint}see `servesim list {listing}`"
        )
    return _entries(kind)[ident].resolve()
