"""Policies, strikes and the ledger in the real PostgreSQL; `warden policy|strikes|pardon`."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from kit import REPO, service_env

from actioners import commands
from actioners.database import Database
from actioners.ledger import Entry, Ledger, Source, State, record_decisions, result_of
from actioners.policy import PRESET_VERSION, PolicyChangeError, preset
from actioners.policystore import PolicyStore, StoredPolicy
from actioners.strikes import NewStrike, StrikeBook, add
from core.errors import ConfigError
from core.settings import Settings
from schemas.events import ActionKind, ActionRequest, ActionStatus, Platform, Severity

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


async def test_policies_are_versioned_and_the_default_is_balanced(db: Database) -> None:
    guild = unique("g")
    shown = await commands.show_policy(db, "discord", guild)
    assert shown.is_default and shown.version_id == f"preset:balanced@{PRESET_VERSION}"
    assert shown.policy == preset("balanced")

    v1 = await commands.apply_preset(db, "discord", guild, "strict", author="alice")
    v2 = await commands.set_policy(
        db, "discord", guild, {"shadow": True, "thresholds.high": 0.8}, author="bob", note="trial"
    )
    assert (v1.version, v2.version) == (1, 2)
    assert v2.version_id == f"discord:{guild}@v2"
    current = await commands.show_policy(db, "discord", guild)
    assert current.policy.shadow and current.policy.thresholds is not None
    assert current.policy.thresholds.high == 0.8 and current.policy.preset == "strict"
    history = await commands.policy_history(db, "discord", guild)
    assert [(h.version, h.author, h.note) for h in history] == [
        (2, "bob", "trial"),
        (1, "alice", "preset strict"),
    ]
    # An old version stays as it was, to explain the decisions made under it.
    old = await PolicyStore(db).version("discord", guild, 1)
    assert old is not None and not old.policy.shadow
    with pytest.raises(PolicyChangeError, match="thresholds"):
        await commands.set_policy(db, "discord", guild, {"thresholds.low": 0.99}, author="x")
    assert len(await commands.policy_history(db, "discord", guild)) == 2
    # Another platform's community of the same id is another community.
    assert (await commands.show_policy(db, "slack", guild)).is_default


async def test_concurrent_changes_get_consecutive_versions(migrated: Settings) -> None:
    guild = unique("g")

    async def change(i: int) -> int:
        database = await Database.connect(migrated.postgres)
        try:
            stored = await commands.set_policy(
                database, "discord", guild, {"strike_decay_days": 10 + i}, author=f"m{i}"
            )
            return stored.version
        finally:
            await database.close()

    versions = await asyncio.gather(*(change(i) for i in range(6)))
    assert sorted(versions) == [1, 2, 3, 4, 5, 6]


async def test_the_policy_cache_sees_changes_after_it_expires(db: Database) -> None:
    guild = unique("g")
    cached = PolicyStore(db, cache_s=60)
    assert (await cached.current("discord", guild)).is_default
    await PolicyStore(db).save("discord", guild, preset("strict"), author="t")
    assert (await cached.current("discord", guild)).is_default  # still cached
    fresh = PolicyStore(db, cache_s=0)
    assert (await fresh.current("discord", guild)).policy.preset == "strict"


async def test_strikes_decay_and_pardons_clear_them(db: Database) -> None:
    guild, user = unique("g"), unique("u")

    def strike(message: str, points: int, decay_days: float, shadow: bool = False) -> NewStrike:
        return NewStrike("discord", guild, user, message, points, shadow, "test", "v", decay_days)

    async with db.transaction() as cur:
        await add(
            cur,
            [
                strike(unique("m"), 2, 30),
                strike(unique("m"), 1, 1e-9),  # expired at once
                strike(unique("m"), 3, 30, shadow=True),
            ],
        )
        # The same message's strike is recorded once, however often it is decided.
        repeated = strike("same-message-" + guild, 1, 30)
        await add(cur, [repeated, repeated])
    await asyncio.sleep(0.01)
    book = StrikeBook(db)
    assert await book.active("discord", guild, user) == 3
    report = await commands.user_strikes(db, "discord", guild, user)
    assert (report.active, report.shadow) == (3, 3)
    assert report.next_rung is not None and report.next_rung.describe() == "timeout 1 d"
    everything = await commands.user_strikes(db, "discord", guild, user, include_inactive=True)
    assert len(everything.strikes) == 4

    with pytest.raises(ValueError, match="reason"):
        await commands.pardon(db, "discord", guild, user, moderator="m", reason=" ")
    pardon = await commands.pardon(db, "discord", guild, user, moderator="mod-1", reason="appeal")
    assert pardon.strikes_cleared == 6
    assert await book.active("discord", guild, user) == 0
    cleared = await book.of("discord", guild, user, include_inactive=True)
    assert {s.pardoned_by for s in cleared if s.pardoned_at} == {"mod-1"}


def request(message: str, kind: ActionKind) -> ActionRequest:
    return ActionRequest(
        action_id=f"{message}:{kind.value}",
        message_id=message,
        platform=Platform.DISCORD,
        community="g",
        channel="c",
        user="u",
        kind=kind,
        reason="why",
        severity=Severity.HIGH,
        p_toxic=0.9,
        model_version="m",
        policy_version="p",
        sent_at=NOW,
        requested_at=NOW,
    )


async def test_the_ledger_records_intent_once_and_finishes_with_an_audit_row(db: Database) -> None:
    message = unique("msg")
    topic = unique("verdicts.")
    pending = Entry(request(message, ActionKind.DELETE), State.PENDING, Source(topic, 2, 41))
    skipped = Entry(
        request(message, ActionKind.WARN),
        State.SKIPPED,
        Source(topic, 2, 41),
        detail="not done: shadow mode",
        executor="discord",
        completed_at=NOW,
    )
    async with db.transaction() as cur:
        await record_decisions(cur, [], [pending, skipped])
    async with db.transaction() as cur:  # a verdict decided again adds nothing
        await record_decisions(cur, [], [pending, skipped])
    ledger = Ledger(db)
    entries = await ledger.entries([message])
    assert [(e.action_id, e.state) for e in entries] == [
        (f"{message}:delete", State.PENDING),
        (f"{message}:warn", State.SKIPPED),
    ]
    unfinished = await ledger.unfinished(topic, [2])
    assert {e.action_id for e in unfinished} == {f"{message}:delete", f"{message}:warn"}
    assert await ledger.unfinished(topic, [1]) == []

    (started,) = await ledger.start([entries[0]], "discord")
    assert started.state is State.IN_FLIGHT
    result = result_of(
        started.request, executor="discord", status=ActionStatus.DONE, detail="ok", completed_at=NOW
    )
    finished = await ledger.finish(started, result, attempts=1)
    assert finished.state is State.DONE
    await ledger.mark_published([e.action_id for e in entries])
    assert await ledger.unfinished(topic, [2]) == []

    report = await commands.explain(db, message)
    assert report is None  # no decision row was written for this hand-made entry
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT action_id, status, executor FROM action_audit WHERE message_id = %s"
            " ORDER BY action_id",
            (message,),
        )
        rows = await cur.fetchall()
    assert rows == [
        (f"{message}:delete", "done", "discord"),
        (f"{message}:warn", "skipped", "discord"),
    ]


async def test_a_database_without_the_tables_is_refused(migrated: Settings) -> None:
    import psycopg

    schema = unique("empty_")
    dsn = migrated.postgres.dsn.get_secret_value()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        connection = await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, options=f"-c search_path={schema}"
        )
        database = Database(migrated.postgres, connection)
        with pytest.raises(ConfigError, match="warden migrate"):
            await database.check_schema()
        await database.close()
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def await_history(settings: Settings, guild: str, limit: int) -> list[StoredPolicy]:
    async def read() -> list[StoredPolicy]:
        database = await Database.connect(settings.postgres)
        try:
            return await PolicyStore(database).history("discord", guild, limit=limit)
        finally:
            await database.close()

    return asyncio.run(read())


def warden(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warden", *args],
        env=service_env(settings),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_cli_shows_sets_presets_strikes_and_pardons(migrated: Settings) -> None:
    guild, user = unique("9"), unique("7")
    shown = warden(migrated, "policy", "show", guild)
    assert shown.returncode == 0, shown.stderr
    assert "default preset" in shown.stdout and '"preset": "balanced"' in shown.stdout

    assert warden(migrated, "policy", "preset", guild, "lenient").stdout.startswith(
        f"stored discord:{guild}@v1"
    )
    changed = warden(
        migrated,
        "policy",
        "set",
        guild,
        "shadow=true",
        "exempt_roles+=moderator",
        "channels.555.monitored_only=true",
        "--note",
        "trial week",
    )
    assert changed.returncode == 0, changed.stderr
    assert f"discord:{guild}@v2" in changed.stdout
    shown = warden(migrated, "policy", "show", guild)
    document = json.loads(shown.stdout.split("\n", 1)[1])
    assert document["shadow"] is True
    assert document["exempt_roles"] == ["broadcaster", "moderator", "vip"]
    assert document["channels"]["555"]["monitored_only"] is True
    assert "trial week" in shown.stdout.splitlines()[0]
    history = warden(migrated, "policy", "show", guild, "--history").stdout.splitlines()
    assert [line.split()[0] for line in history] == ["v2", "v1"]
    # Who changed it is what the session authenticated as, not a name anyone can type.
    account = pwd.getpwuid(os.geteuid()).pw_name
    assert all(f"cli:{account} (pg: warden)" in line for line in history), history
    claimed = warden(migrated, "policy", "preset", guild, "strict", "--author", "bob")
    assert claimed.returncode == 0, claimed.stderr
    (latest,) = await_history(migrated, guild, 1)
    assert latest.author == f"bob (claimed) via cli:{account} (pg: warden)"

    bad = warden(migrated, "policy", "set", guild, "thresholds.high=2")
    assert bad.returncode == 2 and "thresholds.high" in bad.stderr

    strikes = warden(migrated, "strikes", user, "--community", guild)
    assert strikes.returncode == 0, strikes.stderr
    assert "0 active strike(s)" in strikes.stdout and "next strike: warn" in strikes.stdout
    no_reason = warden(migrated, "pardon", user, "--community", guild)
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    pardoned = warden(
        migrated, "pardon", user, "--community", guild, "--reason", "appeal ok", "--by", "mod-7"
    )
    assert pardoned.returncode == 0 and "0 strike(s) cleared" in pardoned.stdout
    with psycopg.connect(migrated.postgres.dsn.get_secret_value()) as conn:
        row = conn.execute(
            "SELECT moderator FROM pardons WHERE community = %s AND user_id = %s", (guild, user)
        ).fetchone()
    assert row == (f"mod-7 (claimed) via cli:{account} (pg: warden)",)
