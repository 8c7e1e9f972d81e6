"""``warden images``: run the image scorer (its own consumer group on chat.messages.v1)."""

from __future__ import annotations

import click

from core.commandline import settings_from


@click.command()
@click.pass_context
def images(ctx: click.Context) -> None:
    """Score image attachments of chat.messages.v1 into image verdicts on
    moderation.verdicts.v1 (NudeNet 320n; WARDEN_IMAGES__* settings), metrics on
    WARDEN_METRICS__IMAGES_PORT."""
    from core import metrics
    from core.stopping import run_until_signalled
    from scorers.images.service import serve

    settings = settings_from(ctx)
    metrics.serve(settings.metrics.images_port, settings.metrics.host)
    metrics.initialise("images", settings.metrics.communities)
    run_until_signalled(lambda stop: serve(settings, stop))
