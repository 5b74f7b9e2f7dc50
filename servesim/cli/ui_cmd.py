"""`servesim ui`: the planner as a local web page (the optional `ui` extra, Streamlit)."""

from __future__ import annotations

import click

from servesim.specs import SpecError


def register(group: click.Group) -> None:
    group.add_command(ui_command)


@click.command("ui")
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True)
@click.option("--no-browser", is_flag=True, help="Serve only; do not open a browser.")
def ui_command(port: int, no_browser: bool) -> None:
    """Open the capacity planner in a local web browser (offline)."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("streamlit") is None:
        raise SpecError(
            "ui", "streamlit", "not installed", "install the extra: pip install 'servesim[ui]'"
        )
    from servesim.ui import APP_PATH

    cmd = [sys.executable, "-m", "streamlit", "run", str(APP_PATH), "--server.port", str(port),
           "--server.headless", "true" if no_browser else "false",
           "--browser.gatherUsageStats", "false", "--global.developmentMode", "false"]  # fmt: skip
    click.echo(f"servesim ui on http://localhost:{port} (Ctrl-C stops it)")
    sys.exit(subprocess.call(cmd))
