"""``POST /v1/disputes`` and Twitch's ``!dispute`` line, with no broker behind them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from fakes.kafka_producer import FakeProducer
from fakes.twitch_irc import privmsg
from pydantic import SecretStr

from core.disputes import dispute_id
from core.settings import (
    BotSettings,
    IngestSettings,
    KafkaSettings,
    TwitchSettings,
    WebhookCredential,
)
from ingest.adapters.twitch import TwitchChat, dispute_reason
from ingest.adapters.webhook import DISPUTE_MAX_BODY, WebhookAPI
from ingest.publisher import Publisher
from schemas.events import Feedback

SETTINGS = IngestSettings(
    webhook_token=SecretStr("tok"),
    webhook_platforms=["webhook", "discord"],
    webhook_credentials=[
        WebhookCredential(name="acme", token=SecretStr("acme-token"), communities=["acme"])
    ],
    shutdown_timeout_s=0.1,
)
AUTH = {"Authorization": "Bearer tok"}


@pytest_asyncio.fixture
async def client(producer: FakeProducer) -> AsyncIterator[TestClient]:
    producer.auto_ack = True
    async with Publisher(KafkaSettings(), producer, ingest=SETTINGS, adapter="webhook") as pub:
        api = WebhookAPI(SETTINGS, pub, bots=BotSettings(dispute_limit=2))
        async with TestClient(TestServer(api.app())) as test_client:
            yield test_client


DISPUTE = {"platform": "discord", "community": "g1", "user": "u1", "message_id": "m1"}


async def test_a_dispute_is_taken_once_per_id_and_limited_per_user(
    client: TestClient, producer: FakeProducer
) -> None:
    first = await client.post("/v1/disputes", json={**DISPUTE, "reason": "a joke"}, headers=AUTH)
    assert first.status == 202
    expected = dispute_id("discord", "g1", "m1", "u1")
    assert (await first.json())["dispute_id"] == expected
    again = await client.post("/v1/disputes", json=DISPUTE, headers=AUTH)
    assert (await again.json())["dispute_id"] == expected
    third = await client.post("/v1/disputes", json={**DISPUTE, "message_id": "m2"}, headers=AUTH)
    assert third.status == 429 and int(third.headers["Retry-After"]) > 0
    assert "too many disputes" in (await third.json())["error"]
    other_user = await client.post("/v1/disputes", json={**DISPUTE, "user": "u2"}, headers=AUTH)
    assert other_user.status == 202
    sent = [
        (topic, key, Feedback.model_validate_json(value)) for topic, key, value, _ in producer.sent
    ]
    assert {t for t, _, _ in sent} == {"moderation.feedback.v1"}
    assert [k for _, k, _ in sent] == [b"m1", b"m1", b"m1"]
    assert sent[0][2].source == "webhook" and sent[0][2].reason == "a joke"
    assert sent[0][2].feedback_id == sent[1][2].feedback_id


async def test_invalid_disputes_get_one_clear_line(client: TestClient) -> None:
    cases = [
        (b"not json", 400, "not a valid dispute"),
        (json.dumps({**DISPUTE, "message_id": ""}).encode(), 400, "message_id"),
        (json.dumps({**DISPUTE, "colour": "red"}).encode(), 400, "colour"),
        (json.dumps({**DISPUTE, "user": 5}).encode(), 400, "user"),
        (json.dumps({**DISPUTE, "platform": "myspace"}).encode(), 403, "platform"),
        (json.dumps({**DISPUTE, "message_id": "m\u0000"}).encode(), 400, "message_id"),
        (b"{" + b" " * DISPUTE_MAX_BODY + b"}", 413, "at most"),
    ]
    for body, status, words in cases:
        reply = await client.post("/v1/disputes", data=body, headers=AUTH)
        error = (await reply.json())["error"]
        assert (reply.status, "\n" in error) == (status, False), (body[:60], error)
        assert words in error, error
    assert (await client.post("/v1/disputes", json=DISPUTE)).status == 401


async def test_a_credential_disputes_only_within_its_scope(client: TestClient) -> None:
    scoped = {"Authorization": "Bearer acme-token"}
    elsewhere = {**DISPUTE, "platform": "webhook", "community": "other"}
    reply = await client.post("/v1/disputes", json=elsewhere, headers=scoped)
    assert reply.status == 403 and "community" in (await reply.json())["error"]
    mine = {**DISPUTE, "platform": "webhook", "community": "acme"}
    assert (await client.post("/v1/disputes", json=mine, headers=scoped)).status == 202
    # The default credential speaks for discord too; this one only for the webhook platform.
    refused = await client.post(
        "/v1/disputes", json={**mine, "platform": "discord"}, headers=scoped
    )
    assert refused.status == 403


def test_the_twitch_dispute_command() -> None:
    assert dispute_reason("!dispute") == ""
    assert dispute_reason("  !DISPUTE   it was a joke ") == "it was a joke"
    assert dispute_reason("!disputes are fun") is None
    assert dispute_reason("I !dispute this") is None


class RecordingSocket:
    """What the adapter sends back on its IRC connection."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_str(self, data: str) -> None:
        self.sent.append(data)


async def test_twitch_disputes_reply_only_when_logged_in_and_within_the_limit(
    producer: FakeProducer,
) -> None:
    producer.auto_ack = True
    async with Publisher(KafkaSettings(), producer, ingest=SETTINGS, adapter="twitch") as pub:
        for token, expected_replies in ((None, 0), (SecretStr("abc"), 1)):
            chat = TwitchChat(
                TwitchSettings(channels=["streamer"], token=token),
                pub,
                BotSettings(dispute_limit=1),
            )
            ws = RecordingSocket()
            for msg_id in ("d1", "d2"):  # the second is over the limit of one
                line = privmsg("streamer", "!dispute fair?", user_id="31", msg_id=msg_id)
                await chat.handle(ws, line)  # type: ignore[arg-type]
            assert len(ws.sent) == expected_replies
        await pub.flush(5)
    feedback = [Feedback.model_validate_json(v) for t, _, v, _ in producer.sent if "feedback" in t]
    chat_lines = [t for t, _, _, _ in producer.sent if t == "chat.messages.v1"]
    # Each adapter took one dispute (d1) and published every line as chat.
    assert [(f.message_id, f.reason, f.source) for f in feedback] == [("d1", "fair?", "twitch")] * 2
    assert len(chat_lines) == 4
    assert ws.sent[0].startswith("@reply-parent-msg-id=d1 PRIVMSG #streamer :@viewer ")
