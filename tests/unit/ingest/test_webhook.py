"""The webhook API's parsing and authentication, and its answers, with no broker behind it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from fakes.kafka_producer import FakeProducer
from pydantic import SecretStr

from core.errors import ConfigError
from core.settings import IngestSettings, KafkaSettings, ModelSettings, WebhookCredential
from core.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, webhook_signature
from ingest.adapters.webhook import (
    Authenticator,
    Refused,
    SeenSignatures,
    WebhookAPI,
    batch_items,
    nesting_depth,
    parse_batch,
)
from ingest.publisher import Publisher
from schemas.events import utcnow
from toxicity.loading import load_model

SETTINGS = IngestSettings(
    webhook_token=SecretStr("tok"),
    webhook_hmac_secret=SecretStr("sec"),
    buffer_max_messages=3,
    retry_after_s=4,
    shutdown_timeout_s=0.1,
)

KNOWN_SIGNATURE = "81a19560799e3619b9d73dcd06815c2f811287421b18620956c6f75d3f2cbcb8"


def test_bearer_and_hmac_authentication() -> None:
    auth = Authenticator(SETTINGS)
    body = b'{"id": "1", "text": "x"}'
    now = time.time()
    ts = str(int(now))
    signed = {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: webhook_signature("sec", ts, body)}
    assert auth.authenticate({"Authorization": "Bearer tok"}, body)[0].name == "default"
    assert auth.authenticate(signed, body, now=now)[0].name == "default"
    for headers, sent, at, reason in (
        ({"Authorization": "Bearer no"}, body, now, "invalid bearer token"),
        (signed, body + b" ", now, "invalid signature"),
        (signed, body, now + 301, "stale"),
        ({}, body, now, "missing"),
    ):
        with pytest.raises(Refused) as refused:
            auth.authenticate(headers, sent, now=at)
        assert refused.value.status == 401 and reason in refused.value.reason


def test_hmac_known_answer() -> None:
    # HMAC-SHA256(key="sec", "1718474401." + body), computed independently (openssl dgst).
    assert webhook_signature("sec", "1718474401", b'{"id":"1","text":"x"}') == (
        "sha256=" + KNOWN_SIGNATURE
    )


def test_a_signed_request_is_taken_once_within_its_window() -> None:
    auth = Authenticator(SETTINGS)
    body = b'{"id": "1", "text": "x"}'
    now = time.time()
    ts = str(int(now))
    signed = {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: webhook_signature("sec", ts, body)}
    _, taken = auth.authenticate(signed, body, now=now)
    with pytest.raises(Refused) as replayed:
        auth.authenticate(signed, body, now=now + 299)
    assert (replayed.value.status, replayed.value.reason) == (401, "replayed request")
    auth.seen.forget(taken or "")  # what the API does after answering 5xx
    assert auth.authenticate(signed, body, now=now + 1)[1] == taken
    # Past the window the timestamp check refuses it, and the cache lets it go.
    with pytest.raises(Refused, match="stale"):
        auth.authenticate(signed, body, now=now + 400)
    later = str(int(now) + 400)
    fresh = {TIMESTAMP_HEADER: later, SIGNATURE_HEADER: webhook_signature("sec", later, body)}
    auth.authenticate(fresh, body, now=now + 400)
    assert len(auth.seen) == 1, "expired signatures are evicted"


def test_the_replay_cache_is_bounded_and_never_forgets_a_live_signature() -> None:
    seen = SeenSignatures(capacity=2)
    assert seen.remember("a", expires_at=100, now=0) is None
    assert seen.remember("b", expires_at=50, now=0) is None
    assert seen.remember("c", expires_at=100, now=10) == "full"
    assert seen.remember("a", expires_at=100, now=10) == "replayed"
    # "b" expired (out of insertion order): room for "c".
    assert seen.remember("c", expires_at=120, now=60) is None
    assert len(seen) == 2


def test_a_full_replay_cache_answers_503() -> None:
    auth = Authenticator(SETTINGS.model_copy(update={"webhook_replay_cache_size": 1}))
    now = time.time()
    ts = str(int(now))
    for body, status in ((b"[1]", None), (b"[2]", 503)):
        headers = {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: webhook_signature("sec", ts, body)}
        if status is None:
            auth.authenticate(headers, body, now=now)
            continue
        with pytest.raises(Refused) as refused:
            auth.authenticate(headers, body, now=now)
        assert refused.value.status == 503 and refused.value.retry_after_s == 4


def test_credentials_are_bound_to_platforms_and_communities() -> None:
    settings = SETTINGS.model_copy(
        update={
            "webhook_communities": ["forum"],
            "webhook_credentials": [
                WebhookCredential(
                    name="discord-bridge",
                    token=SecretStr("bridge-token"),
                    platforms=["discord"],
                    communities=["guild-1"],
                )
            ],
        }
    )
    auth = Authenticator(settings)
    default, _ = auth.authenticate({"Authorization": "Bearer tok"}, b"")
    bridge, _ = auth.authenticate({"Authorization": "Bearer bridge-token"}, b"")
    items = [
        {"id": "a", "text": "x", "community": "forum"},
        {"id": "b", "text": "x", "community": "forum", "platform": "discord", "user": "victim"},
        {"id": "c", "text": "x", "community": "elsewhere"},
        {"id": "d", "text": "x", "platform": "discord", "community": "guild-1"},
    ]
    parsed = parse_batch(items, utcnow(), default)
    assert [m.message_id for m in parsed.messages] == ["a"]
    errors = {e["id"]: e["errors"][0] for e in parsed.errors}
    assert errors["b"].startswith("platform: credential 'default' may not publish for platform")
    assert errors["c"].startswith("community: credential 'default' may not publish")
    assert "platform" in errors["d"]
    assert len(parsed.invalid) == 3, "refused items go to the dead-letter topic"
    parsed = parse_batch(items, utcnow(), bridge)
    assert [m.message_id for m in parsed.messages] == ["d"]


def test_depth_is_measured_outside_strings_without_recursion() -> None:
    assert nesting_depth(rb'{"a": [1, {"b": "[[[[\\"}]}') == 3  # an escaped backslash
    assert nesting_depth(rb'{"a": "\"[", "b": [2]}') == 2  # an escaped quote
    assert nesting_depth(b"[" * 100_000) == 100_000
    assert nesting_depth(b'"just a string"') == 0


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


def signed_headers(body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: webhook_signature("sec", ts, body)}


async def test_a_replayed_signed_request_is_refused(
    client: TestClient, producer: FakeProducer
) -> None:
    body = json.dumps({"id": "r1", "text": "once"}).encode()
    headers = signed_headers(body)
    first = await client.post("/v1/messages", data=body, headers=headers)
    assert first.status == 202
    again = await client.post("/v1/messages", data=body, headers=headers)
    assert again.status == 401 and (await again.json())["error"] == "replayed request"
    await asyncio.sleep(0.05)
    assert producer.ids() == ["r1"]


async def test_a_signed_request_answered_503_may_be_sent_again(client: TestClient) -> None:
    filler = {"messages": [{"id": f"f{i}", "text": "hi"} for i in range(3)]}
    assert (await client.post("/v1/messages", data=json.dumps(filler), headers=AUTH)).status == 202
    body = json.dumps({"id": "late", "text": "retry me"}).encode()
    headers = signed_headers(body)
    assert (await client.post("/v1/messages", data=body, headers=headers)).status == 503
    # Still refused for the buffer, not as a replay.
    again = await client.post("/v1/messages", data=body, headers=headers)
    assert again.status == 503 and "buffer full" in (await again.json())["error"]


async def test_deep_json_is_refused_with_400_not_a_crash(client: TestClient) -> None:
    for body in (b"[" * 100_000 + b"]" * 100_000, b"[" * 100_000, b'{"a":' * 33 + b"1" + b"}" * 33):
        reply = await client.post("/v1/messages", data=body, headers=AUTH)
        assert reply.status == 400, await reply.text()
        assert "nested deeper than 32" in (await reply.json())["error"]
    # Deep enough for any real message (user_roles inside an item inside a batch) is fine.
    ok = {"messages": [{"id": "d1", "text": "x", "user_roles": ["member"]}]}
    assert (await client.post("/v1/messages", data=json.dumps(ok), headers=AUTH)).status == 202


async def test_items_outside_the_credential_scope_are_refused_and_dead_lettered(
    client: TestClient, producer: FakeProducer
) -> None:
    batch = {
        "messages": [
            {"id": "ok1", "text": "hello"},
            {
                "id": "forged",
                "text": "delete me",
                "platform": "discord",
                "community": "guild-1",
                "user": "victim",
                "user_roles": ["moderator"],
            },
        ]
    }
    reply = await client.post("/v1/messages", data=json.dumps(batch), headers=AUTH)
    assert reply.status == 422
    payload = await reply.json()
    assert payload["accepted"] == ["ok1"]
    assert payload["errors"][0]["id"] == "forged"
    assert "may not publish for platform 'discord'" in payload["errors"][0]["errors"][0]
    await asyncio.sleep(0.05)
    topics = [topic for topic, *_ in producer.sent]
    assert topics == ["chat.messages.v1", "moderation.deadletter.v1"]
    letter = json.loads(producer.sent[1][2])
    assert "may not publish for platform 'discord'" in letter["error"]


async def test_a_stopped_publisher_answers_503_and_takes_nothing(
    producer: FakeProducer,
) -> None:
    settings = SETTINGS.model_copy(update={"unavailable_after_s": 0.05})
    producer.fail_starts = 10_000  # the broker is away
    async with Publisher(KafkaSettings(), producer, ingest=settings, adapter="webhook") as pub:
        api = WebhookAPI(settings, pub)
        async with TestClient(TestServer(api.app())) as test_client:
            body = json.dumps({"id": "a", "text": "hi"})
            reply = await test_client.post("/v1/messages", data=body, headers=AUTH)
            assert reply.status == 202, "a short outage is ridden out (the buffer holds it)"
            await asyncio.sleep(0.2)
            reply = await test_client.post("/v1/messages", data=body, headers=AUTH)
            assert reply.status == 503 and reply.headers["Retry-After"] == "4"
            assert "has not answered" in (await reply.json())["error"]
            health = await (await test_client.get("/healthz")).json()
            assert health == {"status": "ok", "buffered": 1, "accepting": False}
