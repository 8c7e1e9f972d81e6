"""The bot endpoints without a database: signature checks against published vectors, command
parsing, refusals of non-moderators, and the dispute button path onto a recording sink."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fakes.slack import BOT_TOKEN, FakeSlack
from fastapi import FastAPI
from pydantic import SecretStr
from slack_sdk.signature import Clock, SignatureVerifier

from actioners.bots import discord_router, slack_router
from actioners.bots.discord import (
    MODERATE_MEMBERS,
    command_definitions,
    command_options,
    dispute_button_target,
    verify_signature,
)
from actioners.bots.moderation import BadArgument, discord_message, slack_message
from actioners.bots.slack import mentioned_user, split_command
from actioners.ledger import Entry, Source, State
from actioners.modlog import chunks, line
from actioners.platforms.discord import dispute_components
from actioners.platforms.slack import DISPUTE_ACTION, warning_blocks
from core.errors import ConfigError
from core.settings import BotSettings, PlatformSettings, Settings, SlackSettings
from devkit.platforms.discord import command, interaction, sign_interaction
from devkit.platforms.slack import block_action, sign_request, slash_command
from schemas.events import ActionKind, ActionRequest, Feedback, Platform, Severity

# RFC 8032, section 7.1, tests 1 and 2 (the empty message, and the one byte 0x72).
RFC8032 = [
    (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        b"",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065"
        "224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        b"\x72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
]
# Slack's worked example (api.slack.com/authentication/verifying-requests-from-slack).
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TIMESTAMP = "1531420618"
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
    b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
    b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


@pytest.mark.parametrize(("key", "message", "signature"), RFC8032)
def test_ed25519_known_answers(key: str, message: bytes, signature: str) -> None:
    # The endpoint verifies timestamp + body: split the message anywhere, the bytes are one.
    assert verify_signature(key, signature, "", message)
    assert verify_signature(key, signature, message.decode(), b"")
    tampered = signature[:-2] + ("00" if signature[-2:] != "00" else "01")
    assert not verify_signature(key, tampered, "", message)
    assert not verify_signature(key, signature, "", message + b"x")
    assert not verify_signature(key, "not hex", "", message)
    assert not verify_signature("00" * 31, signature, "", message)


def test_slack_v0_known_answer_signed_by_the_fake_and_checked_by_bolts_verifier() -> None:
    headers = sign_request(SLACK_SECRET, SLACK_BODY, SLACK_TIMESTAMP)
    assert headers["X-Slack-Signature"] == SLACK_SIGNATURE
    verifier = SignatureVerifier(SLACK_SECRET, clock=_Clock(int(SLACK_TIMESTAMP) + 10))
    assert verifier.is_valid(SLACK_BODY, SLACK_TIMESTAMP, SLACK_SIGNATURE)
    assert not verifier.is_valid(SLACK_BODY + b"x", SLACK_TIMESTAMP, SLACK_SIGNATURE)


class _Clock(Clock):
    """Slack's example is from 2018: verify it at its own time."""

    def __init__(self, now: int) -> None:
        self._now = now

    def now(self) -> float:
        return float(self._now)


def test_message_links_and_ids() -> None:
    assert discord_message("https://discord.com/channels/11/22/33") == ("11", "33")
    assert discord_message("<https://ptb.discord.com/channels/@me/22/33>") == (None, "33")
    assert discord_message(" 12345 ") == (None, "12345")
    with pytest.raises(BadArgument):
        discord_message("https://evil.example/channels/1/2/3")
    assert slack_message("https://acme.slack.com/archives/C0123/p1712345678000100") == (
        "C0123:1712345678.000100"
    )
    assert slack_message("<https://acme.slack.com/archives/C9/p1712345678123456|link>") == (
        "C9:1712345678.123456"
    )
    assert slack_message("C1:1700000000.000100") == "C1:1700000000.000100"
    with pytest.raises(BadArgument):
        slack_message("two words")
    assert mentioned_user("<@U123ABC|alice>") == "U123ABC"
    assert mentioned_user("W42") == "W42"
    with pytest.raises(BadArgument):
        mentioned_user("@alice")
    assert split_command("  Strikes <@U1>  ") == ("strikes", ["<@U1>"])
    assert split_command("") == ("help", [])


def test_discord_command_options_and_the_dispute_button() -> None:
    assert command_options(command("policy", "preset", name="strict")) == (
        "policy preset",
        {"name": "strict"},
    )
    assert command_options(command("strikes", user="42")) == ("strikes", {"user": "42"})
    custom_id = dispute_components(_request("discord", "999"))[0]["components"][0]["custom_id"]
    assert dispute_button_target(custom_id) == ("5000", "999")
    assert dispute_button_target("someone:else:1:2") is None
    assert dispute_button_target("warden:dispute:x:2") is None


