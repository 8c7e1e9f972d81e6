"""The Slack and webhook executors against fake servers; choosing the executor from settings."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from fakes.slack import BOT_TOKEN, FakeSlack
from fakes.webhook import SECRET, FakeWebhook
from pydantic import SecretStr

from actioners.executors import LogExecutor, RateLimited
from actioners.platforms import build_executor
from actioners.platforms.discord import DiscordExecutor
from actioners.platforms.slack import SlackExecutor, TierLimiter
from actioners.platforms.webhook import WebhookExecutor
from core.errors import ConfigError, PermanentActionError, RetriableActionError
from core.settings import Settings, SlackSettings, WebhookSettings
from core.signing import verify_webhook_signature, webhook_signature
from schemas.events import ActionKind, ActionRequest, ActionStatus, Platform, Severity

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def request(
    kind: str, message: str = "C1:1700000000.000100", platform: str = "slack"
) -> ActionRequest:
    return ActionRequest(
        action_id=f"{message}:{kind}",
        message_id=message,
        platform=Platform(platform),
        community="T0001",
        channel="C1",
        user="U1",
        kind=ActionKind(kind),
        reason="policy: MEDIUM",
        severity=Severity.MEDIUM,
        p_toxic=0.6,
        model_version="m",
        policy_version="p",
        sent_at=NOW,
        requested_at=NOW,
        notice="Please keep it civil.",
    )


@pytest_asyncio.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    server = FakeSlack(admin_token="xoxp-admin")
    await server.start()
    yield server
    await server.close()


async def slack_executor(fake: FakeSlack, **extra: SecretStr) -> SlackExecutor:
    executor = SlackExecutor(
        SlackSettings(bot_token=SecretStr(BOT_TOKEN), api_base_url=fake.base_url, **extra)
    )
    await executor.start()
    return executor


async def test_slack_actions_and_what_slack_has_no_equivalent_for(fake_slack: FakeSlack) -> None:
    slack = await slack_executor(fake_slack)
    try:
        assert (await slack.execute(request("delete"))).status is ActionStatus.DONE
        # The message id is "<channel>:<ts>"; Slack is asked for the ts.
        assert fake_slack.deleted == {("C1", "1700000000.000100")}
        again = await slack.execute(request("delete"))
        assert again.status is ActionStatus.DONE and again.detail == "already deleted"
        assert (await slack.execute(request("warn"))).status is ActionStatus.DONE
        assert fake_slack.ephemeral == [
            {"channel": "C1", "user": "U1", "text": "Please keep it civil."}
        ]
        timeout = await slack.execute(request("timeout"))
        assert timeout.status is ActionStatus.SKIPPED and "no timeout" in timeout.detail
        assert (await slack.execute(request("kick"))).detail == "removed from the channel"
        ban = await slack.execute(request("ban"))
        assert ban.status is ActionStatus.DONE and "cannot ban" in ban.detail
        # An ephemeral warning in flight at a restart is never sent twice.
        redo = await slack.reconcile(request("warn"), NOW)
        assert redo.status is ActionStatus.SKIPPED and len(fake_slack.ephemeral) == 1
    finally:
        await slack.close()
    assert fake_slack.effect_counts() == {
        ("delete", "C1:1700000000.000100"): 1,
        ("ephemeral", "C1:U1"): 1,
        ("kick", "C1:U1"): 1,
    }


async def test_slack_deletes_with_the_admin_token_when_set(fake_slack: FakeSlack) -> None:
    fake_slack.bot_only_delete = True
    bot_only = await slack_executor(fake_slack)
    try:
        with pytest.raises(PermanentActionError, match="cant_delete_message"):
            await bot_only.execute(request("delete"))
    finally:
        await bot_only.close()
    admin = await slack_executor(fake_slack, admin_token=SecretStr("xoxp-admin"))
    try:
        assert (await admin.execute(request("delete"))).status is ActionStatus.DONE
    finally:
        await admin.close()


async def test_slack_429_and_errors(fake_slack: FakeSlack) -> None:
    slack = await slack_executor(fake_slack)
    try:
        fake_slack.storm(1, retry_after=3)
        with pytest.raises(RateLimited) as info:
            await slack.execute(request("delete"))
        assert info.value.retry_after == 3.0
        # The method is held back for the whole workspace meanwhile.
        assert slack.limiter("T0001", "chat.delete").reserve() > 2.5
        fake_slack.errors["conversations.kick"] = "internal_error"
        with pytest.raises(RetriableActionError):
            await slack.execute(request("kick"))
        fake_slack.errors["conversations.kick"] = "restricted_action"
        with pytest.raises(PermanentActionError, match="restricted_action"):
            await slack.execute(request("kick"))
    finally:
        await slack.close()
    bad = SlackExecutor(
        SlackSettings(bot_token=SecretStr("xoxb-wrong"), api_base_url=fake_slack.base_url)
    )
    with pytest.raises(ConfigError, match="BOT_TOKEN"):
        await bad.start()
    await bad.close()


def test_tier_limiter_allows_a_burst_then_the_tier_rate() -> None:
    now = [0.0]
    limiter = TierLimiter(50, clock=lambda: now[0])  # Tier 3: 50 a minute, bursts of 10
    waits = [limiter.reserve() for _ in range(12)]
    assert waits[:10] == [0.0] * 10
    assert waits[10] == pytest.approx(1.2) and waits[11] == pytest.approx(2.4)
    now[0] = 60.0
    assert limiter.reserve() == 0.0
    limiter.block(5)
    assert limiter.reserve() == pytest.approx(5.0)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[FakeWebhook]:
    hook = FakeWebhook()
    await hook.start()
    yield hook
    await hook.close()


async def test_webhook_posts_signed_idempotent_actions(receiver: FakeWebhook) -> None:
    webhook = WebhookExecutor(WebhookSettings(url=receiver.url, secret=SecretStr(SECRET)))
    await webhook.start()
    try:
        warn = request("warn", platform="twitch")
        assert (await webhook.execute(warn)).status is ActionStatus.DONE
        again = await webhook.reconcile(warn, NOW)
        assert again.status is ActionStatus.DONE and "409" in again.detail
        receiver.script = [429]
        with pytest.raises(RateLimited) as info:
            await webhook.execute(request("delete"))
        assert info.value.retry_after == pytest.approx(0.2)
        receiver.script = [502]
        with pytest.raises(RetriableActionError):
            await webhook.execute(request("delete"))
        receiver.script = [422]
        with pytest.raises(PermanentActionError, match="422"):
            await webhook.execute(request("delete"))
    finally:
        await webhook.close()
    assert all(d.valid_signature for d in receiver.deliveries)
    first = receiver.deliveries[0]
    assert first.headers["Idempotency-Key"] == "C1:1700000000.000100:warn"
    assert json.loads(first.body)["kind"] == "warn"
    assert list(receiver.acted) == ["C1:1700000000.000100:warn"]


def test_webhook_signatures() -> None:
    body = b'{"a": 1}'
    signature = webhook_signature(b"k", "1700000000", body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify_webhook_signature(b"k", "1700000000", body, signature, now=1700000100)
    assert not verify_webhook_signature(b"k", "1700000000", body + b" ", signature, now=1700000100)
    assert not verify_webhook_signature(b"other", "1700000000", body, signature, now=1700000100)
    # Replayed late:
    assert not verify_webhook_signature(b"k", "1700000000", body, signature, now=1700009999)
    with pytest.raises(ConfigError, match="SECRET"):
        WebhookExecutor(WebhookSettings(url="http://x"))


def test_the_executor_setting_picks_the_executors() -> None:
    default = build_executor(Settings())
    assert isinstance(default.fallback, LogExecutor) and not default.executors
    discord = build_executor(
        Settings.model_validate(
            {"actioner": {"executor": "discord"}, "platforms": {"discord": {"token": "t"}}}
        )
    )
    assert isinstance(discord.executors[Platform.DISCORD], DiscordExecutor)
    assert discord.fallback is None
    routed = build_executor(
        Settings.model_validate(
            {
                "actioner": {"executor": "platform"},
                "platforms": {
                    "slack": {"bot_token": "xoxb"},
                    "webhook": {"url": "http://hook", "secret": "s"},
                },
            }
        )
    )
    assert set(routed.executors) == {Platform.SLACK}
    assert isinstance(routed.fallback, WebhookExecutor)
    with pytest.raises(ConfigError, match="DISCORD__TOKEN"):
        build_executor(Settings.model_validate({"actioner": {"executor": "discord"}}))


async def test_a_router_skips_platforms_it_has_no_executor_for() -> None:
    router = build_executor(
        Settings.model_validate(
            {"actioner": {"executor": "discord"}, "platforms": {"discord": {"token": "t"}}}
        )
    )
    outcome = await router.execute(request("delete", platform="twitch"))
    assert outcome.status is ActionStatus.SKIPPED and "twitch" in outcome.detail


async def test_hold_and_raid_mode_on_slack_and_the_webhook(
    fake_slack: FakeSlack, receiver: FakeWebhook
) -> None:
    slack = await slack_executor(fake_slack)
    webhook = WebhookExecutor(WebhookSettings(url=receiver.url, secret=SecretStr(SECRET)))
    await webhook.start()
    try:
        asked = len(fake_slack.requests)
        for executor in (slack, webhook):
            held = await executor.execute(request("hold"))
            assert held.status is ActionStatus.SKIPPED and held.detail == "held for review"
            again = await executor.reconcile(request("hold"), NOW)
            assert again.detail == "held for review"
        raid = await slack.execute(request("raid_mode"))
        assert raid.status is ActionStatus.SKIPPED and "Slack has no raid mode" in raid.detail
        # Nothing reached Slack, and the webhook was sent nothing for a hold.
        assert len(fake_slack.requests) == asked and receiver.deliveries == []
    finally:
        await webhook.close()
        await slack.close()
