"""`warden ingest webhook`: authentication, mixed batches, synchronous moderation, and
back-pressure while the broker is down followed by delivery of everything once it is back."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kit import Service, ThrowawayKafka, consume, free_port

from core.settings import Settings
from core.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, webhook_signature
from core.topic_admin import create_topics, topic_size
from schemas.events import ChatMessage
from schemas.topics import CHAT_MESSAGES, DEADLETTER

TOKEN = "webhook-test-token"
SECRET = "webhook-test-hmac-secret"


def hmac_headers(body: bytes, secret: str = SECRET, at: int | None = None) -> dict[str, str]:
    timestamp = str(int(time.time()) if at is None else at)
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: webhook_signature(secret, timestamp, body),
    }


BEARER = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


async def wait_healthy(base: str, service: Service, within_s: float = 90) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert service.alive(), service.log.read_text()[-3000:]
            try:
                async with session.get(base + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"{base} did not answer")


def start_webhook(service_factory: Callable[..., Service], port: int, **env: str) -> Service:
    return service_factory(
        "ingest",
        "webhook",
        WARDEN_INGEST__WEBHOOK_PORT=str(port),
        WARDEN_INGEST__WEBHOOK_TOKEN=TOKEN,
        WARDEN_INGEST__WEBHOOK_HMAC_SECRET=SECRET,
        **env,
    )


async def post(
    session: aiohttp.ClientSession, url: str, payload: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    async with session.post(url, data=body, headers=headers or BEARER) as response:
        return response.status, await response.json(), dict(response.headers)


async def test_authenticated_batches_partial_errors_and_moderation(
    settings: Settings, service_factory: Callable[..., Service]
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    adapter = start_webhook(service_factory, port)
    await wait_healthy(base, adapter)
    messages_url = base + "/v1/messages"
    seed = {"messages": [{"id": f"w{i}", "text": f"hello {i}"} for i in range(3)]}
    body = json.dumps(seed).encode()

    async with aiohttp.ClientSession() as session:
        # Authentication: nothing, a wrong token, a wrong signature, a stale signature.
        for headers in (
            {"Content-Type": "application/json"},
            {"Authorization": "Bearer nope"},
            hmac_headers(body, secret="wrong"),
            hmac_headers(body, at=int(time.time()) - 3600),
        ):
            status, reply, _ = await post(session, messages_url, body, headers)
            assert status == 401, reply

        # The seed moderation service's shape, with a bearer token.
        status, reply, _ = await post(session, messages_url, seed)
        assert (status, reply) == (202, {"accepted": ["w0", "w1", "w2"]})

        # One message with optional ChatMessage fields, signed with HMAC.
        single = {
            "id": "w3",
            "text": "from the forum",
            "platform": "webhook",
            "community": "forum",
            "channel": "threads",
            "user": "u-42",
            "user_name": "fourty-two",
            "user_roles": ["member"],
            "sent_at": "2024-06-15T18:00:01+00:00",
        }
        raw = json.dumps(single).encode()
        signed = hmac_headers(raw)
        status, reply, _ = await post(session, messages_url, raw, signed)
        assert (status, reply) == (202, {"accepted": ["w3"]})
        # The same signed request captured and sent again within its window.
        status, reply, _ = await post(session, messages_url, raw, signed)
        assert (status, reply["error"]) == (401, "replayed request")

        # A webhook credential cannot speak for a Discord user (nor claim a moderator role).
        forged = {
            "id": "forged",
            "text": "ban me",
            "platform": "discord",
            "community": "guild-1",
            "user": "victim",
            "user_roles": ["moderator"],
        }
        status, reply, _ = await post(session, messages_url, forged)
        assert status == 422 and reply["accepted"] == []
        assert "may not publish for platform 'discord'" in reply["errors"][0]["errors"][0]

        # 100k-deep JSON: a 400, not a crash.
        status, reply, _ = await post(session, messages_url, b"[" * 100_000 + b"]" * 100_000)
        assert status == 400 and "nested deeper" in reply["error"]

        # A batch with valid and invalid items: the valid ones still go through.
        mixed = {
            "messages": [
                {"id": "w4", "text": "fine"},
                {"id": "bad-1"},
                {"id": "bad-2", "text": "x", "user_roles": "admin"},
                "not an object",
                {"id": "w5", "text": "also fine", "user": "u-7"},
            ]
        }
        status, reply, _ = await post(session, messages_url, mixed)
        assert status == 422
        assert reply["accepted"] == ["w4", "w5"]
        errors = {e["index"]: e for e in reply["errors"]}
        assert set(errors) == {1, 2, 3}
        assert errors[1]["id"] == "bad-1" and any("text" in m for m in errors[1]["errors"])
        assert any("user_roles" in m for m in errors[2]["errors"])
        assert errors[3]["id"] is None

        status, reply, _ = await post(session, messages_url, b"{not json")
        assert status == 400

        # Synchronous verdicts from the same model the scorer uses.
        status, reply, _ = await post(
            session,
            base + "/v1/moderate",
            {
                "messages": [
                    {"id": "q1", "text": "you are a worthless idiot"},
                    {"id": "q2", "text": "nice play!"},
                ]
            },
        )
        assert status == 200, reply
        results = {r["id"]: r for r in reply["results"]}
        assert reply["model_version"]
        assert results["q1"]["p_toxic"] > results["q2"]["p_toxic"]
        assert results["q1"]["flagged"] and not results["q2"]["flagged"]

    suffix = settings.kafka.topic_suffix
    records = await consume(settings, CHAT_MESSAGES.name_for(suffix), count=6, services=[adapter])
    by_id = {r["message_id"]: ChatMessage.model_validate(r) for r in records}
    assert set(by_id) == {"w0", "w1", "w2", "w3", "w4", "w5"}
    assert by_id["w0"].platform == "webhook" and by_id["w0"].key == "webhook:default:anonymous"
    assert by_id["w3"].key == "webhook:forum:u-42" and by_id["w3"].user_roles == ["member"]
    dead = await consume(settings, DEADLETTER.name_for(suffix), count=4, services=[adapter])
    assert {d["source_topic"] for d in dead} == {"webhook"}
    assert sum("may not publish for platform" in d["error"] for d in dead) == 1
    await asyncio.sleep(1.0)
    assert await topic_size(settings.kafka, CHAT_MESSAGES) == 6  # nothing from /v1/moderate
    assert await asyncio.to_thread(adapter.stop) == 0


@pytest.fixture
def own_broker(tmp_path: Path, settings: Settings) -> Iterator[ThrowawayKafka]:
    broker = ThrowawayKafka(tmp_path / "kafka", settings)
    broker.start()
    try:
        asyncio.run(create_topics(broker.kafka, settings.kafka.topic_suffix))
        yield broker
    finally:
        broker.stop()


async def test_back_pressure_while_the_broker_is_down_then_everything_is_delivered(
    settings: Settings, own_broker: ThrowawayKafka, service_factory: Callable[..., Service]
) -> None:
    ours = settings.model_copy(update={"kafka": own_broker.kafka})
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    url = base + "/v1/messages"
    adapter = start_webhook(
        service_factory,
        port,
        WARDEN_KAFKA__BOOTSTRAP_SERVERS=own_broker.kafka.bootstrap_servers,
        WARDEN_INGEST__BUFFER_MAX_MESSAGES="50",
        WARDEN_INGEST__RETRY_AFTER_S="2",
    )
    await wait_healthy(base, adapter)

    def batch(start: int) -> dict[str, Any]:
        return {"messages": [{"id": f"bp{i}", "text": f"m {i}"} for i in range(start, start + 10)]}

    accepted: list[str] = []
    async with aiohttp.ClientSession() as session:
        status, reply, _ = await post(session, url, batch(0))
        assert status == 202
        accepted += reply["accepted"]
        topic = CHAT_MESSAGES.name_for(settings.kafka.topic_suffix)
        await consume(ours, topic, count=10, timeout_s=30, services=[adapter])

        await asyncio.to_thread(own_broker.stop)
        # The buffer holds 50 messages: five more batches fit, the sixth is refused whole.
        refused = None
        for start in range(10, 200, 10):
            status, reply, headers = await post(session, url, batch(start))
            if status == 503:
                refused = (reply, headers)
                break
            assert status == 202, reply
            accepted += reply["accepted"]
        assert refused is not None, "the webhook never pushed back"
        assert refused[1]["Retry-After"] == "2"
        assert len(accepted) == 60
        async with session.get(base + "/healthz") as response:
            assert (await response.json())["buffered"] == 50

        await asyncio.to_thread(own_broker.start)
        records = await consume(ours, topic, count=60, timeout_s=60, services=[adapter])
        assert {r["message_id"] for r in records} == set(accepted)
        # Room again once delivered.
        status, reply, _ = await post(session, url, batch(500))
        assert status == 202
        accepted += reply["accepted"]

    # A clean shutdown flushes what is still buffered.
    assert await asyncio.to_thread(adapter.stop) == 0
    assert await topic_size(ours.kafka, CHAT_MESSAGES) == 70
