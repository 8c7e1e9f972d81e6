"""The Discord executor against the fake Discord REST API: actions, errors, rate limits."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest
import pytest_asyncio
from fakes.discord import TOKEN, FakeDiscord, Limit
from pydantic import SecretStr

from actioners.executors import RateLimited
from actioners.platforms.discord import DiscordExecutor, dm_reference
from core.errors import ConfigError, PermanentActionError, RetriableActionError
from core.settings import DiscordSettings
from schemas.events import ActionKind, ActionRequest, ActionStatus, Platform, RaidMode, Severity

REQUESTED = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def request(kind: str, message: str = "111", *, duration_s: int | None = None) -> ActionRequest:
    return ActionRequest(
        action_id=f"{message}:{kind}",
        message_id=message,
        platform=Platform.DISCORD,
        community="42",
        channel="7",
        user="555",
        kind=ActionKind(kind),
        duration_s=duration_s,
        reason="policy g@v1: HIGH; strikes 0 -> 2",
        severity=Severity.HIGH,
        p_toxic=0.9,
        model_version="m",
        policy_version="g@v1",
        sent_at=REQUESTED,
        requested_at=REQUESTED,
        notice="Please keep it civil.",
    )


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord(global_limit=None)
    await server.start()
    yield server
    await server.close()


@pytest_asyncio.fixture
async def discord(fake: FakeDiscord) -> AsyncIterator[DiscordExecutor]:
    executor = DiscordExecutor(
        DiscordSettings(token=SecretStr(TOKEN), api_base_url=fake.base_url, request_timeout_s=5)
    )
    await executor.start()
    yield executor
    await executor.close()


async def test_every_action_reaches_discord_with_auth_and_audit_reason(
    fake: FakeDiscord, discord: DiscordExecutor
) -> None:
    for kind, duration in [("delete", None), ("timeout", 600), ("warn", None), ("kick", None)]:
        outcome = await discord.execute(request(kind, duration_s=duration))
        assert outcome.status is ActionStatus.DONE, outcome
    outcome = await discord.execute(request("ban", "112"))
    assert outcome.status is ActionStatus.DONE
    until = (REQUESTED + timedelta(seconds=600)).isoformat()
    assert fake.effects == [
        ("delete", "111"),
        ("timeout", f"42:555:{until}"),
        ("dm", f"555:{fake.effects[2][1].split(':')[1]}"),
        ("kick", "42:555"),
        ("ban", "42:555"),
    ]
    dm = fake.dms["55577"][0]["content"]
    assert dm.startswith("Please keep it civil.") and dm_reference("111:warn") in dm
    assert "policy g@v1" in unquote(fake.bans[("42", "555")])


async def test_bad_token_fails_at_start_naming_the_variable(fake: FakeDiscord) -> None:
    executor = DiscordExecutor(
        DiscordSettings(token=SecretStr("wrong"), api_base_url=fake.base_url)
    )
    with pytest.raises(ConfigError, match="WARDEN_PLATFORMS__DISCORD__TOKEN"):
        await executor.start()
    with pytest.raises(ConfigError, match="WARDEN_PLATFORMS__DISCORD__TOKEN"):
        DiscordExecutor(DiscordSettings())


async def test_already_done_is_done_and_permanent_errors_are_permanent(
    fake: FakeDiscord, discord: DiscordExecutor
) -> None:
    fake.unknown_messages.add("404")
    gone = await discord.execute(request("delete", "404"))
    assert gone.status is ActionStatus.DONE and "Unknown Message" in gone.detail
    fake.absent_members.add(("42", "555"))
    left = await discord.execute(request("timeout", duration_s=60))
    assert left.status is ActionStatus.SKIPPED
    fake.closed_dms.add("555")
    closed = await discord.execute(request("warn"))
    assert closed.status is ActionStatus.SKIPPED and "50007" in closed.detail
    fake.forbidden_guilds.add("42")
    with pytest.raises(PermanentActionError, match="50013"):
        await discord.execute(request("ban"))
    assert fake.effects == []


async def test_server_errors_are_retriable(fake: FakeDiscord, discord: DiscordExecutor) -> None:
    fake.fail_next(1, status=503)
    with pytest.raises(RetriableActionError, match="503"):
        await discord.execute(request("delete"))
    assert (await discord.execute(request("delete"))).status is ActionStatus.DONE


async def test_a_429_storm_is_waited_out_the_way_discord_says(
    fake: FakeDiscord, discord: DiscordExecutor
) -> None:
    fake.storm(3, retry_after=0.2)
    began = time.monotonic()
    outcome = await discord.execute(request("delete"))
    assert outcome.status is ActionStatus.DONE
    assert time.monotonic() - began >= 0.55
    assert fake.rate_limited == 3 and fake.effects == [("delete", "111")]
    # A storm longer than discord.py's own tries reaches the dispatcher as RateLimited.
    fake.storm(6, retry_after=0.05, is_global=True)
    with pytest.raises(RateLimited) as info:
        await discord.execute(request("delete", "222"))
    assert info.value.retry_after == pytest.approx(1.0)  # Retry-After, whole seconds
    assert info.value.scope == "global"


async def test_route_buckets_are_respected_before_any_429() -> None:
    fake = FakeDiscord(limits={"message-delete": Limit(2, 0.4)}, global_limit=None)
    await fake.start()
    executor = DiscordExecutor(DiscordSettings(token=SecretStr(TOKEN), api_base_url=fake.base_url))
    await executor.start()
    try:
        began = time.monotonic()
        for i in range(6):
            await executor.execute(request("delete", f"m{i}"))
        # 2 per 0.4 s per channel: six deletes need three windows, and no 429 was needed.
        assert time.monotonic() - began >= 0.75
        assert fake.rate_limited == 0
        assert fake.count("message-delete", 204) == 6
    finally:
        await executor.close()
        await fake.close()


async def test_bulk_delete_takes_one_request(fake: FakeDiscord, discord: DiscordExecutor) -> None:
    requests = [request("delete", f"b{i}") for i in range(30)]
    outcome = await discord.bulk_delete(requests)
    assert outcome.status is ActionStatus.DONE
    assert fake.count("bulk-delete") == 1 and fake.count("message-delete") == 0
    assert sorted(target for _, target in fake.effects) == sorted(f"b{i}" for i in range(30))


async def test_reconcile_checks_before_repeating(
    fake: FakeDiscord, discord: DiscordExecutor
) -> None:
    await discord.execute(request("warn"))
    again = await discord.reconcile(request("warn"), REQUESTED)
    assert again.status is ActionStatus.DONE and "already sent" in again.detail
    assert fake.count("message-create") == 1

    # A kick whose user came back after it: not kicked twice.
    await discord.execute(request("kick"))
    fake.kicked.clear()
    fake.joined_at[("42", "555")] = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
    rejoined = await discord.reconcile(request("kick"), datetime.now(UTC))
    assert "rejoined" in rejoined.detail and fake.count("member-kick") == 1

    await discord.execute(request("ban"))
    banned = await discord.reconcile(request("ban"), REQUESTED)
    assert banned.detail == "already banned" and fake.count("ban") == 1

    # A delete or a timeout is finished by doing it: the platform makes it a no-op.
    await discord.execute(request("delete"))
    assert (await discord.reconcile(request("delete"), REQUESTED)).status is ActionStatus.DONE
    assert fake.effect_counts()[("delete", "111")] == 1


async def test_raid_mode_sets_slowmode_and_verification_never_lowering_them(
    fake: FakeDiscord, discord: DiscordExecutor
) -> None:
    raid = request("raid_mode").model_copy(
        update={"modes": [RaidMode.SLOW, RaidMode.VERIFICATION, RaidMode.FOLLOWERS]}
    )
    outcome = await discord.execute(raid)
    assert outcome.status is ActionStatus.DONE
    assert "slowmode 30 s" in outcome.detail and "verification level 0 -> 3" in outcome.detail
    assert "followers is Twitch's" in outcome.detail
    assert fake.effects == [("slowmode", "7:30"), ("verification", "42:3")]
    # Done again (a reconcile): both already on, nothing patched.
    again = await discord.reconcile(raid, REQUESTED)
    assert again.detail.startswith("raid mode already on")
    assert fake.count("channel-modify") == 1 and fake.count("guild-modify") == 1
    # A moderator's stricter setting stays.
    fake.slowmode["8"] = 120
    stricter = raid.model_copy(update={"channel": "8", "modes": [RaidMode.SLOW]})
    kept = await discord.execute(stricter)
    assert kept.detail == "raid mode already on; slowmode already 120 s"
    assert fake.slowmode["8"] == 120
    only_twitch = await discord.execute(raid.model_copy(update={"modes": [RaidMode.EMOTE_ONLY]}))
    assert only_twitch.status is ActionStatus.SKIPPED and "emote_only" in only_twitch.detail


async def test_raid_mode_off_puts_back_what_raid_mode_raised_and_nothing_else(
    fake: FakeDiscord, discord: DiscordExecutor
) -> None:
    # Discord's real 2 per 10 s would make discord.py wait out the window after the second.
    fake.limits["channel-modify"] = Limit(5, 10.0)
    fake.slowmode["7"] = 5
    fake.verification["42"] = 1
    raid = request("raid_mode").model_copy(update={"modes": [RaidMode.SLOW, RaidMode.VERIFICATION]})
    on = await discord.execute(raid)
    assert on.restore == {
        "slowmode": {"channel": "7", "before": 5, "set": 30},
        "verification": {"before": 1, "set": 3},
    }
    off = raid.model_copy(
        update={"kind": ActionKind.RAID_MODE_OFF, "reverses": raid.action_id, "restore": on.restore}
    )
    # A moderator raised the verification level further during the raid: it stays.
    fake.verification["42"] = 4
    done = await discord.execute(off)
    assert done.status is ActionStatus.DONE
    assert done.detail == (
        "raid mode off: slowmode back to 5 s; verification level changed since raid mode (4):"
        " left as it is"
    )
    assert fake.slowmode["7"] == 5 and fake.verification["42"] == 4
    # Again (a reconcile): nothing is patched twice.
    again = await discord.reconcile(off, REQUESTED)
    assert "slowmode already back to 5" in again.detail
    assert fake.count("channel-modify") == 2 and fake.count("guild-modify") == 1
    nothing = await discord.execute(off.model_copy(update={"restore": None}))
    assert nothing.status is ActionStatus.SKIPPED and "nothing to turn off" in nothing.detail


async def test_hold_calls_discord_for_nothing(fake: FakeDiscord, discord: DiscordExecutor) -> None:
    asked = len(fake.requests)
    for outcome in [
        await discord.execute(request("hold")),
        await discord.reconcile(request("hold"), REQUESTED),
    ]:
        assert outcome.status is ActionStatus.SKIPPED and outcome.detail == "held for review"
    assert len(fake.requests) == asked
