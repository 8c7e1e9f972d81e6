"""Helpers shared by the review service's tests (importable as ``reviewkit``): the service's
environment, waiting for it, moderators, sign-in, and a decided message with a done timeout."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from kit import Service

from actioners.database import Database
from actioners.ledger import (
    DecisionRow,
    Entry,
    HoldRow,
    Source,
    State,
    hold_entry,
    record_decisions,
)
from actioners.review.accounts import Accounts
from actioners.strikes import NewStrike, add
from core.net import free_port
from core.settings import Settings
from devkit.platforms.discord import DiscordServer
from schemas.events import ActionKind, ActionRequest, Platform, Severity, Verdict

DISCORD_TOKEN = "fake-discord-token"
PASSWORD = "a-long-test-password"


def snowflake() -> str:
    return str(int(uuid.uuid4().hex[:15], 16))


def review_env(settings: Settings, discord: DiscordServer, port: int) -> dict[str, str]:
    """``warden review`` acting on the fake Discord, on ``port``."""
    return {
        "WARDEN_REVIEW__SESSION_SECRET": secrets.token_urlsafe(40),
        "WARDEN_REVIEW__PORT": str(port),
        "WARDEN_METRICS__REVIEW_PORT": str(free_port()),
        "WARDEN_ACTIONER__EXECUTOR": "discord",
        "WARDEN_PLATFORMS__DISCORD__TOKEN": DISCORD_TOKEN,
        "WARDEN_PLATFORMS__DISCORD__API_BASE_URL": discord.base_url,
        "WARDEN_ACTIONER__BACKOFF_BASE_S": "0.05",
    }


async def started(service: Service, base_url: str, timeout_s: float = 30.0) -> None:
    """Wait until the service answers /healthz (fail with its log if it dies)."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=base_url, timeout=1.0) as client:
        while time.monotonic() < deadline:
            if not service.alive():
                raise AssertionError(f"{service.name} died:\n{service.log_tail()}")
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"{service.name} did not answer in {timeout_s} s:\n{service.log_tail()}")


async def add_moderator(settings: Settings, name: str, *communities: tuple[str, str]) -> None:
    db = await Database.connect(settings.postgres)
    try:
        await Accounts(db).add(name, PASSWORD, list(communities))
    finally:
        await db.close()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, name: str, password: str = PASSWORD) -> str:
    """Sign in on ``client`` (its cookies keep the session); returns the session's CSRF token."""
    page = await client.get("/login")
    answer = await client.post(
        "/login",
        data={"name": name, "password": password, "csrf": csrf_of(page.text), "next": "/"},
    )
    assert answer.status_code == 303, answer.text
    return csrf_of((await client.get("/")).text)


async def seed_timeout(
    settings: Settings, discord: DiscordServer, guild: str, user: str, text: str
) -> str:
    """A decided message whose timeout the platform carried out, written with the actioner's
    own ledger functions (decision, strike, done timeout entry), and the timeout on the fake
    Discord. Returns the message id."""
    message_id = snowflake()
    sent = datetime.now(UTC)
    verdict = Verdict(
        message_id=message_id,
        platform=Platform.DISCORD,
        community=guild,
        channel="100",
        user=user,
        text=text,
        p_toxic=0.91,
        severity=Severity.HIGH,
        flagged=True,
        labels=["insult"],
        label_scores={"insult": 0.88, "threat": 0.12},
        model_version="test-model-1",
        features={"caps_ratio": 0.1, "user_msgs_60s": 3.0},
        sent_at=sent,
        received_at=sent,
        scored_at=sent,
    )
    until = sent + timedelta(seconds=600)
    request = ActionRequest(
        action_id=f"{message_id}:timeout",
        message_id=message_id,
        platform=Platform.DISCORD,
        community=guild,
        channel="100",
        user=user,
        kind=ActionKind.TIMEOUT,
        duration_s=600,
        reason="policy test: HIGH; action timeout",
        severity=Severity.HIGH,
        p_toxic=0.91,
        model_version="test-model-1",
        policy_version=f"discord:{guild}@v1",
        sent_at=sent,
        requested_at=sent,
    )
    decision = DecisionRow(
        message_id=message_id,
        platform="discord",
        community=guild,
        channel="100",
        user=user,
        policy_version=f"discord:{guild}@v1",
        model_version="test-model-1",
        severity="HIGH",
        rule="delete + 2 strike(s)",
        strikes_added=2,
        strikes_active=2,
        shadow=False,
        reason="policy test: HIGH",
        labels=("insult",),
        text=verdict.text,
        p_toxic=verdict.p_toxic,
        features=dict(verdict.features),
        label_scores=dict(verdict.label_scores),
    )
    entry = Entry(
        request=request,
        state=State.DONE,
        source=Source("seeded", 0, 0),
        detail=f"timed out until {until.isoformat()}",
        executor="discord",
        completed_at=sent,
        published=True,
    )
    db = await Database.connect(settings.postgres)
    try:
        async with db.transaction() as cur:
            await add(
                cur,
                [
                    NewStrike(
                        "discord",
                        guild,
                        user,
                        message_id=message_id,
                        points=2,
                        shadow=False,
                        reason="policy test",
                        policy_version=f"discord:{guild}@v1",
                        decay_days=30,
                    )
                ],
            )
            await record_decisions(cur, [decision], [entry])
    finally:
        await db.close()
    discord.timeouts[(guild, user)] = until.isoformat()
    return message_id


async def seed_ban_hold(settings: Settings, guild: str, user: str) -> str:
    """A decided message whose ban the policy held for a moderator (``ban_requires_review``),
    written with the actioner's own ledger functions. Returns the message id."""
    message_id = snowflake()
    now = datetime.now(UTC)
    request = ActionRequest(
        action_id=f"{message_id}:hold",
        message_id=message_id,
        platform=Platform.DISCORD,
        community=guild,
        channel="100",
        user=user,
        kind=ActionKind.HOLD,
        reason="policy test: HIGH; ban held for a moderator's review",
        severity=Severity.HIGH,
        p_toxic=0.97,
        model_version="test-model-1",
        policy_version=f"discord:{guild}@v1",
        sent_at=now,
        requested_at=now,
    )
    decision = DecisionRow(
        message_id=message_id,
        platform="discord",
        community=guild,
        channel="100",
        user=user,
        policy_version=f"discord:{guild}@v1",
        model_version="test-model-1",
        severity="HIGH",
        rule="3 strike(s)",
        strikes_added=3,
        strikes_active=9,
        shadow=False,
        reason=request.reason,
        text="the worst line",
        p_toxic=0.97,
    )
    hold = HoldRow(
        request=request, text="the worst line", labels=("threat",), held_action="ban", shadow=False
    )
    entry = hold_entry(request, None, Source("seeded", 0, 0), now)
    db = await Database.connect(settings.postgres)
    try:
        async with db.transaction() as cur:
            await record_decisions(cur, [decision], [entry], [hold])
    finally:
        await db.close()
    return message_id
