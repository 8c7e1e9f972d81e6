"""What every `warden` subcommand gets from the top-level command: the validated settings.

Kept apart from ``warden.cli`` so that a package's commands can be imported on their own
(tests, ``python -m``) without importing every other package's commands.
"""

from __future__ import annotations

import click

from warden.settings import Settings


def settings_from(ctx: click.Context) -> Settings:
    """The validated settings of this run (read once, at start-up)."""
    settings = ctx.find_object(Settings)
    if settings is None:
        raise click.UsageError("settings were not loaded")
    return settings
