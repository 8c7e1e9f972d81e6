"""``warden``: one entry point with a subcommand per service and per operator task.

Each package contributes its own click commands (``<package>/cli.py``); heavy imports (the model,
faust) happen inside the commands, so ``warden --help`` stays fast.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from warden.errors import ConfigError, StackError
from warden.settings import get_settings


class WardenGroup(click.Group):
    """Turns the errors an operator must act on into one clear line and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"warden: {exc}", err=True)
            sys.exit(2)
        except StackError as exc:
            click.echo(f"warden: {exc}", err=True)
            sys.exit(3)


@click.group(cls=WardenGroup)
@click.pass_context
def main(ctx: click.Context) -> None:
    """ChatWarden: streaming moderation for high-volume chats."""
    from warden import logs

    settings = get_settings()
    logs.configure(settings.log_level)
    ctx.obj = settings


def _register() -> None:
    from actioners.cli import actioner, pardon, policy, strikes
    from benchmarks.cli import bench
    from deploy.cli import migrate, stack, topics
    from ingest.cli import ingest
    from retrain.cli import data, evaluate, train
    from scorers.cli import scorer
    from toxicity.cli import score
    from warden.run import run

    for command in (stack, topics, migrate, ingest, scorer, actioner, run, bench):
        main.add_command(command)
    for command in (policy, strikes, pardon, data, train, evaluate, score):
        main.add_command(command)


_register()
