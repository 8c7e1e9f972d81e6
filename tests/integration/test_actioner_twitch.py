"""Twitch actions on the real stack: the ledger in PostgreSQL, the dispatcher, the Twitch executor
and the local Helix server; then `warden actioner` killed mid-stream and restarted.

Every test counts what Helix was asked and what it did (its effects), so a repeated action or a
call before ``Ratelimit-Reset`` fails the test.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest_asyncio
from aiokafka import AIOKafkaProducer
from fakes.twitch import CLIENT_ID, TOKEN, FakeTwitch
from kit import Service, consume
from pydantic import SecretStr

from actioners import commands
from actioners.database import Database
from actioners.dispatch import Dispatcher
from actioners.executors import Router
from actioners.ledger import Entry, Ledger, Source, State, record_decisions
from actioners.platforms.twitch import TwitchExecutor
from core.settings import ActionerSettings, Settings, TwitchSettings
from schemas.events import (
    ActionKind,
    ActionRequest,
    Platform,
    RaidMode,
    Severity,
    Verdict,
    utcnow,
)
from schemas.topics import ACTIONS, VERDICTS

FAST = ActionerSettings(backoff_base_s=0.05, backoff_max_s=0.2)


@pytest_asyncio.fixture
async def helix() -> AsyncIterator[FakeTwitch]:
    fake = FakeTwitch()
    await fake.start()
    yield fake
    await fake.close()


def twitch_settings(fake: FakeTwitch) -> TwitchSettings:
    return TwitchSettings(
        api_token=SecretStr(TOKEN),
        client_id=CLIENT_ID,
        api_base_url=fake.base_url,
        request_timeout_s=5,
    )


async def executor_for(fake: FakeTwitch) -> Router:
    router = Router({Platform.TWITCH: TwitchExecutor(twitch_settings(fake))})
    await router.start()
    return router


def numeric_id() -> str:
    return str(uuid.uuid4().int % 10**9)


def action(
    kind: str,
    channel: str,
    user: str,
    *,
    duration_s: int | None = None,
    modes: tuple[str, ...] = (),
) -> ActionRequest:
    message = str(uuid.uuid4())  # a Twitch message id is a UUID
    now = utcnow()
    return ActionRequest(
        action_id=f"{message}:{kind}",
        message_id=message,
        platform=Platform.TWITCH,
        community=channel,
        channel="#somestreamer",
        user=user,
        kind=ActionKind(kind),
        duration_s=duration_s,
        reason=f"policy twitch:{channel}@v1: HIGH",
        severity=Severity.HIGH,
        p_toxic=0.9,
        model_version="m",
        policy_version="p",
        sent_at=now,
        requested_at=now,
        notice="Please keep it civil.",
        modes=[RaidMode(m) for m in modes],
    )


async def recorded(db: Database, requests: list[ActionRequest]) -> list[Entry]:
    """The requests written to the ledger as pending, the way the actioner writes them."""
    topic = f"verdicts.twitch-{uuid.uuid4().hex[:8]}"
    entries = [
        Entry(r, State.PENDING, Source(topic, 0, offset)) for offset, r in enumerate(requests)
    ]
    async with db.transaction() as cur:
        await record_decisions(cur, [], entries)
    return await Ledger(db).entries([r.message_id for r in requests])


async def test_every_action_kind_once_through_the_ledger_with_429_and_5xx(
    db: Database, helix: FakeTwitch
) -> None:
    channel = numeric_id()
    banned_before = numeric_id()
    helix.bans[(channel, banned_before)] = None  # a moderator banned them already
    requests = [
        action("delete", channel, numeric_id()),
        action("timeout", channel, "501", duration_s=600),
        action("ban", channel, "502"),
        action("ban", channel, banned_before),
        action("warn", channel, "503"),
        action("raid_mode", channel, "raid", duration_s=600, modes=("slow", "followers")),
        action("hold", channel, "504"),
    ]
    entries = await recorded(db, requests)
    router = await executor_for(helix)
    try:
        reset = helix.exhaust(0.3)  # the bucket is empty at first: 429 until its reset
        helix.fail_next(2, status=503)  # then two server errors: retried
        finished = await Dispatcher(router, Ledger(db), FAST).run(entries)
    finally:
        await router.close()

    state = {e.request.kind.value + ":" + e.request.user: (e.state, e.detail) for e in finished}
    assert state[f"ban:{banned_before}"] == (State.DONE, "already banned")
    assert state["hold:504"] == (State.SKIPPED, "held for review")
    assert {s for s, _ in state.values()} == {State.DONE, State.SKIPPED}
    assert [k for k, (s, _) in state.items() if s is State.SKIPPED] == ["hold:504"]
    assert "slow mode 30 s" in state["raid_mode:raid"][1]

    # What Helix did, each once; nothing for the hold or the user banned before. A timeout
    # retried after a 503 is reconciled for the time it has left: 600 s, or a second less
    # when the retry comes more than a second later (a loaded machine).
    effects = [
        ("timeout", f"{channel}:501:600")
        if kind == "timeout"
        and target.startswith(f"{channel}:501:")
        and 595 <= int(target.rsplit(":", 1)[1]) <= 600
        else (kind, target)
        for kind, target in helix.effects
    ]
    assert sorted(effects) == sorted(
        [
            ("delete", requests[0].message_id),
            ("timeout", f"{channel}:501:600"),
            ("ban", f"{channel}:502"),
            ("warn", f"{channel}:503"),
            (
                "settings",
                f'{channel}:{{"follower_mode": true, "follower_mode_duration": 10,'
                ' "slow_mode": true, "slow_mode_wait_time": 30}',
            ),
        ]
    )
    assert set(helix.effect_counts().values()) == {1}
    # The 429s: none answered after the reset, so no call went out before it and the bucket
    # then held every waiting action; the 503s were tried again.
    limited = [r for r in helix.requests if r.status == 429]
    assert limited and all(r.at < reset for r in limited)
    assert all(r.at >= reset for r in helix.requests if r.status != 429 and r.bucket != "users")
    assert sum(1 for r in helix.requests if r.status == 503) == 2
    # The ledger has them finished, with audit rows (a verdict replayed finds them done).
    again = await Ledger(db).entries([r.message_id for r in requests])
    assert all(not e.open for e in again)


async def test_a_restart_with_actions_in_flight_repeats_none_of_them(
    db: Database, helix: FakeTwitch
) -> None:
    channel = numeric_id()
    requests = [
        action("delete", channel, "601"),
        action("timeout", channel, "602", duration_s=3600),
        action("ban", channel, "603"),
        action("warn", channel, "604"),
        action("raid_mode", channel, "raid", modes=("emote_only",)),
        action("timeout", channel, "605", duration_s=3600),  # in flight, never reached Helix
    ]
    entries = await recorded(db, requests)
    ledger = Ledger(db)
    started = await ledger.start(entries, "twitch")
    assert [e.state for e in started] == [State.IN_FLIGHT] * len(requests)
    # The first actioner reached Helix for all but the last, then died before its bookkeeping.
    first = await executor_for(helix)
    try:
        for request in requests[:-1]:
            await first.execute(request)
    finally:
        await first.close()
    done_before = list(helix.effects)
    assert len(done_before) == 5

    # The next actioner finds them in flight and reconciles them.
    unfinished = await ledger.unfinished(started[0].source.topic, [0])
    assert {e.state for e in unfinished} == {State.IN_FLIGHT}
    second = await executor_for(helix)
    try:
        finished = await Dispatcher(second, ledger, FAST).run(unfinished)
    finally:
        await second.close()
    by_user = {e.request.user: e for e in finished}
    assert all("reconciled after a restart" in e.detail for e in finished)
    assert by_user["604"].state is State.SKIPPED  # a warning is never given twice
    assert {e.state for u, e in by_user.items() if u != "604"} == {State.DONE}
    # Only the one that never reached Helix was done now; nothing twice.
    assert helix.effects[: len(done_before)] == done_before
    ((kind, target),) = helix.effects[len(done_before) :]
    # Timed out for what is left of its hour, counted from when it was first started.
    assert kind == "timeout" and int(target.removeprefix(f"{channel}:605:")) in (3599, 3600)
    assert set(helix.effect_counts().values()) == {1}
    assert helix.count("warn") == 1 and helix.count("settings") == 1


# -- `warden actioner` as a process ------------------------------------------------------------


def verdict(channel: str, user: str) -> Verdict:
    sent = datetime.now(UTC)
    return Verdict(
        message_id=str(uuid.uuid4()),
        platform=Platform.TWITCH,
        community=channel,
        channel="#somestreamer",
        user=user,
        text="(redacted)",
        p_toxic=0.9,
        severity=Severity.HIGH,
        flagged=True,
        model_version="test-model-1",
        sent_at=sent,
        received_at=sent,
        scored_at=sent + timedelta(milliseconds=20),
    )


async def test_the_actioner_killed_mid_stream_acts_on_twitch_exactly_once(
    db: Database,
    settings: Settings,
    producer: AIOKafkaProducer,
    service_factory: Callable[..., Service],
) -> None:
    fake = FakeTwitch(latency_s=0.02)
    await fake.start()
    try:
        env = {
            "WARDEN_ACTIONER__EXECUTOR": "twitch",
            "WARDEN_PLATFORMS__TWITCH__API_TOKEN": TOKEN,
            "WARDEN_PLATFORMS__TWITCH__CLIENT_ID": CLIENT_ID,
            "WARDEN_PLATFORMS__TWITCH__API_BASE_URL": fake.base_url,
            "WARDEN_ACTIONER__BACKOFF_BASE_S": "0.05",
        }
        channel = numeric_id()
        # A new community starts in first-day mode (acting on nothing): this one is live.
        await commands.go_live(db, "twitch", channel, author="test")
        first = service_factory("actioner", **env)
        killed = asyncio.Event()

        def kill_midway(kind: str, target: str) -> None:
            # Helix has acted; the actioner dies before it hears so: the worst moment.
            if len(fake.effects) >= 12 and not killed.is_set():
                os.kill(first.process.pid, signal.SIGKILL)
                killed.set()

        fake.on_effect = kill_midway
        verdicts = [verdict(channel, numeric_id()) for _ in range(20)]
        topic = VERDICTS.name_for(settings.kafka.topic_suffix)
        for v in verdicts:
            await producer.send(topic, v.to_json_bytes(), key=v.key.encode())
        await producer.flush()
        await asyncio.wait_for(killed.wait(), timeout=60)
        assert first.process.wait(timeout=10) == -signal.SIGKILL

        second = service_factory("actioner", **env)
        # Whatever the policy decides per verdict (at least one action each), every action gets
        # one result, and what Helix did it did once.
        found = await consume(
            settings,
            ACTIONS.name_for(settings.kafka.topic_suffix),
            count=len(verdicts),
            services=[second],
            timeout_s=60,
        )
        await asyncio.sleep(3)  # let the rest of the stream finish
        found = await consume(
            settings, ACTIONS.name_for(settings.kafka.topic_suffix), count=10**6, timeout_s=3
        )
        results = {r["action_id"]: r for r in found}
        assert {r["message_id"] for r in results.values()} == {v.message_id for v in verdicts}
        assert {r["status"] for r in results.values()} <= {"done", "skipped"}, [
            r["detail"] for r in results.values() if r["status"] == "failed"
        ]
        assert any("reconciled after a restart" in r["detail"] for r in results.values())
        assert set(fake.effect_counts().values()) == {1}, fake.effect_counts().most_common(3)
        deleted = {t for k, t in fake.effects if k == "delete"}
        asked_to_delete = {r["message_id"] for r in results.values() if r["kind"] == "delete"}
        assert deleted == asked_to_delete
        assert fake.count("warn", 200) == sum(1 for k, _ in fake.effects if k == "warn")
    finally:
        await fake.close()
