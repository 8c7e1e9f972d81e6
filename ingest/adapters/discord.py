"""Discord: every guild message through the gateway (discord.py) to ``chat.messages.v1``.

The bot connects with the default intents plus the privileged *message content* intent (turn it
on for the application in the developer portal). Ingest is one cog, :class:`MessageIngest`, on
a ``commands.Bot`` built by :func:`build_bot`, so that the bot commands of a later issue are
more cogs (or app commands on ``bot.tree``) on the same client and connection.

A message becomes a ChatMessage:

============  ============================================================================
field         from
============  ============================================================================
message_id    the message's snowflake (what a moderator deletes by)
community     the guild id; ``channel`` the channel (or thread) id
user          the author's id; ``user_name`` the author's user name
user_roles    the author's guild role names (without @everyone), plus ``owner`` for the
              guild owner, ``administrator`` and ``moderator`` (manage messages or time
              out members) for members with those permissions
reply_to      the id of the message replied to
attachments   url, content type, file name
edited        ``True`` for an edit (``MESSAGE_UPDATE`` with an edit time): a new event with
              the same message_id, the new text and ``sent_at`` = the edit time
============  ============================================================================

Direct messages, system messages (joins, pins, boosts) and the bot's own messages are skipped.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
import yarl
from discord.ext import commands

from core.errors import ConfigError
from core.settings import DiscordSettings
from ingest.publisher import Publisher
from schemas.events import Attachment, ChatMessage, Platform, utcnow

logger = logging.getLogger(__name__)


def configure_endpoints(settings: DiscordSettings) -> None:
    """Point discord.py at the configured REST API and gateway (process-wide, as discord.py is)."""
    discord.http.Route.BASE = settings.api_base_url.rstrip("/")
    if settings.gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.gateway_url)


def intents() -> discord.Intents:
    """Guild messages with their content; no privileged member list is needed."""
    wanted = discord.Intents.default()
    wanted.message_content = True
    return wanted


def author_roles(message: discord.Message) -> list[str]:
    author = message.author
    if not isinstance(author, discord.Member):
        return []
    roles = [role.name for role in author.roles if not role.is_default()]
    if message.guild is not None and message.guild.owner_id == author.id:
        roles.append("owner")
    permissions = author.guild_permissions
    if permissions.administrator:
        roles.append("administrator")
    if permissions.manage_messages or permissions.moderate_members:
        roles.append("moderator")  # the cross-platform name policies match on
    return roles


def to_chat_message(message: discord.Message, *, edited: bool = False) -> ChatMessage | None:
    """A guild message as a ChatMessage; None for direct and system messages."""
    if message.guild is None or message.is_system():
        return None
    reference = message.reference
    sent_at = (message.edited_at or utcnow()) if edited else message.created_at
    return ChatMessage(
        message_id=str(message.id),
        platform=Platform.DISCORD,
        community=str(message.guild.id),
        channel=str(message.channel.id),
        user=str(message.author.id),
        user_name=message.author.name,
        user_roles=author_roles(message),
        text=message.content,
        attachments=[
            Attachment(url=a.url, content_type=a.content_type, filename=a.filename, size=a.size)
            for a in message.attachments
        ],
        # Age-restricted channels: a community's policy may allow pictures there.
        channel_nsfw=channel_nsfw(message.channel),
        reply_to=str(reference.message_id) if reference and reference.message_id else None,
        edited=edited,
        sent_at=sent_at,
        received_at=utcnow(),
    )


def channel_nsfw(channel: Any) -> bool | None:
    """Discord's age-restricted flag of a text channel (a thread: of its parent), or None."""
    is_nsfw = getattr(channel, "is_nsfw", None)
    return bool(is_nsfw()) if callable(is_nsfw) else None


class MessageIngest(commands.Cog):
    """Publishes every guild message and every edit."""

    def __init__(self, bot: commands.Bot, publisher: Publisher) -> None:
        self.bot = bot
        self.publisher = publisher

    async def _take(self, message: discord.Message, *, edited: bool) -> None:
        if self.bot.user is not None and message.author.id == self.bot.user.id:
            return
        try:
            chat = to_chat_message(message, edited=edited)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raw = f'{{"id": "{message.id}", "channel_id": "{message.channel.id}"}}'.encode()
            await self.publisher.reject(raw, exc, f"discord:{message.channel.id}")
            return
        if chat is not None:
            await self.publisher.publish(chat)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        await self._take(message, edited=False)

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        # Raw: the edited message may be older than the client's message cache.
        if payload.message.edited_at is None:
            return  # an embed or link preview was added, not an edit by the author
        await self._take(payload.message, edited=True)

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        logger.info("Discord connected as %s, in %d guilds", self.bot.user, len(self.bot.guilds))


def build_bot(settings: DiscordSettings) -> commands.Bot:
    """The shared Discord client (a ``commands.Bot``); add :class:`MessageIngest` to ingest."""
    configure_endpoints(settings)
    return commands.Bot(
        command_prefix=commands.when_mentioned,
        intents=intents(),
        help_command=None,
        # No message cache: listeners run as tasks, and an edit arriving meanwhile would update
        # a cached Message in place before its MESSAGE_CREATE was converted. Ingest needs none.
        max_messages=None,
    )


async def run(settings: DiscordSettings, publisher: Publisher) -> None:
    """Connect and ingest until cancelled (discord.py reconnects and resumes on its own)."""
    if settings.token is None:
        raise ConfigError("no Discord bot token (WARDEN_PLATFORMS__DISCORD__TOKEN)")
    bot = build_bot(settings)
    async with bot:
        await bot.add_cog(MessageIngest(bot, publisher))
        try:
            await bot.start(settings.token.get_secret_value())
        except discord.LoginFailure as exc:
            raise ConfigError(f"Discord refused the bot token: {exc}") from exc
        except discord.PrivilegedIntentsRequired as exc:
            raise ConfigError(
                "turn on the message content intent for this bot in the Discord developer portal"
            ) from exc
