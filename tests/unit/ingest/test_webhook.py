"""The webhook API's parsing and authentication, and its answers, with no broker behind it."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from fakes.kafka_producer import FakeProducer
from pydantic import SecretStr

from ingest.adapters.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookAPI,
    authenticate,
    batch_items,
    parse_batch,
    signature,
)
from ingest.publisher import Publisher
from schemas.events import utcnow
from toxicity.loading import load_model
from warden.errors import ConfigError
from warden.settings import IngestSettings, KafkaSettings, ModelSettings

SETTINGS = IngestSettings(
    webhook_token=SecretStr("tok"),
    webhook_hmac_secret=SecretStr("sec"),
    buffer_max_messages=3,
    retry_after_s=4,
    shutdown_timeout_s=0.1,
)


def test_bearer_and_hmac_authentication() -> None:
    body = b'{"id": "1", "text": "x"}'
    now = time.time()
    ts = str(int(now))
    signed = {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: signature("sec", ts, body)}
    assert authenticate(SETTINGS, {"Authorization": "Bearer tok"}, body) is None
    assert authenticate(SETTINGS, signed, body, now=now) is None
    assert authenticate(SETTINGS, {"Authorization": "Bearer no"}, body) == "invalid bearer token"
    assert authenticate(SETTINGS, signed, body + b" ", now=now) == "invalid signature"
    assert "stale" in (authenticate(SETTINGS, signed, body, now=now + 301) or "")
    assert "missing" in (authenticate(SETTINGS, {}, body) or "")


def test_batch_shapes_defaults_and_errors() -> None:
    assert batch_items({"messages": [1]}) == [1]
    assert batch_items({"id": "a"}) == [{"id": "a"}]
    assert batch_items([{"id": "a"}]) == [{"id": "a"}]
    with pytest.raises(ValueError):
        batch_items("text")
    parsed = parse_batch(
        [
            {"id": 7, "text": "ok"},
            {"text": "no id"},
            {"id": "x", "text": 5},
            {"id": "y", "text": "t", "platform": "icq"},
        ],
        utcnow(),
    )
    assert [m.message_id for m in parsed.messages] == ["7"]
    only = parsed.messages[0]
    assert (only.platform, only.community, only.channel, only.user) == (
        "webhook",
        "default",
        "default",
        "anonymous",
    )
    assert [e["index"] for e in parsed.errors] == [1, 2, 3]
    assert parsed.errors[1]["errors"][0].startswith("text:")
    assert parsed.errors[2]["errors"][0].startswith("platform:")
    assert len(parsed.invalid) == 3


def test_the_webhook_never_runs_unauthenticated(producer: FakeProducer) -> None:
    publisher = Publisher(KafkaSettings(), producer)
    with pytest.raises(ConfigError):
        WebhookAPI(IngestSettings(), publisher)


@pytest_asyncio.fixture
async def client(producer: FakeProducer) -> AsyncIterator[TestClient]:
    async with Publisher(KafkaSettings(), producer, ingest=SETTINGS, adapter="webhook") as pub:
        api = WebhookAPI(SETTINGS, pub, load_model(ModelSettings()))
        async with TestClient(TestServer(api.app())) as test_client:
            yield test_client


AUTH = {"Authorization": "Bearer tok"}


async def test_503_with_retry_after_once_the_buffer_is_full(client: TestClient) -> None:
    batch = {"messages": [{"id": f"a{i}", "text": "hi"} for i in range(2)]}
    first = await client.post("/v1/messages", data=json.dumps(batch), headers=AUTH)
    assert first.status == 202 and (await first.json())["accepted"] == ["a0", "a1"]
    full = await client.post("/v1/messages", data=json.dumps(batch), headers=AUTH)
    assert full.status == 503 and full.headers["Retry-After"] == "4"
    health = await client.get("/healthz")
    assert (await health.json())["buffered"] == 2


async def test_moderate_answers_with_verdicts(client: TestClient) -> None:
    body = {"messages": [{"id": "q1", "text": "you idiot"}, {"id": "q2"}]}
    reply = await client.post("/v1/moderate", data=json.dumps(body), headers=AUTH)
    assert reply.status == 422
    payload = await reply.json()
    assert [r["id"] for r in payload["results"]] == ["q1"]
    assert payload["results"][0]["severity"] in {"SAFE", "LOW", "MEDIUM", "HIGH"}
    assert payload["errors"][0]["id"] == "q2"
    too_many = {
        "messages": [{"id": str(i), "text": "x"} for i in range(SETTINGS.webhook_max_batch + 1)]
    }
    assert (
        await client.post("/v1/moderate", data=json.dumps(too_many), headers=AUTH)
    ).status == 413
    assert (await client.post("/v1/moderate", data="{}")).status == 401
