"""`warden ingest slack`: signed Events API requests over HTTP, and Socket Mode."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest_asyncio
from fakes.slack_socket import (
    TEAM_ID,
    SlackServer,
    edit_event,
    event_callback,
    message_event,
    signed_headers,
)
from kit import Service, consume, free_port

from core.settings import Settings
from core.topic_admin import topic_size
from schemas.events import ChatMessage
from schemas.topics import CHAT_MESSAGES

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest_asyncio.fixture
async def slack() -> AsyncIterator[SlackServer]:
    server = SlackServer()
    await server.start()
    yield server
    await server.stop()


async def wait_http(url: str, service: Service, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert service.alive(), service.log.read_text()[-3000:]
            try:
                async with session.get(url):
                    return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


async def test_events_api_verifies_signatures_and_takes_each_event_once(
    settings: Settings, slack: SlackServer, service_factory: Callable[..., Service]
) -> None:
    port = free_port()
    adapter = service_factory(
        "ingest",
        "slack",
        "--mode",
        "http",
        WARDEN_PLATFORMS__SLACK__SIGNING_SECRET=SECRET,
        WARDEN_PLATFORMS__SLACK__BOT_TOKEN="xoxb-test",
        WARDEN_PLATFORMS__SLACK__API_BASE_URL=slack.api_url,
        WARDEN_PLATFORMS__SLACK__EVENTS_PORT=str(port),
    )
    url = f"http://127.0.0.1:{port}/slack/events"
    await wait_http(url, adapter)

    parent = message_event("has anyone seen the build logs?", ts="1718474400.000100")
    reply = message_event("yes, in #ci", ts="1718474401.000200", thread_ts=parent["ts"])
    edit = edit_event("C0GENERAL", parent["ts"], "has anyone seen the CI logs?")
    upload = message_event(
        "screenshot",
        ts="1718474402.000300",
        subtype="file_share",
        files=[
            {
                "id": "F1",
                "name": "shot.png",
                "mimetype": "image/png",
                "url_private": "https://files.slack.com/files-pri/T0-F1/shot.png",
            }
        ],
    )
    bot = dict(
        message_event("beep", ts="1718474403.000400"), bot_id="B0OTHER", subtype="bot_message"
    )
    bodies = [event_callback(e) for e in (parent, reply, edit, upload, bot)]

    async with aiohttp.ClientSession() as session:

        async def post(body: bytes, headers: dict[str, str]) -> tuple[int, str]:
            async with session.post(url, data=body, headers=headers) as response:
                return response.status, await response.text()

        for body in bodies:
            raw = json.dumps(body).encode()
            assert (await post(raw, signed_headers(SECRET, raw)))[0] == 200

        # Slack retries an event it thinks was not acknowledged: same event_id, retry headers.
        raw = json.dumps(bodies[0]).encode()
        retry = {**signed_headers(SECRET, raw), "X-Slack-Retry-Num": "1"}
        retry["X-Slack-Retry-Reason"] = "http_timeout"
        assert (await post(raw, retry))[0] == 200

        forged = json.dumps(event_callback(message_event("forged", ts="1.1"))).encode()
        assert (await post(forged, signed_headers("not-the-secret", forged)))[0] == 401
        stale = json.dumps(event_callback(message_event("old", ts="1.2"))).encode()
        stale_headers = signed_headers(SECRET, stale, timestamp=int(time.time()) - 600)
        assert (await post(stale, stale_headers))[0] == 401

        challenge = json.dumps({"type": "url_verification", "challenge": "c-123"}).encode()
        status, text = await post(challenge, signed_headers(SECRET, challenge))
        assert status == 200 and "c-123" in text

    topic = CHAT_MESSAGES.name_for(settings.kafka.topic_suffix)
    records = await consume(settings, topic, count=4, timeout_s=30, services=[adapter])
    messages = [ChatMessage.model_validate(r) for r in records]
    by_text = {m.text: m for m in messages}
    assert set(by_text) == {
        "has anyone seen the build logs?",
        "yes, in #ci",
        "has anyone seen the CI logs?",
        "screenshot",
    }
    original = by_text["has anyone seen the build logs?"]
    assert original.message_id == "C0GENERAL:1718474400.000100"
    assert original.community == TEAM_ID and original.user == "U0ALICE"
    assert by_text["yes, in #ci"].reply_to == original.message_id
    edited = by_text["has anyone seen the CI logs?"]
    assert edited.edited and edited.message_id == original.message_id
    assert by_text["screenshot"].attachments[0].content_type == "image/png"
    await asyncio.sleep(1.0)
    assert (
        await topic_size(settings.kafka, CHAT_MESSAGES) == 4
    )  # no retry, forgery or bot published
    assert await asyncio.to_thread(adapter.stop) == 0


async def test_socket_mode_acknowledges_envelopes_and_publishes(
    settings: Settings, slack: SlackServer, service_factory: Callable[..., Service]
) -> None:
    adapter = service_factory(
        "ingest",
        "slack",
        WARDEN_PLATFORMS__SLACK__MODE="socket",
        WARDEN_PLATFORMS__SLACK__APP_TOKEN="xapp-1-A0WARDEN-test",
        WARDEN_PLATFORMS__SLACK__BOT_TOKEN="xoxb-test",
        WARDEN_PLATFORMS__SLACK__API_BASE_URL=slack.api_url,
    )
    await slack.wait_connected()
    assert ("apps.connections.open", "xapp-1-A0WARDEN-test") in slack.calls

    first = event_callback(message_event("hi from socket mode", ts="1718474500.000100"))
    envelopes = [
        await slack.push_event(first),
        await slack.push_event(
            event_callback(
                message_event("threaded", ts="1718474501.1", thread_ts="1718474500.000100")
            )
        ),
        await slack.push_event(
            event_callback(edit_event("C0GENERAL", "1718474500.000100", "edited in socket mode"))
        ),
        await slack.push_event(
            first, retry_attempt=1
        ),  # redelivered: acknowledged, not republished
    ]
    await slack.wait_acked(envelopes)

    topic = CHAT_MESSAGES.name_for(settings.kafka.topic_suffix)
    records = await consume(settings, topic, count=3, timeout_s=30, services=[adapter])
    assert sorted(r["text"] for r in records) == [
        "edited in socket mode",
        "hi from socket mode",
        "threaded",
    ]
    await asyncio.sleep(1.0)
    assert await topic_size(settings.kafka, CHAT_MESSAGES) == 3
    assert await asyncio.to_thread(adapter.stop) == 0
