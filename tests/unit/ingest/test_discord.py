"""discord.py's own Message objects, built from gateway payloads, -> ChatMessage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import discord
from fakes.discord_gateway import (
    CHANNEL_ID,
    GUILD_ID,
    OWNER_ID,
    ROLE_MOD,
    ROLE_VIP,
    attachment,
    guild,
    message,
    snowflake,
)

from core.settings import DiscordSettings
from ingest.adapters.discord import build_bot, intents, to_chat_message


def state_with_guild() -> tuple[discord.Guild, discord.abc.Messageable]:
    bot = build_bot(DiscordSettings())
    state = bot._connection
    server = state._add_guild_from_data(guild())
    channel = server.get_channel(int(CHANNEL_ID))
    assert channel is not None
    return server, channel  # type: ignore[return-value]


def build(data: dict) -> discord.Message:
    server, channel = state_with_guild()
    return discord.Message(state=server._state, channel=channel, data=data)  # type: ignore[arg-type]


def test_a_guild_message_with_roles_reply_and_attachment() -> None:
    sent = datetime(2024, 6, 15, 18, 0, 1, tzinfo=UTC)
    data = message(
        snowflake(sent, 2),
        "look at this",
        "1500000000000000001",
        "alice",
        roles=[ROLE_VIP, ROLE_MOD],
        timestamp=sent,
        reply_to=snowflake(sent, 1),
        attachments=[attachment("77", "cat.gif", "image/gif")],
    )
    chat = to_chat_message(build(data))
    assert chat is not None
    assert chat.message_id == data["id"] and chat.platform == "discord"
    assert (chat.community, chat.channel) == (GUILD_ID, CHANNEL_ID)
    assert chat.user == "1500000000000000001" and chat.user_name == "alice"
    assert chat.user_roles == ["VIP", "Moderator", "moderator"]
    assert chat.reply_to == snowflake(sent, 1)
    assert chat.attachments[0].filename == "cat.gif"
    assert chat.attachments[0].content_type == "image/gif"
    assert chat.sent_at == sent and not chat.edited


def test_an_edit_carries_the_edit_time() -> None:
    sent = datetime(2024, 6, 15, 18, 0, 1, tzinfo=UTC)
    edited = sent + timedelta(minutes=2)
    data = message(
        snowflake(sent), "new", OWNER_ID, "owner", timestamp=sent, edited_timestamp=edited
    )
    chat = to_chat_message(build(data), edited=True)
    assert chat is not None and chat.edited and chat.sent_at == edited
    assert "owner" in chat.user_roles


def test_direct_and_system_messages_are_not_ingested() -> None:
    direct = message("1", "hi", "2", "bob")
    del direct["guild_id"], direct["member"]
    bot = build_bot(DiscordSettings())
    dm = discord.Message(
        state=bot._connection,
        channel=discord.DMChannel._from_message(bot._connection, 5),
        data=direct,
    )
    assert to_chat_message(dm) is None
    assert to_chat_message(build(dict(message("3", "", "2", "bob"), type=7))) is None


def test_the_client_asks_for_message_content() -> None:
    assert intents().message_content and intents().guild_messages
    assert not intents().members  # privileged, and not needed to ingest
