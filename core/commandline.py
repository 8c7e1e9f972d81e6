"""What every command gets, whether it runs as ``warden <command>`` or ``python -m <package>``:
the validated settings, logging, and one clear line (and an exit code) for each error.

Service packages define their click commands and use :func:`settings_from`; the ``warden`` CLI
on top collects them, and each package's ``__main__`` runs its own with :func:`run`. Neither
needs the other, so no service imports the CLI.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any, ClassVar, NoReturn

import click

from core.errors import WardenError
from core.settings import Settings, get_settings


def settings_from(ctx: click.Context) -> Settings:
    """The validated settings of this run, read once at start-up.

    Under ``warden`` the top-level command has read them; under ``python -m <package>`` the
    first command that asks reads them (and sets up logging) here.
    """
    settings = ctx.find_object(Settings)
    if settings is None:
        settings = load(ctx.find_root())
    return settings


def load(ctx: click.Context) -> Settings:
    """Read the settings, configure logging, and keep them on ``ctx`` for every subcommand."""
    from core import logs

    settings = get_settings()
    logs.configure(settings.log_level)
    ctx.obj = settings
    return settings


def fail(exc: WardenError) -> NoReturn:
    """The one place an error becomes a line on stderr and the exit code of its kind."""
    # One line, even where a library's message brings its own (psycopg adds a hint line).
    message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    click.echo(f"warden: {message or type(exc).__name__}", err=True)
    sys.exit(exc.exit_code)


def run(command: click.Command, prog_name: str) -> None:
    """Run one package's command as a program (``python -m scorers``): ``--help`` prints help."""
    try:
        command.main(prog_name=prog_name)
    except WardenError as exc:
        fail(exc)


class Age(click.ParamType):
    """A command-line duration back from now, ``30m``, ``24h`` or ``7d``, as a ``timedelta``."""

    name = "age"
    UNITS: ClassVar[dict[str, int]] = {"m": 60, "h": 3600, "d": 86400}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip()
        number, unit = text[:-1], text[-1:]
        if unit not in self.UNITS or not number.isdigit() or int(number) == 0:
            self.fail(f"{value!r}: expected a number and m, h or d (e.g. 24h)", param, ctx)
        return timedelta(seconds=int(number) * self.UNITS[unit])
