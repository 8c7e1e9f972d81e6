"""`warden ingest discord`: unmodified discord.py against a local gateway, publishing to Kafka."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest_asyncio
from fakes.discord_gateway import (
    BOT_ID,
    GUILD_ID,
    MESSAGE_CONTENT_INTENT,
    OWNER_ID,
    ROLE_MOD,
    ROLE_VIP,
    DiscordGateway,
    attachment,
    message,
    snowflake,
)
from kit import Service, consume

from core.settings import Settings
from core.topic_admin import topic_size
from schemas.events import ChatMessage
from schemas.topics import CHAT_MESSAGES

TOKEN = "MTEwMDAwMDAwMDAwMDAwMDAwMQ.fake.token"
ALICE = "1500000000000000001"
BOB = "1500000000000000002"


@pytest_asyncio.fixture
async def gateway() -> AsyncIterator[DiscordGateway]:
    server = DiscordGateway(TOKEN)
    await server.start()
    yield server
    await server.stop()


async def test_guild_messages_and_edits_are_published(
    settings: Settings, gateway: DiscordGateway, service_factory: Callable[..., Service]
) -> None:
    adapter = service_factory(
        "ingest",
        "discord",
        WARDEN_PLATFORMS__DISCORD__TOKEN=TOKEN,
        WARDEN_PLATFORMS__DISCORD__API_BASE_URL=gateway.api_url,
        WARDEN_PLATFORMS__DISCORD__GATEWAY_URL=gateway.gateway_url,
    )
    await gateway.wait_ready(within_s=60)
    identify = gateway.identifies[0]
    assert identify["token"] == TOKEN
    assert identify["intents"] & MESSAGE_CONTENT_INTENT, "needs the message content intent"
    await asyncio.sleep(0.5)  # discord.py marks the guild ready after GUILD_CREATE

    sent = datetime.now(UTC) - timedelta(seconds=5)
    ids = [snowflake(sent, i) for i in range(8)]
    await gateway.dispatch(
        "MESSAGE_CREATE",
        message(
            ids[0],
            "gg everyone",
            ALICE,
            "alice",
            roles=[ROLE_VIP],
            timestamp=sent,
            attachments=[attachment("901", "clip.mp4", "video/mp4")],
        ),
    )
    await gateway.dispatch(
        "MESSAGE_CREATE",
        message(ids[1], "please keep it civil", BOB, "bob", roles=[ROLE_MOD], reply_to=ids[0]),
    )
    await gateway.dispatch("MESSAGE_CREATE", message(ids[2], "welcome all", OWNER_ID, "owner"))
    # Not chat: a member-join system message, a direct message and the bot's own message.
    join = dict(message(ids[3], "", ALICE, "alice"), type=7)
    await gateway.dispatch("MESSAGE_CREATE", join)
    direct = message(ids[4], "dm text", ALICE, "alice")
    del direct["guild_id"], direct["member"]
    await gateway.dispatch("MESSAGE_CREATE", direct)
    await gateway.dispatch("MESSAGE_CREATE", message(ids[5], "beep", BOT_ID, "warden"))
    # An edit, and an update that only adds a link preview (no edited_timestamp).
    edited_at = datetime.now(UTC)
    await gateway.dispatch(
        "MESSAGE_UPDATE",
        message(
            ids[0], "gg everyone!!", ALICE, "alice", roles=[ROLE_VIP], edited_timestamp=edited_at
        ),
    )
    await gateway.dispatch("MESSAGE_UPDATE", message(ids[2], "welcome all", OWNER_ID, "owner"))

    topic = CHAT_MESSAGES.name_for(settings.kafka.topic_suffix)
    records = await consume(settings, topic, count=4, timeout_s=30, services=[adapter])
    messages = [ChatMessage.model_validate(r) for r in records]
    by_text = {m.text: m for m in messages}
    assert set(by_text) == {"gg everyone", "please keep it civil", "welcome all", "gg everyone!!"}

    first = by_text["gg everyone"]
    assert first.platform == "discord" and first.message_id == ids[0]
    assert first.community == GUILD_ID and first.user == ALICE and first.user_name == "alice"
    assert first.user_roles == ["VIP"]
    assert first.attachments[0].url.endswith("/901/clip.mp4")
    assert first.attachments[0].content_type == "video/mp4"
    assert abs((first.sent_at - sent).total_seconds()) < 0.01
    assert not first.edited

    reply = by_text["please keep it civil"]
    assert reply.reply_to == ids[0]
    assert reply.user_roles == ["Moderator", "moderator"]
    assert "owner" in by_text["welcome all"].user_roles

    edit = by_text["gg everyone!!"]
    assert edit.edited and edit.message_id == ids[0]
    assert abs((edit.sent_at - edited_at).total_seconds()) < 0.01

    await asyncio.sleep(1.0)
    assert await topic_size(settings.kafka, CHAT_MESSAGES) == 4
    assert await asyncio.to_thread(adapter.stop) == 0


async def test_a_wrong_token_stops_the_adapter_with_an_error(
    settings: Settings, gateway: DiscordGateway, service_factory: Callable[..., Service]
) -> None:
    adapter = service_factory(
        "ingest",
        "discord",
        WARDEN_PLATFORMS__DISCORD__TOKEN="not-the-token",
        WARDEN_PLATFORMS__DISCORD__API_BASE_URL=gateway.api_url,
        WARDEN_PLATFORMS__DISCORD__GATEWAY_URL=gateway.gateway_url,
    )
    for _ in range(600):
        if not adapter.alive():
            break
        await asyncio.sleep(0.1)
    assert adapter.process.returncode == 2  # a configuration error, named in one line
    assert "Discord refused the bot token" in adapter.log.read_text()
