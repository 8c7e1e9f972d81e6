"""The Twitch executor against the local Helix server: mapping, errors, rate-limit arithmetic."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from fakes.twitch import CLIENT_ID, MODERATOR_ID, TOKEN, FakeTwitch, Limit
from pydantic import SecretStr

from actioners.executors import LogExecutor, RateLimited, Router
from actioners.platforms import build_executor
from actioners.platforms.twitch import (
    MAX_TIMEOUT_S,
    HelixBucket,
    TwitchExecutor,
    left_of_timeout,
    raid_settings,
)
from core.errors import ConfigError, PermanentActionError, RetriableActionError
from core.settings import Settings, TwitchSettings
from schemas.events import ActionKind, ActionRequest, ActionStatus, Platform, RaidMode, Severity

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
CHANNEL = "12826"  # the broadcaster's user id: the adapter's ``community`` (room-id)


def request(
    kind: str,
    message: str = "a1b2c3d4-0000-4000-8000-000000000001",
    *,
    user: str = "141981764",
    duration_s: int | None = None,
    modes: tuple[str, ...] = (),
    requested_at: datetime = NOW,
) -> ActionRequest:
    return ActionRequest(
        action_id=f"{message}:{kind}",
        message_id=message,
        platform=Platform.TWITCH,
        community=CHANNEL,
        channel="#twitchdev",
        user=user,
        kind=ActionKind(kind),
        duration_s=duration_s,
        reason="policy twitch:12826@v1: HIGH; strikes 0 -> 2",
        severity=Severity.HIGH,
        p_toxic=0.9,
        model_version="m",
        policy_version="p",
        sent_at=requested_at,
        requested_at=requested_at,
        notice="Please keep it civil.",
        modes=[RaidMode(m) for m in modes],
    )


def settings(fake: FakeTwitch, **extra: object) -> TwitchSettings:
    return TwitchSettings.model_validate(
        {
            "api_token": SecretStr(TOKEN),
            "client_id": CLIENT_ID,
            "api_base_url": fake.base_url,
            "request_timeout_s": 2,
            **extra,
        }
    )


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeTwitch]:
    server = FakeTwitch()
    await server.start()
    yield server
    await server.close()


@pytest_asyncio.fixture
async def twitch(fake: FakeTwitch) -> AsyncIterator[TwitchExecutor]:
    executor = TwitchExecutor(settings(fake))
    await executor.start()
    yield executor
    await executor.close()


# -- mapping -----------------------------------------------------------------------------------


async def test_each_action_is_the_helix_call_a_moderator_would_make(
    fake: FakeTwitch, twitch: TwitchExecutor
) -> None:
    assert twitch.moderator_id == MODERATOR_ID  # learnt from the token (GET /users)
    delete = await twitch.execute(request("delete"))
    timeout = await twitch.execute(request("timeout", user="1", duration_s=600))
    ban = await twitch.execute(request("ban", user="2"))
    warn = await twitch.execute(request("warn", user="3"))
    assert [o.status for o in (delete, timeout, ban, warn)] == [ActionStatus.DONE] * 4
    assert fake.effects == [
        ("delete", "a1b2c3d4-0000-4000-8000-000000000001"),
        ("timeout", f"{CHANNEL}:1:600"),
        ("ban", f"{CHANNEL}:2"),
        ("warn", f"{CHANNEL}:3"),
    ]
    # What went over the wire: ids in the query, the data envelope in the body.
    deleted = next(r for r in fake.requests if r.bucket == "chat-delete")
    assert deleted.method == "DELETE" and deleted.body["query"] == {
        "broadcaster_id": CHANNEL,
        "moderator_id": MODERATOR_ID,
        "message_id": "a1b2c3d4-0000-4000-8000-000000000001",
    }
    bans = [r.body["body"]["data"] for r in fake.requests if r.bucket == "ban"]
    assert bans[0] == {"user_id": "1", "duration": 600, "reason": request("ban").reason}
    assert "duration" not in bans[1]
    assert fake.warnings == [
        {"broadcaster_id": CHANNEL, "user_id": "3", "reason": "Please keep it civil."}
    ]
    assert fake.bans[(CHANNEL, "2")] is None


async def test_timeouts_are_capped_at_twitchs_maximum(
    fake: FakeTwitch, twitch: TwitchExecutor
) -> None:
    outcome = await twitch.execute(request("timeout", duration_s=30 * 86400))
    assert outcome.status is ActionStatus.DONE and "maximum" in outcome.detail
    assert fake.effects == [("timeout", f"{CHANNEL}:141981764:{MAX_TIMEOUT_S}")]


async def test_already_banned_is_done_and_nothing_is_done_twice(
    fake: FakeTwitch, twitch: TwitchExecutor
) -> None:
    assert (await twitch.execute(request("ban"))).detail == "banned"
    again = await twitch.execute(request("ban"))
    assert again.status is ActionStatus.DONE and again.detail == "already banned"
    timeout = await twitch.execute(request("timeout", duration_s=60))
    assert timeout.status is ActionStatus.DONE and "already banned" in timeout.detail
    assert fake.count("ban", 400) == 2
    assert fake.effect_counts() == {("ban", f"{CHANNEL}:141981764"): 1}


async def test_a_kick_is_a_short_timeout_that_never_shortens_a_longer_one(
    fake: FakeTwitch, twitch: TwitchExecutor
) -> None:
    kicked = await twitch.execute(request("kick", user="5"))
    assert kicked.status is ActionStatus.DONE and "no kick" in kicked.detail
    assert fake.effects == [("timeout", f"{CHANNEL}:5:1")]
    await twitch.execute(request("timeout", user="6", duration_s=3600))
    kept = await twitch.execute(request("kick", user="6"))
    assert kept.status is ActionStatus.DONE and "already timed out until" in kept.detail
    assert fake.count("ban") == 2  # the kick of user 6 asked Helix nothing but GET banned


async def test_raid_mode_patches_chat_settings_and_never_loosens_them(
    fake: FakeTwitch, twitch: TwitchExecutor
) -> None:
    fake.chat_settings(CHANNEL).update({"slow_mode": True, "slow_mode_wait_time": 60})
    raid = request("raid_mode", modes=("slow", "followers", "emote_only", "verification"))
    outcome = await twitch.execute(raid)
    assert outcome.status is ActionStatus.DONE
    assert "followers-only 10 min" in outcome.detail and "emote-only" in outcome.detail
    assert "slow mode already on (60 s)" in outcome.detail
    assert "verification is Discord's" in outcome.detail
    (patch,) = [r.body["body"] for r in fake.requests if r.bucket == "settings"]
    assert patch == {"follower_mode": True, "follower_mode_duration": 10, "emote_mode": True}
    assert fake.chat_settings(CHANNEL)["slow_mode_wait_time"] == 60
    # Again (a reconcile): everything is on, so nothing is patched.
    again = await twitch.reconcile(raid, NOW)
    assert again.status is ActionStatus.DONE and again.detail.startswith("raid mode already on")
    assert fake.count("settings") == 1
    only_discord = await twitch.execute(request("raid_mode", modes=("verification",)))
    assert only_discord.status is ActionStatus.SKIPPED and "Discord" in only_discord.detail


async def test_raid_mode_off_restores_what_was_there_and_keeps_a_moderators_change(
    fake: FakeTwitch, twitch: TwitchExecutor
) -> None:
    fake.chat_settings(CHANNEL).update({"slow_mode": True, "slow_mode_wait_time": 5})
    before = dict(fake.chat_settings(CHANNEL))
    raid = request("raid_mode", modes=("slow", "followers", "emote_only"))
    on = await twitch.execute(raid)
    assert on.status is ActionStatus.DONE and on.restore is not None
    assert on.restore["slow_mode"]["before"] == {"slow_mode": True, "slow_mode_wait_time": 5}

    def off(restore: dict[str, object] | None) -> ActionRequest:
        return raid.model_copy(
            update={
                "kind": ActionKind.RAID_MODE_OFF,
                "reverses": raid.action_id,
                "restore": restore,
            }
        )

    # A moderator turns emote-only off during the raid: raid mode leaves that alone.
    fake.chat_settings(CHANNEL)["emote_mode"] = False
    done = await twitch.execute(off(on.restore))
    assert done.status is ActionStatus.DONE
    assert "slow mode back to 5" in done.detail and "followers-only off" in done.detail
    assert "emote-only already as before" in done.detail
    assert fake.chat_settings(CHANNEL) == before
    patches = [r.body["body"] for r in fake.requests if r.bucket == "settings"]
    assert patches[-1] == {"slow_mode": True, "slow_mode_wait_time": 5, "follower_mode": False}
    # Again (a reconcile): everything is back, nothing is patched.
    again = await twitch.reconcile(off(on.restore), NOW)
    assert again.detail.startswith("raid mode: nothing to undo") and fake.count("settings") == 2
    # A moderator who tightened a mode after raid mode keeps it.
    on = await twitch.execute(raid)
    fake.chat_settings(CHANNEL)["slow_mode_wait_time"] = 120
    kept = await twitch.execute(off(on.restore))
    assert "slow mode changed since raid mode: left as it is" in kept.detail
    assert fake.chat_settings(CHANNEL)["slow_mode_wait_time"] == 120
    assert not fake.chat_settings(CHANNEL)["emote_mode"]
    nothing = await twitch.execute(off(None))
    assert nothing.status is ActionStatus.SKIPPED and "nothing to turn off" in nothing.detail


def test_raid_settings_arithmetic() -> None:
    config = TwitchSettings(raid_slow_s=20, raid_followers_minutes=30)
    patch, on, notes = raid_settings(
        [RaidMode.SLOW, RaidMode.FOLLOWERS, RaidMode.SLOW],
        {
            "slow_mode": True,
            "slow_mode_wait_time": 10,
            "follower_mode": True,
            "follower_mode_duration": 60,
        },
        config,
    )
    assert patch == {"slow_mode": True, "slow_mode_wait_time": 20}
    assert on == ["slow mode 20 s"] and notes == ["followers-only already on (60 min)"]


async def test_hold_calls_nothing_anywhere(fake: FakeTwitch, twitch: TwitchExecutor) -> None:
    asked = len(fake.requests)
    for outcome in [
        await twitch.execute(request("hold")),
        await twitch.reconcile(request("hold"), NOW),
        await Router({}, fallback=LogExecutor()).execute(request("hold")),
        await LogExecutor().execute(request("hold")),
    ]:
        assert outcome.status is ActionStatus.SKIPPED and outcome.detail == "held for review"
    assert len(fake.requests) == asked


# -- errors ------------------------------------------------------------------------------------


async def test_permanent_errors_carry_helixs_message_and_deletes_already_gone_are_done(
    fake: FakeTwitch, twitch: TwitchExecutor
) -> None:
    fake.unknown_messages.add("gone")
    gone = await twitch.execute(request("delete", "gone"))
    assert gone.status is ActionStatus.DONE and "already deleted" in gone.detail
    fake.forbidden_broadcasters.add(CHANNEL)
    with pytest.raises(PermanentActionError, match=r"403 The user in moderator_id is not") as info:
        await twitch.execute(request("ban"))
    assert "\n" not in str(info.value)
    assert fake.effects == []


async def test_server_errors_and_time_outs_are_retriable(fake: FakeTwitch) -> None:
    executor = TwitchExecutor(settings(fake, request_timeout_s=0.3))
    await executor.start()
    try:
        fake.fail_next(1, status=503)
        with pytest.raises(RetriableActionError, match="503"):
            await executor.execute(request("delete"))
        fake.latency_s = 1.0
        with pytest.raises(RetriableActionError, match="Timeout"):
            await executor.execute(request("delete", "m2"))
        fake.latency_s = 0.0
        assert (await executor.execute(request("delete", "m3"))).status is ActionStatus.DONE
    finally:
        await executor.close()


async def test_a_warning_is_repeated_only_when_helix_said_it_was_not_given(
    fake: FakeTwitch, twitch: TwitchExecutor
) -> None:
    fake.fail_next(1, status=503)
    with pytest.raises(RetriableActionError):
        await twitch.execute(request("warn"))
    retried = await twitch.reconcile(request("warn"), NOW)
    assert retried.status is ActionStatus.DONE
    # In flight at a restart (a new executor knows nothing): not given again.
    restarted = TwitchExecutor(settings(fake))
    await restarted.start()
    try:
        skipped = await restarted.reconcile(request("warn"), NOW)
    finally:
        await restarted.close()
    assert skipped.status is ActionStatus.SKIPPED and "not repeated" in skipped.detail
    assert fake.effect_counts() == {("warn", f"{CHANNEL}:141981764"): 1}


async def test_an_interrupted_timeout_is_finished_never_lengthened(
    fake: FakeTwitch, twitch: TwitchExecutor
) -> None:
    # It reached Twitch before the restart: found, not repeated.
    started = datetime.now(UTC)
    await twitch.execute(request("timeout", user="7", duration_s=600))
    found = await twitch.reconcile(request("timeout", user="7", duration_s=600), started)
    assert found.status is ActionStatus.DONE and "already timed out" in found.detail
    # It did not: timed out for what is left of it, or not at all once its time is over.
    started = datetime.now(UTC) - timedelta(seconds=500)
    rest = await twitch.reconcile(request("timeout", user="8", duration_s=600), started)
    assert rest.status is ActionStatus.DONE
    assert fake.effects[-1][1].rsplit(":", 1)[1] in {"100", "101"}
    over = datetime.now(UTC) - timedelta(seconds=700)
    late = await twitch.reconcile(request("timeout", user="9", duration_s=600), over)
    assert late.status is ActionStatus.SKIPPED
    assert [k for k, _ in fake.effects] == ["timeout", "timeout"]


def test_time_left_of_a_timeout() -> None:
    timeout = request("timeout", duration_s=600)
    assert left_of_timeout(timeout, NOW, NOW + timedelta(seconds=100.5)) == 500
    assert left_of_timeout(timeout, None, NOW + timedelta(seconds=601)) == 0


# -- rate limits -------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_bucket_follows_helixs_headers() -> None:
    clock = Clock(1000.0)
    bucket = HelixBucket(clock)
    assert bucket.reserve() == 0.0  # nothing known yet: go
    bucket.update({"Ratelimit-Limit": "800", "Ratelimit-Remaining": "2", "Ratelimit-Reset": "1030"})
    assert bucket.reserve() == 0.0 and bucket.reserve() == 0.0
    assert bucket.reserve() == pytest.approx(30.0)  # empty: wait for the reset
    clock.now = 1030.0
    assert bucket.reserve() == 0.0 and bucket.remaining == 799  # refilled at the reset
    bucket.empty(1045.0)  # a 429
    clock.now = 1040.0
    assert bucket.reserve() == pytest.approx(5.0) and bucket.wait_s() == pytest.approx(5.0)
    bucket.empty(None)
    assert bucket.reserve() == pytest.approx(1.0)


async def test_an_empty_bucket_is_waited_out_until_its_reset(fake: FakeTwitch) -> None:
    small = FakeTwitch(limit=Limit(3, 1.0))
    await small.start()
    executor = TwitchExecutor(settings(small))
    await executor.start()
    try:
        for i in range(6):
            await executor.execute(request("delete", f"m{i}"))
        assert small.rate_limited == 0  # waited on the headers, never needed a 429
        assert small.count("chat-delete", 204) == 6
    finally:
        await executor.close()
        await small.close()


async def test_a_429_is_honoured_until_ratelimit_reset(
    fake: FakeTwitch, twitch: TwitchExecutor
) -> None:
    reset = fake.exhaust(0.5)
    with pytest.raises(RateLimited) as info:
        await twitch.execute(request("delete"))
    (limited,) = [r for r in fake.requests if r.status == 429]
    assert 0 < info.value.retry_after <= reset - limited.at + 0.01
    # Tried again at once (as if the dispatcher woke early): the bucket holds it until then.
    outcome = await twitch.execute(request("delete"))
    assert outcome.status is ActionStatus.DONE
    (done,) = [r for r in fake.requests if r.bucket == "chat-delete" and r.status == 204]
    assert done.at >= reset, "a call went out before Ratelimit-Reset"
    assert fake.rate_limited == 1 and fake.effects == [("delete", request("delete").message_id)]


async def test_bad_credentials_fail_at_start_naming_the_variable(fake: FakeTwitch) -> None:
    with pytest.raises(ConfigError, match="WARDEN_PLATFORMS__TWITCH__API_TOKEN: needed"):
        TwitchExecutor(TwitchSettings(client_id="x"))
    with pytest.raises(ConfigError, match="WARDEN_PLATFORMS__TWITCH__CLIENT_ID"):
        TwitchExecutor(TwitchSettings(api_token=SecretStr("x")))
    wrong = TwitchExecutor(settings(fake, api_token=SecretStr("wrong-secret-123")))
    with pytest.raises(ConfigError, match="API_TOKEN: Twitch refused it") as info:
        await wrong.start()
    assert "wrong-secret-123" not in str(info.value)
    other_app = TwitchExecutor(settings(fake, client_id="other"))
    with pytest.raises(ConfigError, match="CLIENT_ID: Twitch refused it"):
        await other_app.start()
    not_the_token_user = TwitchExecutor(settings(fake, moderator_id="1"))
    with pytest.raises(ConfigError, match="MODERATOR_ID: must be the token's user id"):
        await not_the_token_user.start()


def test_the_twitch_executor_is_chosen_by_settings() -> None:
    twitch = {"api_token": "helix-secret-42", "client_id": "c"}
    chosen = build_executor(
        Settings.model_validate(
            {"actioner": {"executor": "twitch"}, "platforms": {"twitch": twitch}}
        )
    )
    assert chosen.name == "twitch" and Platform.TWITCH in chosen.executors
    routed = build_executor(
        Settings.model_validate(
            {"actioner": {"executor": "platform"}, "platforms": {"twitch": twitch}}
        )
    )
    assert isinstance(routed.executors[Platform.TWITCH], TwitchExecutor)
    assert "helix-secret-42" not in repr(Settings.model_validate({"platforms": {"twitch": twitch}}))
    with pytest.raises(ConfigError, match="WARDEN_PLATFORMS__TWITCH__API_TOKEN"):
        build_executor(Settings.model_validate({"actioner": {"executor": "twitch"}}))


async def test_an_expired_user_token_is_refreshed_once_and_the_action_made(
    fake: FakeTwitch, caplog: pytest.LogCaptureFixture
) -> None:
    refreshing = TwitchExecutor(
        settings(
            fake,
            refresh_token=SecretStr("fake-refresh-token"),
            client_secret=SecretStr("fake-client-secret"),
            auth_url=fake.auth_url,
            validate_every_s=0.05,
        )
    )
    plain = TwitchExecutor(settings(fake))
    await refreshing.start()
    await plain.start()
    try:
        fake.expire_token()
        # Three actions in flight at once meet the 401: one refresh, all three done.
        outcomes = await asyncio.gather(
            refreshing.execute(request("delete", "m-1")),
            *(refreshing.execute(request("timeout", user=str(k), duration_s=60)) for k in (1, 2)),
        )
        assert [o.status for o in outcomes] == [ActionStatus.DONE] * 3
        assert fake.refreshes == 1 and fake.count("oauth-token", 200) == 1
        # Without a refresh token an expired token is a permanent failure naming the variable.
        with pytest.raises(PermanentActionError, match="401 Invalid OAuth token"):
            await plain.execute(request("delete", "m-9"))
        # The hourly validation (here every 50 ms) refreshes a token about to expire.
        fake.expires_in = 300
        await asyncio.sleep(0.3)
        assert fake.refreshes == 2 and fake.count("oauth-validate") >= 1
        # A revoked refresh token: one clear line naming it, no secret in it or in the log.
        fake.refresh_token = "revoked"
        fake.expire_token()
        refreshing.refresh_gap_s = 0  # past the guard of one refresh a minute on a 401
        with pytest.raises(PermanentActionError, match="REFRESH_TOKEN: Twitch refused") as info:
            await refreshing.execute(request("delete", "m-10"))
        assert "fake-refresh" not in str(info.value) and "fake-refresh" not in caplog.text
        assert "fake-client-secret" not in caplog.text
    finally:
        await refreshing.close()
        await plain.close()
