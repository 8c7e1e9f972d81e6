"""The stream detectors' windows and the 7-day counters against the real local Redis:
event-time windows, and a replayed batch that counts nothing twice and answers the same."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest_asyncio
import redis.asyncio as aioredis

from core.clients import redis_client
from core.settings import Settings
from schemas.detection import DETECTORS_FIELD, DetectorThresholds, policy_key
from schemas.events import ChatMessage, Severity, Verdict, utcnow
from schemas.labels import RAID, SPAM
from scorers.context_store import FeatureStore, Outcome, Position
from scorers.detectors import StreamDetectors, entry, traits
from scorers.stream_state import GRACE_S, PolicyCache, RaidSeen, StreamState

START = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def chat(
    community: str, user: str, text: str, second: float, channel: str = "#main"
) -> ChatMessage:
    sent = START + timedelta(seconds=second)
    return ChatMessage.model_validate(
        {
            "message_id": uuid.uuid4().hex,
            "platform": "twitch",
            "community": community,
            "channel": channel,
            "user": user,
            "text": text,
            "sent_at": sent.isoformat(),
            "received_at": sent.isoformat(),
        }
    )


def verdict(
    message: ChatMessage, flagged: bool = False, labels: list[str] | None = None
) -> Verdict:
    return Verdict(
        message_id=message.message_id,
        platform=message.platform,
        community=message.community,
        channel=message.channel,
        user=message.user,
        text=message.text,
        p_toxic=0.9 if flagged else 0.01,
        severity=Severity.HIGH if flagged else Severity.SAFE,
        flagged=flagged,
        labels=labels or [],
        model_version="test",
        sent_at=message.sent_at,
        received_at=message.received_at,
        scored_at=utcnow(),
    )


@pytest_asyncio.fixture
async def client(stack: Settings) -> AsyncIterator[aioredis.Redis]:
    client = redis_client(stack.redis)
    yield client
    await client.aclose()


def detectors(client: aioredis.Redis) -> StreamDetectors:
    return StreamDetectors(StreamState(client), PolicyCache(client, ttl_s=0))


Labelled = list[tuple[list[str], dict[str, str], bool]]


async def run(
    d: StreamDetectors, messages: list[ChatMessage], flagged: bool = False
) -> tuple[Labelled, list[RaidSeen]]:
    detected = await d.run(messages, [verdict(m, flagged) for m in messages])
    return [(v.labels, v.reasons, v.flagged) for v in detected.verdicts], detected.raids


async def test_spam_and_flood_windows_and_replay(client: aioredis.Redis) -> None:
    d = detectors(client)
    community = uuid.uuid4().hex
    spam = [chat(community, "bot", f"buy followers {i} at cheap", i * 2.0) for i in range(6)]
    first, _ = await run(d, spam[:3])
    second, _ = await run(d, spam[3:])
    assert all(SPAM not in labels for labels, _, _ in first)
    assert [SPAM in labels for labels, _, _ in second] == [False, True, True]  # 5th and 6th
    assert second[1][1][SPAM] == "5 near-identical lines in 60 s" and second[1][2]

    replayed, _ = await run(d, spam[3:])
    assert replayed == second  # the same labels, the same counts in the reasons

    # Outside the window (event time), nothing counts: 61 s after the last line.
    late = [chat(community, "bot", "buy followers 9 at cheap", 10 * 2.0 + 61)]
    (only,), _ = await run(d, late)
    assert SPAM not in only[0]

    flood = [chat(community, "fast", f"line {uuid.uuid4().hex}", i * 0.5) for i in range(12)]
    labelled, _ = await run(d, flood)
    assert ["flood" in labels for labels, _, _ in labelled] == [False] * 9 + [True] * 3
    assert labelled[-1][1]["flood"] == "12 lines in 10 s"
    assert (await run(d, flood))[0] == labelled


async def test_window_keys_outlive_the_window_and_their_expiry_moves_rarely(
    client: aioredis.Redis,
) -> None:
    """Every PEXPIRE is a command in Redis's append-only file: a key's expiry moves only when it
    would come nearer than its window + grace, so a busy user's keys are not written for it on
    every batch, and no key goes before a replay within the grace period could need it."""
    d = detectors(client)
    community = uuid.uuid4().hex
    first = chat(community, "viewer", "hello there", 0.0)
    await run(d, [first])
    key = f"wd:f:{first.key}"
    grace_ms = GRACE_S * 1000
    set_to = await client.pttl(key)
    assert set_to > grace_ms
    await client.pexpire(key, set_to + 60_000)  # farther than it needs
    await run(d, [chat(community, "viewer", "still here", 1.0)])
    assert await client.pttl(key) > set_to + 50_000  # not moved: far enough away

    await client.pexpire(key, 1_000)  # as if the last move were long ago
    await run(d, [chat(community, "viewer", "and again", 2.0)])
    assert await client.pttl(key) > grace_ms  # moved again
    assert await client.zcard(key) == 3


async def test_raid_keys_a_batch_creates_get_their_expiry_and_old_ones_are_trimmed(
    client: aioredis.Redis,
) -> None:
    """A first-time chatter's raid line opens three keys (accounts, lines, the raid's hash):
    the batch that creates them sets their expiry without asking for it; a later batch trims
    what left the window + grace and moves the expiry only when it comes near."""
    d = detectors(client)
    community = uuid.uuid4().hex
    line = "follow my channel for free stuff"
    first = chat(community, "newbie", line, 0.0)
    await run(d, [first])
    window_ms = (DetectorThresholds().raid_window_s + GRACE_S) * 1000
    keys = [k async for k in client.scan_iter(f"wd:r[amd]:*{community}*")]
    assert len(keys) == 3
    for key in keys:
        assert window_ms < await client.pttl(key) <= window_ms * 3 // 2

    # Far later (event time) from another first-time chatter: the old line leaves.
    late_s = DetectorThresholds().raid_window_s + GRACE_S + 5
    await run(d, [chat(community, "other", line, late_s)])
    accounts = next(k for k in keys if k.startswith(b"wd:ra:"))
    lines = next(k for k in keys if k.startswith(b"wd:rm:"))
    assert await client.zrange(accounts, 0, -1) == [b"other"]
    assert await client.zcard(lines) == 1
    for key in keys:
        assert await client.pttl(key) > window_ms


async def test_separator_characters_in_a_raid_line_are_only_text(
    client: aioredis.Redis,
) -> None:
    """A batch goes to Redis as one argument, its records and fields split by control
    characters: a line that contains them stays one line, and the lines after it are read
    right."""
    community = uuid.uuid4().hex
    odd = "free stuff\x1dat my\x1e channel\x1f today"
    batch = [chat(community, "a", odd, 0.0), chat(community, "b", "hello there friends", 0.1)]
    batch += [chat(community, "b", "hello there friends", 0.2 + i / 10) for i in range(3)]
    state = StreamState(client)
    windows, _ = await state.apply(
        batch,
        [entry(traits(m.text)) for m in batch],
        [DetectorThresholds()] * len(batch),
        [(False, [])] * len(batch),
    )
    assert [w.lines for w in windows] == [1, 1, 2, 3, 4]
    assert [w.repeats for w in windows] == [1, 1, 2, 3, 4]
    raid_key = f"wd:rd:twitch:{community}:#main:{traits(odd).raid_fingerprint}"
    stored: list[bytes] = await client.hvals(raid_key)  # type: ignore[misc]
    assert any(value.endswith(b"free stuff at my  channel  today") for value in stored)


async def test_split_evasion_spelt_across_lines(client: aioredis.Redis) -> None:
    d = detectors(client)
    community = uuid.uuid4().hex
    lines = [chat(community, "u", text, i) for i, text in enumerate(["go", "k", "Y", "s"])]
    labelled, _ = await run(d, lines[:2])
    labelled += (await run(d, lines[2:]))[0]
    assert ["split_evasion" in labels for labels, _, _ in labelled] == [False] * 3 + [True]
    assert labelled[-1][1]["split_evasion"] == "'kys' spelt across 4 short lines"
    assert labelled[-1][2]
    # A longer line between the pieces breaks the word.
    other = [chat(community, "v", t, i) for i, t in enumerate(["k", "y", "what a play", "s"])]
    assert all("split_evasion" not in labels for labels, _, _ in (await run(d, other))[0])


async def test_a_raid_is_labelled_published_once_and_stable_on_replay(
    client: aioredis.Redis,
) -> None:
    d = detectors(client)
    community = uuid.uuid4().hex
    regular = chat(community, "regular", "raid incoming follow the hype train", -3600)
    store = FeatureStore(client)
    await store.update([regular], [Outcome(bad=False, violation=False)])
    line = "STREAMER RAID follow the hype train"
    raiders = [chat(community, f"r{i}", line, 0.1 * i) for i in range(14)]
    raiders.insert(5, chat(community, "regular", line, 0.45))  # not a first-time chatter
    first, raids = await run(d, raiders[:8])
    second, raids2 = await run(d, raiders[8:], flagged=False)
    labelled = first + second
    is_raid = [RAID in labels for labels, _, _ in labelled]
    # The 10th first-time account crosses; the regular's line is never a raid line.
    assert is_raid == [False] * 10 + [True] * 5
    assert not raids and len(raids2) == 1
    event = raids2[0].event
    assert event is not None and event.size == 10 and event.messages == 10
    assert event.raid_id.endswith(raiders[0].message_id)
    assert event.sample == [line] and not event.harmful
    assert "regular" not in event.accounts and len(event.accounts) == 10
    assert not labelled[-1][2]  # a raid line alone is not flagged: the RaidEvent answers it

    # Replay before delivery was marked: same labels, the same raid id published again.
    again, raids3 = await run(d, raiders[8:])
    assert again == second
    assert [r.raid_id for r in raids3] == [event.raid_id]
    await d.published(raids3)
    again, raids4 = await run(d, raiders[8:])
    assert again == second and not raids4  # delivered: never published twice
    # Replaying the earlier batch too changes nothing.
    assert (await run(d, raiders[:8]))[0] == first


async def test_harmful_raid_and_community_thresholds(client: aioredis.Redis) -> None:
    d = detectors(client)
    community = uuid.uuid4().hex
    await client.hset(  # type: ignore[misc]
        policy_key("twitch", community),
        DETECTORS_FIELD,
        DetectorThresholds(raid_min_accounts=3, enabled={"spam": False}).model_dump_json(),
    )
    raiders = [chat(community, f"h{i}", "you all are tr4sh go h0me", i) for i in range(4)]
    detected = await d.run(raiders, [verdict(m, flagged=i == 1) for i, m in enumerate(raiders)])
    assert [RAID in v.labels for v in detected.verdicts] == [False, False, True, True]
    (raid,) = detected.raids
    assert raid.event is not None and raid.event.harmful and raid.event.size == 3

    # A malformed policy falls back to the defaults (raid needs 10 accounts again).
    bad = json.dumps({"x": 1})
    await client.hset(policy_key("twitch", community), DETECTORS_FIELD, bad)  # type: ignore[misc]
    others = [chat(community, f"k{i}", "another raid line here", 100 + i) for i in range(4)]
    assert all(RAID not in labels for labels, _, _ in (await run(d, others))[0])


async def test_seven_day_counters_do_not_count_a_replay_twice(client: aioredis.Redis) -> None:
    store = FeatureStore(client)
    community = uuid.uuid4().hex
    topic = f"chat.messages.v1.{community[:8]}"
    batch = [chat(community, "alice", f"line {i}", i) for i in range(3)]
    batch.append(chat(community, "bob", "hello", 4))
    outcomes = [Outcome(bad=True, violation=True)] * 3 + [Outcome(bad=False, violation=False)]
    positions = [Position(topic, 0, 10), Position(topic, 0, 11), Position(topic, 0, 12)]
    positions.append(Position(topic, 1, 7))

    (before,) = await store.read([chat(community, "alice", "again", 10)])
    assert before["is_new_to_channel"] == 1.0
    await store.update(batch, outcomes, positions=positions)
    await store.update(batch, outcomes, positions=positions)  # the replay
    await store.update(batch[1:], outcomes[1:], positions=positions[1:])  # a shifted replay
    alice, bob = await store.read(
        [chat(community, "alice", "again", 10), chat(community, "bob", "again", 10)]
    )
    assert alice["violation_count_7d"] == 3.0 and alice["user_bad_ratio_7d"] == 1.0
    assert alice["channel_toxicity_ratio"] == 3 / 4  # the channel hash counted 4, not 8
    assert alice["is_new_to_channel"] == 0.0 and bob["is_new_to_channel"] == 0.0

    # The next offsets count; the first-seen time of a replayed first line stays "new".
    later = chat(community, "alice", "later", 20)
    await store.update(
        [later], [Outcome(bad=False, violation=False)], positions=[Position(topic, 0, 13)]
    )
    (alice,) = await store.read([chat(community, "alice", "again", 30)])
    assert alice["user_bad_ratio_7d"] == 3 / 4
    (replayed_first,) = await store.read([batch[0]])
    assert replayed_first["is_new_to_channel"] == 1.0
