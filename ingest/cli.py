"""``warden ingest ...``: the platform adapters."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from warden.cli import settings_from

SAMPLE = Path(__file__).resolve().parent / "samples" / "livestream.jsonl"


@click.group()
def ingest() -> None:
    """Publish chat from a platform (or a log) to chat.messages.v1."""


@ingest.command("replay")
@click.argument(
    "path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=SAMPLE
)
@click.option(
    "--speed",
    type=float,
    default=1.0,
    show_default=True,
    help="Times faster than the log's own clock; 0 = as fast as possible.",
)
@click.option("--rate", type=float, default=None, help="Fixed messages per second instead.")
@click.option("--loop", "loops", type=int, default=1, show_default=True, help="Replay N times.")
@click.option("--id-prefix", default="", help="Prefix message ids (replay a log more than once).")
@click.pass_context
def replay_command(
    ctx: click.Context, path: Path, speed: float, rate: float | None, loops: int, id_prefix: str
) -> None:
    """Replay a JSONL chat log (default: the bundled sample livestream)."""
    from ingest.publisher import Publisher
    from ingest.replay import replay
    from warden import metrics

    settings = settings_from(ctx)
    metrics.serve(settings.metrics.ingest_port, settings.metrics.host)

    async def go() -> None:
        async with Publisher(settings.kafka) as publisher:
            stats = await replay(
                publisher, path, speed=speed, rate=rate, loops=loops, id_prefix=id_prefix
            )
        click.echo(
            f"replayed {stats.published} messages ({stats.rejected} rejected) "
            f"in {stats.seconds:.1f} s"
        )

    asyncio.run(go())
