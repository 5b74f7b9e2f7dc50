"""The `servesim` command: a click group whose commands live one module each beside this file.

Commands parse flags, call one function of the public API and render the result. Library errors
(SpecError) become one line on stderr and exit code 2; nothing else is caught.
"""

from __future__ import annotations

import importlib
import sys

import click

from servesim.specs.common import SpecError

# Each module defines `register(group)`. Order = order in `servesim --help`.
_COMMAND_MODULES = (
    "run_cmd",
    "bench_cmd",
    "sweep_cmd",
    "plan_cmd",
    "report_cmd",
    "compare_cmd",
    "roofline_cmd",
    "calibrate_cmd",
    "catalog_cmds",
    "trace_cmds",
    "cost_cmd",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="servesim")
def cli() -> None:
    """servesim: a discrete-event simulator for LLM serving fleets."""


for _name in _COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"servesim.cli.{_name}")
    except ModuleNotFoundError as exc:  # command not built yet
        if exc.name != f"servesim.cli.{_name}":
            raise
        continue
    _module.register(cli)


def main(argv: list[str] | None = None) -> None:
    """Entry point: SpecError -> one line, exit 2; click usage errors keep click's exit 2."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except SpecError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    sys.exit(0)
