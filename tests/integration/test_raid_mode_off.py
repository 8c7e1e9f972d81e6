"""A raid mode ends by itself on the real stack: `warden actioner` turns it on on the local Helix
server, and ``duration_s`` later turns off what it turned on (once), putting back what was set
before, with the result on moderation.actions.v1. A raid mode that failed gets its end skipped
(no Helix call); one in shadow mode gets no end at all."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer
from fakes.twitch import CLIENT_ID, TOKEN, FakeTwitch
from kit import Service, consume

from actioners import commands
from actioners.database import Database
from actioners.ledger import Ledger, State
from core.settings import Settings
from schemas.events import Platform, RaidEvent, utcnow
from schemas.topics import ACTIONS, RAIDS


def twitch_id() -> str:
    return str(random.randrange(10**8, 10**9))  # a Twitch user id


def raid(channel: str) -> RaidEvent:
    now = datetime.now(UTC)
    return RaidEvent(
        raid_id=f"twitch:{channel}:#streamer:{uuid.uuid4().hex[:12]}",
        platform=Platform.TWITCH,
        community=channel,
        channel="#streamer",
        started_at=now - timedelta(seconds=20),
        ended_at=now,
        size=25,
        messages=40,
        sample=["go kys streamer"],
        harmful=True,
        labels=["raid", "self_harm"],
        accounts=[f"u{i}" for i in range(25)],
        detected_at=now,
    )


async def test_raid_mode_is_turned_off_once_after_its_duration_restoring_what_was_there(
    db: Database,
    settings: Settings,
    producer: AIOKafkaProducer,
    service_factory: Callable[..., Service],
) -> None:
    live, refused, shadow = twitch_id(), twitch_id(), twitch_id()
    for channel in (live, refused, shadow):
        await commands.apply_preset(db, "twitch", channel, "livestream", author="test")
        changes = {"raid.duration_s": 2, "shadow": channel == shadow}
        await commands.set_policy(db, "twitch", channel, changes, author="test")
    fake = FakeTwitch()
    await fake.start()
    try:
        # A moderator's own slow mode, gentler than raid mode's: it comes back afterwards.
        fake.chat_settings(live).update({"slow_mode": True, "slow_mode_wait_time": 5})
        before = dict(fake.chat_settings(live))
        fake.forbidden_broadcasters.add(refused)  # 403: its raid mode fails
        actioner = service_factory(
            "actioner",
            WARDEN_ACTIONER__EXECUTOR="twitch",
            WARDEN_ACTIONER__POLICY_CACHE_S="0",
            WARDEN_ACTIONER__DUE_CHECK_S="0.5",
            WARDEN_PLATFORMS__TWITCH__API_TOKEN=TOKEN,
            WARDEN_PLATFORMS__TWITCH__CLIENT_ID=CLIENT_ID,
            WARDEN_PLATFORMS__TWITCH__API_BASE_URL=fake.base_url,
        )
        raids = {channel: raid(channel) for channel in (live, refused, shadow)}
        topic = RAIDS.name_for(settings.kafka.topic_suffix)
        for event in raids.values():
            await producer.send_and_wait(topic, event.to_json_bytes(), key=event.key.encode())
        actions = ACTIONS.name_for(settings.kafka.topic_suffix)
        first = await consume(settings, actions, count=3, services=[actioner], timeout_s=60)
        # The raid modes are done (or failed, or shadow); their ends are not due yet, and a
        # restart's recovery would leave them alone.
        assert {r["kind"] for r in first} == {"raid_mode"}, first
        ledger = Ledger(db)
        off = (await ledger.entries([raids[live].raid_id]))[1]
        assert off.waiting and off.request.reverses == f"{raids[live].raid_id}:raid_mode"
        recovered = await ledger.unfinished(off.source.topic, [off.source.partition])
        assert off.action_id not in {e.action_id for e in recovered}

        found = await consume(settings, actions, count=5, services=[actioner], timeout_s=60)
        by = {(r["community"], r["kind"]): r for r in found}
        on, done = by[(live, "raid_mode")], by[(live, "raid_mode_off")]
        assert (on["status"], done["status"]) == ("done", "done"), found
        assert done["action_id"] == f"{on['action_id']}:off"
        assert done["detail"] == "raid mode off: slow mode back to 5, followers-only off"
        # Not before its time: two seconds after the raid mode was decided.
        took = datetime.fromisoformat(done["completed_at"]) - datetime.fromisoformat(
            on["requested_at"]
        )
        assert took >= timedelta(seconds=2), took
        assert fake.chat_settings(live) == before
        assert fake.count("settings") == 2  # on, then off: each once
        # The refused raid mode turned nothing on: its end is skipped without asking Helix.
        assert by[(refused, "raid_mode")]["status"] == "failed"
        skipped = by[(refused, "raid_mode_off")]
        assert skipped["status"] == "skipped" and "was failed" in skipped["detail"]
        asked = [
            r.bucket for r in fake.requests if r.body["query"].get("broadcaster_id") == refused
        ]
        assert asked == ["settings-get"]  # the raid mode's own (refused) GET, nothing after
        assert by[(shadow, "raid_mode")]["status"] == "skipped"
        assert (shadow, "raid_mode_off") not in by

        # Nothing more comes (no end is run or published twice, the shadow one has none).
        again = await consume(settings, actions, count=6, services=[actioner], timeout_s=1.5)
        assert len(again) == 5 and fake.count("settings") == 2
        entries = await ledger.entries([raids[live].raid_id])
        assert [(e.request.kind.value, e.state) for e in entries] == [
            ("raid_mode", State.DONE),
            ("raid_mode_off", State.DONE),
        ]
        assert entries[1].due_at is not None and entries[1].due_at <= utcnow()
        assert [e.request.kind.value for e in await ledger.entries([raids[shadow].raid_id])] == [
            "raid_mode"
        ]
    finally:
        await fake.close()