def test_commands_are_registered_with_moderator_permissions() -> None:
    defined = {c["name"]: c for c in command_definitions()}
    moderators = ("strikes", "pardon", "explain", "policy", "shadow", "stats", "leaderboard")
    assert set(defined) == {"dispute", "privacy", *moderators}
    # Everyone's own: a dispute, and their data (/privacy forget|opt-out|opt-in).
    assert defined["dispute"]["default_member_permissions"] is None
    assert defined["privacy"]["default_member_permissions"] is None
    assert defined["privacy"]["dm_permission"] is False
    for name in moderators:
        assert int(defined[name]["default_member_permissions"]) == MODERATE_MEMBERS
        assert defined[name]["dm_permission"] is False
    assert [o["type"] for o in defined["pardon"]["options"]] == [6, 3]
    assert {o["name"] for o in defined["policy"]["options"]} == {"show", "preset"}


def test_the_slack_warning_carries_a_dispute_button() -> None:
    blocks = warning_blocks(_request("slack", "C1:1700000000.000100"))
    button = blocks[1]["elements"][0]
    assert button["action_id"] == DISPUTE_ACTION and button["value"] == "C1:1700000000.000100"


def test_mod_log_lines_link_the_review_page_and_fit_the_platform() -> None:
    entry = Entry(_request("slack", "C1:17.5"), State.DONE, Source("t", 0, 1))
    text = line(entry, "https://review.example/")
    assert text.startswith("timeout 600s: user 42 in 777 (MEDIUM")
    assert text.endswith("done: https://review.example/messages/C1%3A17.5")
    packed = chunks([text] * 30, 1900)
    assert all(len(p) <= 1900 for p in packed) and sum(p.count("\n") + 1 for p in packed) == 30


def _request(platform: str, message: str) -> ActionRequest:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    return ActionRequest(
        action_id=f"{message}:timeout",
        message_id=message,
        platform=Platform(platform),
        community="5000",
        channel="777",
        user="42",
        kind=ActionKind.TIMEOUT,
        duration_s=600,
        reason="policy: insult",
        severity=Severity.MEDIUM,
        p_toxic=0.8,
        model_version="m",
        policy_version="p",
        sent_at=now,
        requested_at=now,
    )


class Recorded:
    """A feedback sink that keeps what it is given."""

    def __init__(self) -> None:
        self.sent: list[Feedback] = []

    async def send(self, feedback: Feedback) -> None:
        self.sent.append(feedback)


KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


@pytest_asyncio.fixture
async def discord_app() -> AsyncIterator[tuple[httpx.AsyncClient, Recorded]]:
    sink = Recorded()
    settings = Settings(bots=BotSettings(discord_public_key=PUBLIC, dispute_limit=2))
    app = FastAPI()
    # No database: everything these tests reach is answered before one is needed.
    app.include_router(discord_router(None, sink, settings))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bots") as client:
        yield client, sink


async def _post(client: httpx.AsyncClient, payload: dict[str, Any], **kw: Any) -> httpx.Response:
    import json

    body = json.dumps(payload).encode()
    headers = sign_interaction(KEY, body, **kw)
    return await client.post("/bots/discord/interactions", content=body, headers=headers)


async def test_discord_ping_signatures_and_staleness(
    discord_app: tuple[httpx.AsyncClient, Recorded],
) -> None:
    client, _ = discord_app
    reply = await _post(client, interaction(1))
    assert reply.status_code == 200 and reply.json() == {"type": 1}
    stale = await _post(client, interaction(1), timestamp=str(int(time.time()) - 3600))
    assert stale.status_code == 401
    other = Ed25519PrivateKey.generate()
    body = b'{"type": 1}'
    forged = sign_interaction(other, body)
    refused = await client.post("/bots/discord/interactions", content=body, headers=forged)
    assert refused.status_code == 401 and "signature" in refused.json()["error"]
    unsigned = await client.post("/bots/discord/interactions", content=body)
    assert unsigned.status_code == 401


