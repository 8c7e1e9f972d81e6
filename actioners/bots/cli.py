"""``warden bots sync-discord``: register the Discord application commands; ``warden bots
twitch``: run only the Twitch moderator-command bot (without the review app)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from core.commandline import settings_from
from core.settings import Settings


@click.group()
def bots() -> None:
    """Disputes and moderator commands in Discord, Slack and Twitch (actioners.bots)."""


@bots.command("sync-discord")
@click.option("--guild", default=None, help="Register in one server only (instant; for testing).")
@click.option("--print", "print_only", is_flag=True, help="Print the commands' JSON, send nothing.")
@click.pass_context
def sync_discord(ctx: click.Context, guild: str | None, print_only: bool) -> None:
    """PUT the commands (/dispute, /privacy, /strikes, /pardon, /explain, /policy, /shadow,
    /stats, /leaderboard) to Discord.

    Needs WARDEN_PLATFORMS__DISCORD__TOKEN (the bot's) and WARDEN_BOTS__DISCORD_APPLICATION_ID.
    """
    from actioners.bots.discord import command_definitions
    from core.errors import ConfigError

    commands = command_definitions()
    if print_only:
        click.echo(json.dumps(commands, indent=2))
        return
    settings = settings_from(ctx)
    token = settings.platforms.discord.token
    application = settings.bots.discord_application_id
    if token is None or application is None:
        raise ConfigError(
            "WARDEN_PLATFORMS__DISCORD__TOKEN and WARDEN_BOTS__DISCORD_APPLICATION_ID: "
            "needed to register the commands"
        )
    if guild is not None and not guild.isdigit():
        raise ConfigError(f"--guild: a server id is digits, not {guild!r}")
    registered = asyncio.run(
        register(
            settings.platforms.discord.api_base_url,
            token.get_secret_value(),
            application,
            guild,
            commands,
        )
    )
    where = f"server {guild}" if guild else "every server (global; Discord may take a while)"
    click.echo(
        f"registered {len(registered)} commands for {where}: "
        + ", ".join("/" + str(c.get("name")) for c in registered)
    )


@bots.command("twitch")
@click.pass_context
def twitch(ctx: click.Context) -> None:
    """Answer moderators' !warden commands in Twitch chat (for those who do not run the review
    app, which runs the same bot with WARDEN_BOTS__TWITCH_COMMANDS=true).

    Needs WARDEN_PLATFORMS__TWITCH__TOKEN (chat:read, chat:edit), __NICK and __CHANNELS.
    """
    from actioners.bots.twitch import require_login

    settings = settings_from(ctx)
    require_login(settings)  # a missing token fails before anything connects
    asyncio.run(run_twitch(settings))


async def run_twitch(settings: Settings) -> None:
    """The Twitch bot on the actioner's database until cancelled (Ctrl-C)."""
    from actioners.bots.feedback import KafkaFeedback
    from actioners.bots.moderation import BotCommands
    from actioners.bots.twitch import TwitchBot
    from actioners.database import Database

    database = await Database.connect(settings.postgres)
    feedback = KafkaFeedback(settings.kafka)
    try:
        await database.check_schema()
        await TwitchBot(settings, BotCommands(database, feedback, settings)).run()
    finally:
        await feedback.close()
        await database.close()


async def register(
    base_url: str, token: str, application: str, guild: str | None, commands: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``PUT /applications/{app}/commands`` (or the guild's) through discord.py's HTTP client."""
    import discord
    from discord.http import HTTPClient, Route

    from core.errors import ConfigError, TransientError

    Route.BASE = base_url.rstrip("/")
    http = HTTPClient(asyncio.get_running_loop())
    try:
        await http.static_login(token)
        if guild is None:
            answer = await http.bulk_upsert_global_commands(application, commands)
        else:
            answer = await http.bulk_upsert_guild_commands(application, guild, commands)
    except discord.LoginFailure as exc:
        raise ConfigError("WARDEN_PLATFORMS__DISCORD__TOKEN: Discord refused it") from exc
    except discord.HTTPException as exc:
        raise TransientError(f"Discord refused the commands: {exc.status} {exc.text}") from exc
    finally:
        await http.close()
    return [dict(c) for c in answer]
