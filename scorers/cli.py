"""``warden scorer``: run a scoring worker."""

from __future__ import annotations

import click

from core.commandline import settings_from


@click.command()
@click.pass_context
def scorer(ctx: click.Context) -> None:
    """Score chat.messages.v1 into moderation.verdicts.v1 (one faust worker)."""
    from scorers.app import run_worker

    run_worker(settings_from(ctx))
