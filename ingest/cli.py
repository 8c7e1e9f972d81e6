"""``warden ingest ...``: the platform adapters, one subcommand each.

Every adapter publishes through one :class:`ingest.publisher.Publisher`, serves its metrics on
``WARDEN_METRICS__INGEST_PORT`` and stops cleanly on SIGINT/SIGTERM: it stops reading, then
waits up to ``WARDEN_INGEST__SHUTDOWN_TIMEOUT_S`` for what is buffered to reach the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from core.commandline import settings_from
from core.errors import ConfigError

if TYPE_CHECKING:
    from aiohttp import web

    from core.settings import Settings
    from ingest.publisher import Publisher

logger = logging.getLogger(__name__)
SAMPLE = Path(__file__).resolve().parent / "samples" / "livestream.jsonl"


def _publisher(settings: Settings, adapter: str) -> Publisher:
    from ingest.optout import opt_out_filter
    from ingest.publisher import Publisher

    return Publisher(
        settings.kafka, ingest=settings.ingest, adapter=adapter, opt_out=opt_out_filter(settings)
    )


def undelivered(publisher: Publisher) -> str | None:
    """What a finished publisher did not deliver, in one line (None: everything).

    ``failed``: records the broker refused for good; ``still buffered``: accepted but not
    acknowledged when the publisher closed (the broker did not answer in time).
    """
    if not publisher.failed and not publisher.buffered:
        return None
    return (
        f"{publisher.failed} failed (refused by the broker) and {publisher.buffered} still "
        "buffered (not acknowledged) when the publisher closed; see the log for why"
    )


async def serve(
    settings: Settings, adapter: str, body: Callable[[Publisher], Coroutine[Any, Any, None]]
) -> Publisher:
    """Run ``body`` with a publisher until it ends or a SIGINT/SIGTERM arrives, then flush.

    Returns the (closed) publisher, whose counts say what was delivered.
    """
    from core import metrics

    metrics.serve(settings.metrics.ingest_port, settings.metrics.host)
    metrics.initialise("ingest", settings.metrics.communities)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with _publisher(settings, adapter) as publisher:
        work = asyncio.create_task(body(publisher), name=f"ingest {adapter}")
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not work.done():
            logger.info("stopping %s; flushing %d buffered messages", adapter, publisher.buffered)
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
        else:
            work.result()
    summary = logger.error if undelivered(publisher) else logger.info
    summary(
        "%s stopped: %d published, %d rejected, %d dropped, %d failed, %d still buffered",
        adapter,
        publisher.published,
        publisher.rejected,
        publisher.dropped,
        publisher.failed,
        publisher.buffered,
    )
    return publisher


async def serve_http(app: web.Application, host: str, port: int, what: str) -> None:
    """Serve an aiohttp application until cancelled."""
    from aiohttp import web

    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:  # the port is taken, or the host is not this machine's
            raise ConfigError(
                f"{what} cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from exc
        logger.info("%s listening on http://%s:%d", what, host, port)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


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
@click.option(
    "--loop", "loops", type=int, default=1, show_default=True, help="Replay N times; 0 = forever."
)
@click.option("--id-prefix", default="", help="Prefix message ids (replay a log more than once).")
@click.pass_context
def replay_command(
    ctx: click.Context, path: Path, speed: float, rate: float | None, loops: int, id_prefix: str
) -> None:
    """Replay a JSONL or CSV chat log (default: the bundled sample livestream).

    CSV columns: message_id, user, text, sent_at (required); received_at, platform, community,
    channel, user_name, user_roles (a|b), reply_to, edited, attachments (space-separated URLs).

    Exits 1 when not everything read was delivered (refused by the broker, or still buffered
    when stopped), so that a script never takes a partial replay for a complete one.
    """
    from core.errors import TransientError
    from ingest.replay import ReplayStats, check_source, replay

    settings = settings_from(ctx)
    check_source(path)
    result = ReplayStats()

    async def body(publisher: Publisher) -> None:
        nonlocal result
        result = await replay(
            publisher, path, speed=speed, rate=rate, loops=loops, id_prefix=id_prefix
        )

    try:
        publisher = asyncio.run(serve(settings, "replay", body))
    except TransientError as exc:
        click.echo(f"warden: replay failed: {exc}", err=True)
        sys.exit(1)
    click.echo(
        f"replayed {result.published} messages ({result.rejected} rejected) "
        f"in {result.seconds:.1f} s: {publisher.published} published, {publisher.rejected} "
        f"rejected, {publisher.dropped} dropped, {publisher.failed} failed, "
        f"{publisher.buffered} still buffered"
    )
    problem = undelivered(publisher)
    if problem is not None:
        click.echo(f"warden: the replay did not deliver everything: {problem}", err=True)
        sys.exit(1)


@ingest.command("twitch")
@click.option("--channel", "channels", multiple=True, help="Join these (default: settings).")
@click.pass_context
def twitch_command(ctx: click.Context, channels: tuple[str, ...]) -> None:
    """Twitch chat over IRC-on-WebSocket (WARDEN_PLATFORMS__TWITCH__*)."""
    from ingest.adapters.twitch import TwitchChat

    settings = settings_from(ctx)
    twitch = settings.platforms.twitch
    if channels:
        twitch = twitch.model_copy(update={"channels": list(channels)})
    if not twitch.channels:
        raise ConfigError("no Twitch channels: set WARDEN_PLATFORMS__TWITCH__CHANNELS or --channel")

    async def body(publisher: Publisher) -> None:
        await TwitchChat(twitch, publisher, settings.bots).run()

    asyncio.run(serve(settings, "twitch", body))


@ingest.command("discord")
@click.pass_context
def discord_command(ctx: click.Context) -> None:
    """Discord guild messages through the gateway (WARDEN_PLATFORMS__DISCORD__*)."""
    from ingest.adapters import discord as adapter

    settings = settings_from(ctx)
    if settings.platforms.discord.token is None:
        raise ConfigError("no Discord bot token: set WARDEN_PLATFORMS__DISCORD__TOKEN")

    async def body(publisher: Publisher) -> None:
        await adapter.run(settings.platforms.discord, publisher)

    asyncio.run(serve(settings, "discord", body))


@ingest.command("slack")
@click.option(
    "--mode",
    type=click.Choice(["http", "socket"]),
    default=None,
    help="Events API over HTTP or Socket Mode (default: WARDEN_PLATFORMS__SLACK__MODE).",
)
@click.pass_context
def slack_command(ctx: click.Context, mode: str | None) -> None:
    """Slack message events over the Events API (HTTP) or Socket Mode."""
    from ingest.adapters.slack import build_app

    settings = settings_from(ctx)
    slack = settings.platforms.slack
    if mode is not None:
        slack = slack.model_copy(update={"mode": mode})
    if slack.mode == "socket" and slack.app_token is None:
        raise ConfigError("Socket Mode needs WARDEN_PLATFORMS__SLACK__APP_TOKEN (xapp-...)")
    if slack.mode == "http" and slack.signing_secret is None:
        raise ConfigError("the Events API needs WARDEN_PLATFORMS__SLACK__SIGNING_SECRET")

    async def body(publisher: Publisher) -> None:
        app = build_app(slack, publisher)
        if slack.mode == "http":
            web_app = app.web_app(path=slack.events_path, port=slack.events_port)
            await serve_http(web_app, slack.events_host, slack.events_port, "Slack Events API")
            return
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        assert slack.app_token is not None
        handler = AsyncSocketModeHandler(app, slack.app_token.get_secret_value())
        await handler.connect_async()
        logger.info("Slack Socket Mode connected")
        try:
            await asyncio.Event().wait()
        finally:
            await handler.close_async()

    asyncio.run(serve(settings, "slack", body))


@ingest.command("webhook")
@click.pass_context
def webhook_command(ctx: click.Context) -> None:
    """The webhook / batch API: POST /v1/messages, /v1/moderate and /v1/disputes
    (WARDEN_INGEST__WEBHOOK_*)."""
    from core.paths import model_cache_dir
    from ingest.adapters.webhook import WebhookAPI
    from schemas.events import Severity
    from toxicity.loading import load_model

    settings = settings_from(ctx)
    ingest_settings = settings.ingest
    if ingest_settings.webhook_token is None and ingest_settings.webhook_hmac_secret is None:
        raise ConfigError(
            "the webhook needs WARDEN_INGEST__WEBHOOK_TOKEN or WARDEN_INGEST__WEBHOOK_HMAC_SECRET"
        )

    # /v1/moderate scores with the scorer's model: its int8 encoder goes to the model cache.
    cache_dir = model_cache_dir(settings, writable=True)

    async def body(publisher: Publisher) -> None:
        model = await asyncio.to_thread(lambda: load_model(settings.model, cache_dir=cache_dir))
        api = WebhookAPI(
            ingest_settings,
            publisher,
            model,
            Severity(settings.scorer.flag_severity),
            bots=settings.bots,
        )
        await serve_http(
            api.app(), ingest_settings.webhook_host, ingest_settings.webhook_port, "webhook API"
        )

    asyncio.run(serve(settings, "webhook", body))
