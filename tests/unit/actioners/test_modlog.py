"""The Discord and Slack sides of disputes against the fake platforms: the warning's Dispute
button, the mod-log posts, and `warden bots sync-discord`'s registration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest_asyncio
from click.testing import CliRunner
from fakes.discord import TOKEN, FakeDiscord
from fakes.slack import BOT_TOKEN, FakeSlack
from pydantic import SecretStr

from actioners.bots.cli import bots, register
from actioners.bots.discord import command_definitions, dispute_button_target
from actioners.executors import LogExecutor, Router
from actioners.ledger import Entry, Source, State
from actioners.modlog import ModLog
from actioners.platforms.discord import DiscordExecutor
from actioners.platforms.slack import DISPUTE_ACTION, SlackExecutor
from core.settings import BotSettings, DiscordSettings, ReviewSettings, Settings, SlackSettings
from schemas.events import ActionKind, ActionRequest, Platform, Severity

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def request(
    platform: str, message: str, kind: str = "warn", community: str = "42"
) -> ActionRequest:
    return ActionRequest(
        action_id=f"{message}:{kind}",
        message_id=message,
        platform=Platform(platform),
        community=community,
        channel="C7" if platform == "slack" else "7",
        user="555",
        kind=ActionKind(kind),
        reason="policy: HIGH insult",
        severity=Severity.HIGH,
        p_toxic=0.91,
        model_version="m",
        policy_version="g@v1",
        sent_at=NOW,
        requested_at=NOW,
        notice="Please keep it civil.",
    )


@pytest_asyncio.fixture
async def discord() -> AsyncIterator[tuple[FakeDiscord, DiscordExecutor]]:
    fake = FakeDiscord(global_limit=None)
    await fake.start()
    executor = DiscordExecutor(
        DiscordSettings(token=SecretStr(TOKEN), api_base_url=fake.base_url, request_timeout_s=5)
    )
    await executor.start()
    yield fake, executor
    await executor.close()
    await fake.close()


@pytest_asyncio.fixture
async def slack() -> AsyncIterator[tuple[FakeSlack, SlackExecutor]]:
    fake = FakeSlack()
    await fake.start()
    executor = SlackExecutor(
        SlackSettings(bot_token=SecretStr(BOT_TOKEN), api_base_url=fake.base_url)
    )
    await executor.start()
    yield fake, executor
    await executor.close()
    await fake.close()


async def test_warnings_carry_a_dispute_button(
    discord: tuple[FakeDiscord, DiscordExecutor], slack: tuple[FakeSlack, SlackExecutor]
) -> None:
    fake_discord, discord_executor = discord
    await discord_executor.execute(request("discord", "111"))
    [dm] = fake_discord.dms["55577"]
    button = dm["components"][0]["components"][0]
    assert button["label"] == "Dispute" and dispute_button_target(button["custom_id"]) == (
        "42",
        "111",
    )
    fake_slack, slack_executor = slack
    await slack_executor.execute(request("slack", "C7:1700000000.000100"))
    [blocks] = fake_slack.ephemeral_blocks
    element = blocks[1]["elements"][0]
    assert (element["action_id"], element["value"]) == (DISPUTE_ACTION, "C7:1700000000.000100")


async def test_the_mod_log_posts_one_linked_line_per_action_where_configured(
    discord: tuple[FakeDiscord, DiscordExecutor], slack: tuple[FakeSlack, SlackExecutor]
) -> None:
    fake_discord, discord_executor = discord
    fake_slack, slack_executor = slack
    settings = Settings(
        review=ReviewSettings(public_url="https://review.example"),
        bots=BotSettings(modlog_channels={"discord:42": "900", "slack:T0001": "CMODS"}),
    )
    router = Router(
        {Platform.DISCORD: discord_executor, Platform.SLACK: slack_executor}, fallback=LogExecutor()
    )
    modlog = ModLog(settings, router)
    entries = [
        Entry(request("discord", str(300 + i), "delete"), State.DONE, Source("t", 0, i))
        for i in range(30)
    ]
    entries.append(Entry(request("discord", "400"), State.SKIPPED, Source("t", 0, 99)))
    entries.append(Entry(request("discord", "401", community="43"), State.DONE, Source("t", 0, 9)))
    entries.append(
        Entry(request("slack", "C7:17.1", "kick", "T0001"), State.FAILED, Source("t", 0, 7), "x")
    )
    entries.append(Entry(request("twitch", "tw", "delete", "T0001"), State.DONE, Source("t", 0, 8)))
    modlog.post(entries)
    await modlog.wait()
    posts = fake_discord.dms["900"]
    lines = [line for post in posts for line in post["content"].split("\n")]
    # Thirty lines in two posts (Discord's 2000 characters), none for the skipped one or for
    # a community without a mod-log channel.
    assert len(posts) == 2 and len(lines) == 30
    assert lines[0] == (
        "delete: user 555 in 7 (HIGH policy: HIGH insult, p=0.91) done: "
        "https://review.example/messages/300"
    )
    assert all(p["channel_id"] == "900" for p in posts)
    assert [p["channel"] for p in fake_slack.posted] == ["CMODS"]
    assert fake_slack.posted[0]["text"].startswith("kick: user 555 in C7")
    assert "failed (x)" in fake_slack.posted[0]["text"]
    assert fake_slack.posted[0]["text"].endswith("/messages/C7%3A17.1")
    assert ModLog(Settings(), router).enabled is False


async def test_sync_discord_registers_the_commands_the_fake_accepts(
    discord: tuple[FakeDiscord, DiscordExecutor],
) -> None:
    fake, _ = discord
    commands = command_definitions()
    registered = await register(fake.base_url, TOKEN, "4242", None, commands)
    assert [c["name"] for c in registered] == [c["name"] for c in commands]
    await register(fake.base_url, TOKEN, "4242", "42", commands[:1])
    assert [c["name"] for c in fake.commands[("4242", "42")]] == ["dispute"]
    assert len(fake.commands[("4242", "")]) == len(commands)


def test_sync_discord_prints_the_json_and_names_missing_settings() -> None:
    runner = CliRunner()
    printed = runner.invoke(bots, ["sync-discord", "--print"], obj=Settings())
    assert printed.exit_code == 0 and '"name": "dispute"' in printed.output
    missing = runner.invoke(bots, ["sync-discord"], obj=Settings())
    assert missing.exit_code != 0
    assert "WARDEN_BOTS__DISCORD_APPLICATION_ID" in str(missing.exception)
