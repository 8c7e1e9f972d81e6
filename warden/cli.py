"""``warden``: the composition root, one command per service and per operator task.

Each package keeps its own click commands (``<package>/cli.py``); the table below names them
and they are imported only when run (or listed by ``--help``), so ``warden --help`` stays fast
and nothing below this package imports it. Errors become one line and an exit code in
``core.commandline``, the same for ``warden`` and ``python -m <package>``.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from core.commandline import fail, load
from core.errors import WardenError

# name -> "module:attribute" of a click command.
COMMANDS: dict[str, str] = {
    "stack": "deploy.cli:stack",
    "topics": "deploy.cli:topics",
    "migrate": "deploy.cli:migrate",
    "health": "deploy.health:health",
    "ingest": "ingest.cli:ingest",
    "scorer": "scorers.cli:scorer",
    "images": "scorers.images.cli:images",
    "actioner": "actioners.cli:actioner",
    "explainer": "explainers.cli:explainer",
    "run": "warden.run:run",
    "bench": "benchmarks.cli:bench",
    "policy": "actioners.cli:policy",
    "strikes": "actioners.cli:strikes",
    "pardon": "actioners.cli:pardon",
    "review": "actioners.review.cli:review",
    "moderators": "actioners.review.cli:moderators",
    "bots": "actioners.bots.cli:bots",
    "data": "retrain.cli:data",
    "train": "retrain.cli:train",
    "evaluate": "retrain.cli:evaluate",
    "drift": "retrain.drift_cli:drift",
    "models": "retrain.models_cli:models",
    "retrain": "retrain.retrain_cli:retrain",
    "score": "toxicity.cli:score",
    "score-image": "imagery.cli:score_image",
    "explain": "explainers.cli:explain",
    "replay-decision": "warden.replay:replay_decision",
    "privacy": "warden.privacy:privacy",
    "stats": "warden.privacy:stats",
}


class WardenGroup(click.Group):
    """Finds commands in :data:`COMMANDS` and turns ChatWarden's errors into one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except WardenError as exc:
            fail(exc)


@click.group(cls=WardenGroup)
@click.pass_context
def main(ctx: click.Context) -> None:
    """ChatWarden: streaming moderation for high-volume chats."""
    load(ctx)
