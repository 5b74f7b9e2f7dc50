"""Downloads of public traces: pinned URLs, SHA-256 checks, resume, progress (pooch + rich).

``download(url, target, sha256)`` fetches into ``target.part`` and continues an interrupted
download where it stopped (an HTTP Range request; a server that ignores it restarts the file),
checks the SHA-256 when one is pinned (a mismatch deletes the file and is a SpecError), then
renames the file into place. pooch does the hashing, the cache layout and the retry policy;
the resumable transfer is the downloader it calls. Files without a pinned hash are fetched as
they are and reported as unverified.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from servesim.specs.common import SpecError

CHUNK = 1 << 20


def download(url: str, target: Path, sha256: str | None = None, *, timeout_s: float = 60.0,
             progress: bool = True, name: str | None = None) -> Path:  # fmt: skip
    """``url`` -> ``target`` (see the module doc); returns ``target``."""
    import pooch

    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file() and (sha256 is None or pooch.file_hash(str(target)) == sha256):
        return target
    part = target.with_name(target.name + ".part")

    def resumable(url_: str, output_file: Any, _pooch: Any, check_only: bool = False) -> Any:
        if check_only:
            return True
        _fetch_resuming(url_, part, timeout_s, progress)
        with open(part, "rb") as src, open(output_file, "wb") as dst:
            while chunk := src.read(CHUNK):
                dst.write(chunk)
        return None

    known = f"sha256:{sha256}" if sha256 else None
    try:
        path = pooch.retrieve(url, known_hash=known, fname=target.name, path=target.parent,
                              downloader=resumable, progressbar=False)  # fmt: skip
    except ValueError as exc:  # pooch: the hash does not match
        for p in (part, target):
            if p.exists():
                p.unlink()
        raise SpecError("trace fetch", "sha256", name or url,
                        f"the download from {url} does not match its pinned checksum ({exc})") from None  # fmt: skip
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise SpecError(
            "trace fetch", "", name or url,
            f"cannot download {name or target.name} from {url} ({reason}); run it again to "
            "resume, or download it by hand and pass the path",
        ) from None  # fmt: skip
    if part.exists():
        part.unlink()
    return Path(path)


def _fetch_resuming(url: str, part: Path, timeout_s: float, progress: bool) -> None:
    from servesim._progress import Bar

    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        resumed = have and getattr(resp, "status", 200) == 206
        size = resp.headers.get("Content-Length")
        total = (int(size) + (have if resumed else 0)) if size else None
        mode = "ab" if resumed else "wb"
        done = have if resumed else 0
        with open(part, mode) as out, Bar("fetch", total, "B", enabled=progress) as bar:
            bar.update(done)
            while chunk := resp.read(CHUNK):
                out.write(chunk)
                done += len(chunk)
                bar.update(done)
    os.utime(part)
