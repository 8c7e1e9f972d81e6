"""``warden actioner``: run the actioner service."""

from __future__ import annotations

import asyncio
import signal

import click

from warden.cli import settings_from


@click.command()
@click.pass_context
def actioner(ctx: click.Context) -> None:
    """Turn moderation.verdicts.v1 into actions (dry-run log executor) and audit rows."""
    from actioners.executors import LogExecutor
    from actioners.service import serve
    from warden import metrics

    settings = settings_from(ctx)
    metrics.serve(settings.metrics.actioner_port, settings.metrics.host)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, LogExecutor(), stop)

    asyncio.run(go())
