"""The `servesim` command: a click group whose commands live one module each beside this file.

Commands parse flags, call one function of the public API and render the result. Library errors
(SpecError), click usage errors and refused paths (OSError) become one line on stderr and exit
code 2; nothing else is caught.
"""

from __future__ import annotations

import importlib
import sys

import click

from servesim.specs import SpecError, short_value

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
    "train_cmd",
    "capacity_cmd",
    "ui_cmd",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="servesim")
def cli() -> None:
    """servesim: a discrete-event simulator for LLM serving fleets."""


for _name in _COMMAND_MODULES:
    importlib.import_module(f"servesim.cli.{_name}").register(cli)


# click >= 8.2 raises this for a group called without a command; older click prints help itself.
_NO_ARGS = getattr(click.exceptions, "NoArgsIsHelpError", ())


def main(argv: list[str] | None = None) -> None:
    """Entry point: every bad input (SpecError, a click usage error, a path the OS refuses) is
    one ``error: ...`` line on stderr and exit code 2; Ctrl-C is exit 130."""
    try:
        cli.main(args=argv, prog_name="servesim", standalone_mode=False)
    except SpecError as exc:
        _fail(str(exc))
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except _NO_ARGS as exc:  # a bare `servesim` or `servesim trace`: click's help text
        exc.show()
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        _fail(_click_message(exc))
    except OSError as exc:  # a path the user gave that cannot be read or written
        _fail(_os_message(exc))
    except ValueError as exc:  # the OS layer's one ValueError: a path with a NUL byte
        if "null byte" not in str(exc):
            raise
        _fail("a path contains a NUL byte")
    sys.exit(0)


MAX_ERROR_CHARS = 1000  # the safety net under SpecError's own truncation of echoed values


def _fail(message: str) -> None:
    text = " ".join(message.split())
    if len(text) > MAX_ERROR_CHARS:
        text = f"{text[: MAX_ERROR_CHARS - 40]}... ({len(text):,} characters)"
    click.echo(f"error: {text}", err=True)
    sys.exit(2)


def _click_message(exc: click.ClickException) -> str:
    """click's usage error as one line: the command path, then click's own message."""
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "servesim"
    return f"{where}: {exc.format_message()}"


def _os_message(exc: OSError) -> str:
    path = short_value(str(exc.filename)) if exc.filename is not None else "<file>"
    return f"{path}: {exc.strerror or exc.__class__.__name__}"
