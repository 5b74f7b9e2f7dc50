"""Small file helpers shared by the study modules: atomic writes, and reading result tables and
JSON files whose failures become one SpecError naming the file, not a pandas traceback."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from servesim.specs.common import SpecError, load_json


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Read once: os.umask can only be read by setting it, which is not safe once threads run.
_UMASK = _current_umask()
FILE_MODE = 0o666 & ~_UMASK  # what open() would give: 0644 under the usual umask 022
DIR_MODE = 0o777 & ~_UMASK  # what mkdir() would give: 0755

if TYPE_CHECKING:
    import pandas as pd


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder renamed into place,
    so a reader sees the old file or the new one, never half of one (a killed writer leaves at
    most a hidden ``.NAME.*.tmp`` that no reader lists). The file gets the permissions a plain
    open() would (mkstemp's are 0600); creates the parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        share_mode(tmp)  # mkstemp makes 0600; results are for colleagues too
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            os.fchmod(fh.fileno(), FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def share_mode(path: str | Path, *, is_dir: bool = False) -> None:
    """The mode a plain open()/mkdir() would give (0666/0777 less the umask): temporary files and
    folders start private (0600/0700), which results renamed into place must not keep."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, (0o777 if is_dir else 0o666) & ~mask)


def write_json_streamed(path: str | Path, head: dict[str, Any], lists: dict[str, Any]) -> None:
    """One JSON object: the keys of ``head``, then each of ``lists`` written item by item from its
    iterable (one item per line), so per-request lists of a million-request run are never held
    in memory or in one string. ``path`` is written directly: write it inside a temporary folder
    or through write_atomic's rename."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("{\n")
        first = True
        for key, value in head.items():
            fh.write(("" if first else ",\n") + f" {json.dumps(key)}: "
                     + json.dumps(value, allow_nan=False))  # fmt: skip
            first = False
        for key, items in lists.items():
            fh.write(("" if first else ",\n") + f" {json.dumps(key)}: [")
            first = False
            sep = "\n  "
            for item in items:
                fh.write(sep + json.dumps(item, allow_nan=False))
                sep = ",\n  "
            fh.write("\n ]" if sep != "\n  " else "]")
        fh.write("\n}\n")


def is_hidden(path: str | Path) -> bool:
    """A name starting with '.': temporary files and folders of atomic writes (``.NAME.tmp-*``,
    ``.NAME.old-*``) and anything else a result listing must not read as a result."""
    return Path(path).name.startswith(".")


def contained(root: str | Path, name: str | Path, where: str, field: str) -> Path:
    """``root / name``, refused (SpecError) unless it stays inside ``root`` once resolved: an
    absolute ``name`` elsewhere, ``..`` that climbs out, or a symlink that points out are errors,
    so a result filename or a sweep name from a shared file cannot write elsewhere."""
    root_p = Path(root)
    target = root_p / name  # an absolute ``name`` replaces root: then it must lie inside it
    if not str(name).strip() or "\x00" in str(name):  # resolve() raises on a NUL byte
        raise SpecError(where, field, str(name), f"must be a name inside {root_p}")
    real_root = root_p.resolve()
    if not target.resolve().is_relative_to(real_root) or target.resolve() == real_root:
        raise SpecError(where, field, str(name), f"must stay inside {root_p}")
    return target


def check_writable_parent(target: str | Path, where: str) -> None:
    """SpecError unless ``target``'s nearest existing ancestor is a writable folder, so a bad
    output path fails before any work, not with an OSError after it."""
    parent = Path(target).absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise SpecError(
            where, "out", str(target), f"cannot be created: {parent} is not a directory"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SpecError(where, "out", str(target), f"cannot be created: {parent} is not writable")


def check_out_path(path: str | Path, where: str, *, is_dir: bool) -> None:
    """SpecError unless ``path`` can be written as a folder (``is_dir``) or a file: checked before
    any work, so a bad output path costs nothing and leaves nothing behind."""
    p = Path(path)
    if p.exists() and p.is_dir() != is_dir:
        kind = "a file" if p.is_dir() is False else "a directory"
        raise SpecError(
            where, "out", str(p), f"is {kind}; expected a {'folder' if is_dir else 'file'}"
        )
    check_writable_parent(p, where)


def read_table(path: str | Path, *, allow_empty: bool = False) -> pd.DataFrame:
    """A .parquet or .csv table; an empty (unless ``allow_empty``: a header and no rows), corrupt
    or unreadable file is a SpecError."""
    import pandas as pd  # here, not at the top: the CLI imports this module on every start

    p = Path(path)
    kind = "Parquet" if p.suffix == ".parquet" else "CSV"
    try:
        table = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
    except pd.errors.EmptyDataError:
        raise SpecError(str(p), "", "<empty file>", f"an empty {kind} file") from None
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        # pyarrow's ArrowInvalid is a ValueError; a missing or unreadable file an OSError
        reason = " ".join(str(exc).split())[:120] or exc.__class__.__name__
        raise SpecError(str(p), "", f"<malformed {kind}>", reason) from None
    if table.empty and not allow_empty:
        raise SpecError(str(p), "", "<no rows>", f"the {kind} table has no rows")
    return table


def read_json(path: str | Path) -> Any:
    """A JSON file's content (the reader's limits apply); an unreadable, cut-short or malformed
    file is a SpecError."""
    p = Path(path)
    try:
        return load_json(p)
    except SpecError as exc:
        raise SpecError(str(p), "", p.name, f"not a readable JSON file ({exc.allowed})") from None