async def test_discord_non_moderators_are_refused_ephemerally(
    discord_app: tuple[httpx.AsyncClient, Recorded],
) -> None:
    client, _ = discord_app
    for data in (
        command("pardon", user="42", reason="x"),
        command("strikes", user="42"),
        command("shadow", mode="on"),
        command("policy", "preset", name="strict"),
    ):
        reply = (await _post(client, interaction(2, permissions=1 << 11, data=data))).json()
        assert reply["type"] == 4 and reply["data"]["flags"] == 64
        assert reply["data"]["content"].startswith("Only moderators")
    # In a DM there are no permissions at all.
    dm = await _post(client, interaction(2, guild=None, data=command("strikes", user="42")))
    assert dm.json()["data"]["content"].startswith("Only moderators")


async def test_discord_dispute_button_and_command_are_one_dispute_and_rate_limited(
    discord_app: tuple[httpx.AsyncClient, Recorded],
) -> None:
    client, sink = discord_app
    button = {"custom_id": "warden:dispute:5000:999", "component_type": 2}
    first = await _post(client, interaction(3, guild=None, user="42", data=button))
    assert first.json()["data"]["flags"] == 64 and "recorded" in first.json()["data"]["content"]
    link = "https://discord.com/channels/5000/777/999"
    again = await _post(
        client, interaction(2, user="42", data=command("dispute", message=link, reason="joke"))
    )
    assert "recorded" in again.json()["data"]["content"]
    assert [f.feedback_id for f in sink.sent] == [sink.sent[0].feedback_id] * 2
    assert sink.sent[1].reason == "joke" and sink.sent[1].source == "discord"
    limited = await _post(client, interaction(3, guild=None, user="42", data=button))
    assert "too often" in limited.json()["data"]["content"] and len(sink.sent) == 2
    no_server = await _post(
        client,
        interaction(2, guild=None, user="7", data=command("dispute", message="9", reason="")),
    )
    assert "link" in no_server.json()["data"]["content"] and len(sink.sent) == 2


def test_routers_refuse_to_start_without_their_secrets() -> None:
    with pytest.raises(ConfigError, match="DISCORD_PUBLIC_KEY"):
        discord_router(None, Recorded(), Settings())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        slack_router(None, Recorded(), Settings())  # type: ignore[arg-type]


SECRET = "slack-signing-secret"


@pytest_asyncio.fixture
async def slack_app() -> AsyncIterator[tuple[httpx.AsyncClient, Recorded, FakeSlack]]:
    fake = FakeSlack()
    await fake.start()
    sink = Recorded()
    slack = SlackSettings(bot_token=SecretStr(BOT_TOKEN), api_base_url=fake.base_url)
    settings = Settings(
        platforms=PlatformSettings(slack=slack),
        bots=BotSettings(slack_signing_secret=SecretStr(SECRET)),
    )
    app = FastAPI()
    app.include_router(slack_router(None, sink, settings))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bots") as client:
        yield client, sink, fake
    await fake.close()


async def _slack(client: httpx.AsyncClient, fields: dict[str, str], secret: str = SECRET) -> Any:
    body = urlencode(fields).encode()
    headers = sign_request(secret, body)
    return await client.post("/bots/slack/events", content=body, headers=headers)


async def test_slack_refuses_bad_signatures_and_non_admins(
    slack_app: tuple[httpx.AsyncClient, Recorded, FakeSlack],
) -> None:
    client, sink, fake = slack_app
    forged = await _slack(client, slash_command("strikes <@U2>"), secret="wrong")
    assert forged.status_code == 401
    refused = await _slack(client, slash_command("pardon <@U2> sorry", user="U1001"))
    assert refused.status_code == 200
    assert refused.json()["response_type"] == "ephemeral"
    assert refused.json()["text"].startswith("Only workspace admins")
    assert any(r.bucket == "users.info" for r in fake.requests)
    # An admin passes the check (users.info is_admin) and reaches the command's own parsing.
    fake.admins.add("U7")
    admin = await _slack(client, slash_command("shadow maybe", user="U7"))
    assert admin.json()["text"] == "/warden shadow on | /warden shadow off"
    usage = await _slack(client, slash_command("frobnicate"))
    assert usage.json()["text"].startswith("Usage")
    assert sink.sent == []


async def test_slack_dispute_button_acknowledges_ephemerally(
    slack_app: tuple[httpx.AsyncClient, Recorded, FakeSlack],
) -> None:
    client, sink, fake = slack_app
    click = await _slack(client, block_action(DISPUTE_ACTION, "C1:1700000000.000100", user="U9"))
    assert click.status_code == 200
    assert [(f.message_id, f.user, f.community) for f in sink.sent] == [
        ("C1:1700000000.000100", "U9", "T0001")
    ]
    assert fake.ephemeral[-1]["user"] == "U9" and "recorded" in fake.ephemeral[-1]["text"]
