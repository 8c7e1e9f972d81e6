"""The Redis feature store against the real local Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
import redis.asyncio as aioredis

from core.clients import redis_client
from core.settings import Settings
from schemas.events import ChatMessage
from scorers.context_store import (
    TTL_SECONDS,
    TTL_SLACK_SECONDS,
    ContextReader,
    FeatureStore,
    Outcome,
    channel_key,
)

DAY = 86_400.0


def message(
    user: str, channel: str = "#main", community: str = "c", minute: int = 0
) -> ChatMessage:
    return ChatMessage.model_validate(
        {
            "message_id": uuid.uuid4().hex,
            "platform": "twitch",
            "community": community,
            "channel": channel,
            "user": user,
            "text": "hi",
            # First-seen in a channel is the sent_at of the user's first line there.
            "sent_at": f"2026-11-21T10:{minute:02d}:00+00:00",
            "received_at": "2026-11-21T10:00:00+00:00",
        }
    )


@pytest_asyncio.fixture
async def client(stack: Settings) -> AsyncIterator[aioredis.Redis]:
    client = redis_client(stack.redis)
    yield client
    await client.aclose()


async def test_first_message_has_no_history(client: aioredis.Redis) -> None:
    store = FeatureStore(client)
    community = uuid.uuid4().hex
    (context,) = await store.read([message("u1", community=community)])
    assert context == {
        "user_bad_ratio_7d": None,
        "violation_count_7d": None,
        "channel_toxicity_ratio": None,
        "hours_since_last_msg": None,
        "is_new_to_channel": 1.0,
    }


async def test_counts_accumulate_per_user_and_channel(client: aioredis.Redis) -> None:
    store = FeatureStore(client)
    community = uuid.uuid4().hex
    now = time.time()
    first = [message("alice", community=community) for _ in range(3)]
    first.append(message("bob", community=community))
    outcomes = [
        Outcome(bad=True, violation=True),
        Outcome(bad=True, violation=False),
        Outcome(bad=False, violation=False),
        Outcome(bad=False, violation=False),
    ]
    await store.update(first, outcomes, now=now - 7200)

    alice, bob, alice_elsewhere = await store.read(
        [
            message("alice", community=community, minute=5),
            message("bob", community=community, minute=5),
            message("alice", channel="#other", community=community, minute=5),
        ],
        now=now,
    )
    assert alice["user_bad_ratio_7d"] == 2 / 3
    assert alice["violation_count_7d"] == 1.0
    assert alice["channel_toxicity_ratio"] == 2 / 4
    assert alice["hours_since_last_msg"] is not None
    assert abs(alice["hours_since_last_msg"] - 2.0) < 0.01
    assert alice["is_new_to_channel"] == 0.0
    assert bob["user_bad_ratio_7d"] == 0.0
    assert bob["violation_count_7d"] == 0.0
    assert alice_elsewhere["is_new_to_channel"] == 1.0
    assert alice_elsewhere["channel_toxicity_ratio"] is None


async def test_the_window_slides_and_keys_expire(client: aioredis.Redis) -> None:
    store = FeatureStore(client)
    community = uuid.uuid4().hex
    now = time.time()
    old = message("carol", community=community)
    await store.update([old], [Outcome(bad=True, violation=True)], now=now - 8 * DAY)
    (context,) = await store.read([message("carol", community=community)], now=now)
    assert context["user_bad_ratio_7d"] is None  # eight days ago: out of the window
    assert context["violation_count_7d"] is None

    # A newer message drops the old day's fields and keeps the keys bounded in time.
    await store.update([old], [Outcome(bad=False, violation=False)], now=now)
    user_fields: list[bytes] = await client.hkeys(f"wf:u:{old.key}")  # type: ignore[misc]
    assert not any(f.decode().startswith(("bad:", "v:")) for f in user_fields)
    for key in (f"wf:u:{old.key}", f"wf:c:{channel_key(old)}"):
        assert TTL_SECONDS - 60 < await client.ttl(key) <= TTL_SECONDS + TTL_SLACK_SECONDS


async def test_a_hash_expiry_moves_only_when_it_comes_near(client: aioredis.Redis) -> None:
    """Every EXPIRE is a command in Redis's append-only file: once a day per hash, not once a
    batch, and never nearer than TTL_SECONDS after the last write."""
    store = FeatureStore(client)
    first = message("dana", community=uuid.uuid4().hex)
    key = f"wf:u:{first.key}"
    await store.update([first], [Outcome(bad=False, violation=False)])
    await client.expire(key, TTL_SECONDS + 100)  # set a day ago, as far as this hash knows
    await store.update([first], [Outcome(bad=False, violation=False)])
    assert await client.ttl(key) == TTL_SECONDS + 100  # still far enough: not moved
    await client.expire(key, TTL_SECONDS - 100)
    await store.update([first], [Outcome(bad=False, violation=False)])
    assert await client.ttl(key) > TTL_SECONDS  # moved


async def test_reads_are_fast_on_the_local_stack(client: aioredis.Redis) -> None:
    """Not a timing assertion on the machine's speed: a sanity bound far above the target."""
    store = FeatureStore(client)
    community = uuid.uuid4().hex
    batch = [message(f"u{i % 40}", community=community) for i in range(64)]
    await store.update(batch, [Outcome(bad=False, violation=False)] * len(batch))
    started = time.perf_counter()
    for _ in range(20):
        await store.read(batch)
    assert (time.perf_counter() - started) / 20 < 0.5


async def test_reader_degrades_and_recovers(stack: Settings) -> None:
    dead = aioredis.Redis.from_url(
        "redis://127.0.0.1:1/0", socket_timeout=0.2, socket_connect_timeout=0.2
    )
    reader = ContextReader(FeatureStore(dead), retry_after_s=0.2)
    contexts, degraded = await reader.read([message("dave")])
    assert contexts is None and degraded
    # While Redis is marked down, no call waits on it.
    started = time.perf_counter()
    assert (await reader.read([message("dave")]))[1]
    assert time.perf_counter() - started < 0.05
    await dead.aclose()

    live = redis_client(stack.redis)
    reader.store = FeatureStore(live)
    await asyncio.sleep(0.25)
    contexts, degraded = await reader.read([message("dave")])
    assert not degraded and contexts is not None
    await live.aclose()
