"""Progress bars with rate and ETA on stderr, through one library (rich), for every long command:
`run` (requests simulated), `sweep` (points), `plan` (candidate simulations), `bench --matrix`
(points), `trace fetch` (bytes).

``Bar(label, total, unit)`` is a context manager with ``update(done, total=None)`` (absolute) and
``advance(n=1)``; it draws only on a terminal (stderr is a tty) unless ``force``, so logs and
tests stay clean. rich is imported when a bar is actually drawn, not at ``import servesim``.
"""

from __future__ import annotations

import sys
from typing import Any


class Bar:
    """A rich progress bar: description, bar, done/total, rate, elapsed and ETA."""

    def __init__(self, label: str, total: float | None = None, unit: str = "it", *,
                 enabled: bool = True, force: bool = False):  # fmt: skip
        self.enabled = enabled and (force or sys.stderr.isatty())
        self.label, self.total, self.unit = label, total, unit
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> Bar:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> Bar:
        if not self.enabled or self._progress is not None:
            return self
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        unit = self.unit
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn() if unit != "B" else TaskProgressColumn(),
            _RateColumn(unit),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(self.label, total=self.total)
        return self

    def update(self, done: float, total: float | None = None) -> None:
        if not self.enabled:
            return
        self.start()
        kw: dict[str, Any] = {"completed": done}
        if total is not None:
            kw["total"] = total
        self._progress.update(self._task, **kw)

    def advance(self, n: float = 1) -> None:
        if not self.enabled:
            return
        self.start()
        self._progress.advance(self._task, n)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # the engine's progress callback: (done, total) requests
    def __call__(self, done: Any = None, total: Any = None, *_a: Any, **_k: Any) -> None:
        self.update(float(done or 0), float(total) if total else None)


def _RateColumn(unit: str) -> Any:  # noqa: N802  (a factory of a rich column)
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            if speed is None:
                return Text(f"- {unit}/s")
            if unit == "B":
                return Text(f"{speed / 1e6:,.1f} MB/s")
            return Text(f"{speed:,.1f} {unit}/s")

    return RateColumn()


def table(rows: list[dict], columns: list[str] | None = None, title: str | None = None) -> str:
    """A plain-text table rendered by rich (no colour, fixed width), for reports on stdout."""
    from io import StringIO

    from rich import box
    from rich.console import Console
    from rich.table import Table

    cols = columns or (list(rows[0]) if rows else [])
    # plain ASCII rules: logs, CI and terminals without UTF-8 show it the same
    t = Table(title=title, show_edge=False, header_style="", box=box.ASCII2)
    for c in cols:
        t.add_column(str(c), justify="right")
    for r in rows:
        t.add_row(*(_cell(r.get(c)) for c in cols))
    buf = StringIO()
    Console(file=buf, width=200, color_system=None, force_terminal=False).print(t)
    return "\n".join(line.rstrip() for line in buf.getvalue().rstrip("\n").splitlines())


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)
