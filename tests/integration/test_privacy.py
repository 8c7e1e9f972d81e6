"""Privacy on the real stack: `warden privacy forget` leaves nothing of the user in Redis or
PostgreSQL (but the deletion record and pseudonymised audit rows), and nothing of anyone else
goes; the retention job deletes exactly the expired rows; `warden stats` names nobody who
opted out or was forgotten.

The Redis state is written by the modules that own it (the scorer's context store and stream
detectors, the actioner's chat log), so a change of their key layout that forget does not
follow fails here.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from kit import run_warden

from actioners import retention
from actioners.chatlog import ChatLog
from actioners.database import Database
from actioners.stats import community_stats, render_community, render_user, user_stats
from core import privacy
from core.settings import PrivacySettings, Settings
from retrain.registry import Registry
from schemas.events import ChatMessage, Severity, Verdict, utcnow
from scorers.context_store import FeatureStore, Outcome
from scorers.detectors import StreamDetectors
from scorers.stream_state import PolicyCache, StreamState

SECRET = "a-test-pseudonym-secret-0123456789"
RAID_LINE = "raid incoming follow the hype train"


def _ids() -> tuple[str, str, str]:
    """A community and two users, unique and long enough to find by substring."""
    return (f"c{uuid.uuid4().hex[:12]}", f"u{uuid.uuid4().hex}", f"o{uuid.uuid4().hex}")


def chat(
    community: str, user: str, text: str, seconds_ago: float = 1.0, platform: str = "discord"
) -> ChatMessage:
    sent = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return ChatMessage.model_validate(
        {
            "message_id": uuid.uuid4().hex,
            "platform": platform,
            "community": community,
            "channel": "777",
            "user": user,
            "text": text,
            "sent_at": sent.isoformat(),
            "received_at": sent.isoformat(),
        }
    )


def verdict(message: ChatMessage, flagged: bool) -> Verdict:
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
        model_version="test",
        sent_at=message.sent_at,
        received_at=message.received_at,
        scored_at=utcnow(),
    )


async def write_redis(
    settings: Settings, client: aioredis.Redis, community: str, user: str
) -> None:
    """The user's Redis state as the scorer and the actioner write it, raid windows included."""
    lines = [chat(community, user, f"hello there {n}", 30 - n) for n in range(3)]
    # First-time chatters of the channel posting the same line: the raid windows.
    raiders = [chat(community, user, RAID_LINE, 5)] + [
        chat(community, f"raider{n}", RAID_LINE, 4 - n * 0.1) for n in range(3)
    ]
    detectors = StreamDetectors(StreamState(client), PolicyCache(client, ttl_s=0))
    everything = lines + raiders
    await detectors.run(everything, [verdict(m, i == 0) for i, m in enumerate(everything)])
    await FeatureStore(client).update(
        everything, [Outcome(bad=i == 0, violation=i == 0) for i in range(len(everything))]
    )
    chatlog = ChatLog(settings, client)
    await chatlog.record([verdict(m, False) for m in lines])


async def write_postgres(db: Database, community: str, user: str) -> dict[str, Any]:
    """One row of the user in every table that holds users, free text naming them included."""
    # Their message; its id names nothing of them (platform message ids do not), and the
    # pseudonymised audit keeps it.
    m = f"m-{uuid.uuid4().hex}"
    p, c = "discord", community
    verdict_json = json.dumps({"user": user, "text": f"text of {user}"})
    async with db.transaction() as cur:
        await cur.execute(
            "INSERT INTO decisions (message_id, platform, community, channel, user_id,"
            " policy_version, model_version, severity, rule, strikes_added, strikes_active,"
            " shadow, reason, text, verdict) VALUES (%s, %s, %s, '777', %s, 'p@1', 'm1', 'HIGH',"
            " 'severity', 1, 1, false, 'policy: HIGH', %s, %s)",
            (m, p, c, user, f"you are awful, signed {user}", verdict_json),
        )
        await cur.execute(
            "INSERT INTO strikes (platform, community, user_id, message_id, points, reason,"
            " policy_version, expires_at) VALUES (%s, %s, %s, %s, 1, 'policy: HIGH', 'p@1',"
            " now() + interval '30 days')",
            (p, c, user, m),
        )
        await cur.execute(
            "INSERT INTO holds (message_id, action_id, platform, community, channel, user_id,"
            " text, severity, p_toxic, held_action, reason, policy_version, model_version)"
            " VALUES (%s, %s, %s, %s, '777', %s, %s, 'MEDIUM', 0.6, 'review', 'borderline',"
            " 'p@1', 'm1')",
            (f"h-{m}", f"h-{m}:hold", p, c, user, f"held text of {user}"),
        )
        await cur.execute(
            "INSERT INTO disputes (message_id, platform, community, user_id, reason)"
            " VALUES (%s, %s, %s, %s, 'it was a joke') RETURNING id",
            (m, p, c, user),
        )
        row = await cur.fetchone()
        assert row is not None
        dispute = int(row[0])
        await cur.execute(
            "INSERT INTO dispute_feedback (feedback_id, dispute_id, disputed_message_id, reason,"
            " created_at) VALUES (%s, %s, %s, 'a joke', now())",
            (f"f-{user}", dispute, m),
        )
        await cur.execute(
            "INSERT INTO reviews (message_id, platform, community, moderator, outcome, note,"
            " dispute_id, published) VALUES (%s, %s, %s, 'mod1', 'upheld', %s, %s, true)",
            (m, p, c, f"{user} does this every day", dispute),
        )
        await cur.execute(
            "INSERT INTO explanations (message_id, document) VALUES (%s, %s)",
            (m, json.dumps({"platform": p, "community": c, "weights": [{"token": "awful"}]})),
        )
        request = json.dumps({"user": user, "reason": "policy: HIGH", "notice": f"hi {user}"})
        await cur.execute(
            "INSERT INTO action_ledger (action_id, message_id, platform, community, user_id,"
            " kind, severity, state, request, detail, source_topic, source_partition,"
            " source_offset, published, completed_at) VALUES (%s, %s, %s, %s, %s, 'timeout',"
            " 'HIGH', 'done', %s, %s, 'moderation.verdicts.v1', 0, 1, true, now())",
            (f"{m}:timeout", m, p, c, user, request, f"user {user} timed out"),
        )
        await cur.execute(
            "INSERT INTO action_audit (action_id, message_id, platform, community, channel,"
            " user_id, kind, status, executor, detail, reason, severity, p_toxic,"
            " model_version, policy_version, sent_at, requested_at, completed_at) VALUES"
            " (%s, %s, %s, %s, '777', %s, 'timeout', 'done', 'discord', %s, 'policy: HIGH',"
            " 'HIGH', 0.9, 'm1', 'p@1', now(), now(), now())",
            (f"{m}:timeout", m, p, c, user, f"user {user} timed out"),
        )
        await cur.execute(
            "INSERT INTO pardons (platform, community, user_id, moderator, reason,"
            " strikes_cleared) VALUES (%s, %s, %s, 'mod1', %s, 1)",
            (p, c, user, f"{user} apologised"),
        )
    return {"message": m, "dispute": dispute}


async def traces_in_redis(client: aioredis.Redis, needle: str) -> list[str]:
    """Every key whose name or value holds ``needle`` (all of Redis, read in pipelines)."""
    keys = [raw async for raw in client.scan_iter(count=1000)]
    found = []
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        async with client.pipeline(transaction=False) as pipe:
            for raw in chunk:
                pipe.type(raw)
            kinds = [k.decode() for k in await pipe.execute()]
        async with client.pipeline(transaction=False) as pipe:
            for raw, kind in zip(chunk, kinds, strict=True):
                read = {
                    "string": lambda k: pipe.get(k),
                    "hash": lambda k: pipe.hgetall(k),
                    "zset": lambda k: pipe.zrange(k, 0, -1),
                    "list": lambda k: pipe.lrange(k, 0, -1),
                    "set": lambda k: pipe.smembers(k),
                }.get(kind, lambda k: pipe.exists(k))
                read(raw)
            values = await pipe.execute()
        for raw, value in zip(chunk, values, strict=True):
            text = raw.decode(errors="replace") + " " + repr(value)
            if needle in text:
                found.append(raw.decode(errors="replace"))
    return found


async def traces_in_postgres(db: Database, needle: str) -> dict[str, int]:
    """Rows per table whose text (every column, JSON included) holds ``needle``."""
    found = {}
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
        tables = [str(r[0]) for r in await cur.fetchall()]
        for table in tables:
            from psycopg import sql

            await cur.execute(
                sql.SQL("SELECT count(*) FROM {} AS t WHERE strpos(t::text, %s) > 0").format(
                    sql.Identifier(table)
                ),
                (needle,),
            )
            row = await cur.fetchone()
            if row and row[0]:
                found[table] = int(row[0])
    return found


async def test_forget_leaves_nothing_of_the_user_and_touches_nobody_else(
    migrated: Settings, db: Database, redis: aioredis.Redis
) -> None:
    community, user, other = _ids()
    for who in (user, other):
        await write_redis(migrated, redis, community, who)
        await write_postgres(db, community, who)
    assert await traces_in_redis(redis, user)  # the writers wrote what forget must find
    before_other_pg = await traces_in_postgres(db, other)
    before_other_redis = sorted(await traces_in_redis(redis, other))
    assert len(before_other_pg) >= 9 and len(before_other_redis) >= 6

    done = await asyncio.to_thread(
        run_warden,
        migrated,
        "privacy",
        "forget",
        user,
        "--community",
        community,
        "--json",
        WARDEN_PRIVACY__PSEUDONYM_SECRET=SECRET,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["recorded"] and report["open_actions"] == 0
    assert report["deleted"]["decisions"] == 1 and report["deleted"]["redis keys"] == 4
    assert report["deleted"]["redis raid entries"] >= 2  # the account and its line
    assert report["pseudonymised"]["action_audit"] == 1

    assert await traces_in_redis(redis, user) == []
    # The deletion record is the one row left with the user id: retraining must know whom
    # to leave out.
    assert await traces_in_postgres(db, user) == {"data_deletions": 1}
    alias = privacy.pseudonym(SECRET.encode(), "discord", community, user)
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT a.detail, l.request->>'user', l.request ? 'notice', p.reason"
            " FROM action_audit a JOIN action_ledger l USING (action_id), pardons p"
            " WHERE a.user_id = %s AND p.user_id = %s",
            (alias, alias),
        )
        kept = await cur.fetchall()
    assert kept == [(privacy.REMOVED, alias, False, privacy.REMOVED)]

    # The registry's record (`warden models forget-user`) is the same: retraining reads it.
    registry = Registry(migrated)
    assert ("discord", community, user) in await asyncio.to_thread(registry.deleted_users)
    assert not await asyncio.to_thread(registry.forget_user, "discord", community, user)

    # Nothing of the other user went.
    assert await traces_in_postgres(db, other) == before_other_pg
    assert sorted(await traces_in_redis(redis, other)) == before_other_redis

    # Again: nothing left to do, and it says so.
    again = await asyncio.to_thread(
        run_warden,
        migrated,
        "privacy",
        "forget",
        user,
        "--community",
        community,
        WARDEN_PRIVACY__PSEUDONYM_SECRET=SECRET,
    )
    assert again.returncode == 0 and "deleted nothing" in again.stdout, again.stdout
    refused = await asyncio.to_thread(
        run_warden, migrated, "privacy", "forget", other, "--community", community
    )
    assert refused.returncode != 0
    assert refused.stderr.strip() == (
        "warden: WARDEN_PRIVACY__PSEUDONYM_SECRET: needed (at least 16 characters) to"
        " pseudonymise the audit rows a forget keeps"
    )


async def test_opt_out_and_in_through_the_cli(migrated: Settings, redis: aioredis.Redis) -> None:
    community, user, _ = _ids()
    key = f"twitch:{community}:{user}"
    out = await asyncio.to_thread(
        run_warden,
        migrated,
        "privacy",
        "opt-out",
        user,
        "--community",
        community,
        "--platform",
        "twitch",
        WARDEN_INGEST__OPT_OUT="redis",
    )
    assert (
        out.returncode == 0
        and out.stdout.strip() == f"{key}: opted out; ingest drops their messages"
    )
    assert await redis.sismember(migrated.ingest.opt_out_key, key)  # type: ignore[misc]
    back = await asyncio.to_thread(
        run_warden,
        migrated,
        "privacy",
        "opt-in",
        user,
        "--community",
        community,
        "--platform",
        "twitch",
    )
    assert back.returncode == 0 and "opted back in" in back.stdout
    assert not await redis.sismember(migrated.ingest.opt_out_key, key)  # type: ignore[misc]


DAY = timedelta(days=1)


async def seed_ages(db: Database, p: str, c: str) -> None:
    """Rows either side of each table's cutoff (28 days for message-level data, 365 for the
    audit), plus the rows that age never removes. Ids say which should go: ``x-`` expired,
    ``k-`` kept."""
    async with db.transaction() as cur:
        for tag, age in (("x-d", 29 * DAY), ("k-d", 27 * DAY)):
            await cur.execute(
                "INSERT INTO decisions (message_id, platform, community, channel, user_id,"
                " policy_version, model_version, severity, rule, strikes_added,"
                " strikes_active, shadow, reason, decided_at) VALUES (%s, %s, %s, '1', 'u',"
                " 'p@1', 'm1', 'HIGH', 'r', 0, 0, false, 'r', now() - %s::interval)",
                (f"{tag}-{c}", p, c, age),
            )
            await cur.execute(
                "INSERT INTO holds (message_id, action_id, platform, community, channel,"
                " user_id, text, severity, p_toxic, held_action, reason, policy_version,"
                " model_version, held_at) VALUES (%s, %s, %s, %s, '1', 'u', 't', 'MEDIUM', 0.6,"
                " 'review', 'r', 'p@1', 'm1', now() - %s::interval)",
                (f"{tag}-h-{c}", f"{tag}-h-{c}:hold", p, c, age),
            )
            await cur.execute(
                "INSERT INTO explanations (message_id, document, created_at)"
                " VALUES (%s, %s, now() - %s::interval)",
                (f"{tag}-e-{c}", json.dumps({"platform": p, "community": c}), age),
            )
            await cur.execute(
                "INSERT INTO disputes (message_id, platform, community, user_id, opened_at,"
                " last_at) VALUES (%s, %s, %s, 'u', now() - %s::interval,"
                " now() - %s::interval) RETURNING id",
                (f"{tag}-q-{c}", p, c, age, age),
            )
            row = await cur.fetchone()
            assert row is not None
            # A review of the dispute, younger than the audit's year: it stays either way.
            await cur.execute(
                "INSERT INTO reviews (message_id, platform, community, moderator, outcome,"
                " note, dispute_id, published) VALUES (%s, %s, %s, 'mod1', 'upheld', 'ok', %s,"
                " true)",
                (f"k-dr-{tag}-{c}", p, c, row[0]),
            )
            await cur.execute(
                "INSERT INTO strikes (platform, community, user_id, message_id, points, reason,"
                " policy_version, created_at, expires_at) VALUES (%s, %s, 'u', %s, 1, 'r',"
                " 'p@1', now() - interval '400 days', now() - %s::interval)",
                (p, c, f"{tag}-s-{c}", age),
            )
        # A long strike, given long ago and still active: never purged.
        await cur.execute(
            "INSERT INTO strikes (platform, community, user_id, message_id, points, reason,"
            " policy_version, created_at, expires_at) VALUES (%s, %s, 'u', %s, 1, 'r', 'p@1',"
            " now() - interval '400 days', now() + interval '1 day')",
            (p, c, f"k-active-{c}"),
        )
        for tag, age, state, published in (
            ("x-l", 366 * DAY, "done", True),
            ("k-l", 364 * DAY, "done", True),
            ("k-open", 366 * DAY, "in_flight", False),  # still being acted on
            ("k-unpublished", 366 * DAY, "failed", False),  # its result not yet sent
        ):
            await cur.execute(
                "INSERT INTO action_ledger (action_id, message_id, platform, community,"
                " user_id, kind, severity, state, request, source_topic, source_partition,"
                " source_offset, published, created_at) VALUES (%s, %s, %s, %s, 'u', 'warn',"
                " 'HIGH', %s, '{}', 't', 0, 0, %s, now() - %s::interval)",
                (f"{tag}-{c}", f"{tag}-{c}", p, c, state, published, age),
            )
        for tag, age in (("x-a", 366 * DAY), ("k-a", 364 * DAY)):
            await cur.execute(
                "INSERT INTO action_audit (action_id, message_id, platform, community, channel,"
                " user_id, kind, status, executor, reason, severity, p_toxic, model_version,"
                " policy_version, sent_at, requested_at, completed_at, recorded_at) VALUES"
                " (%s, %s, %s, %s, '1', 'u', 'warn', 'done', 'log', 'r', 'HIGH', 0.9, 'm1',"
                " 'p@1', now(), now(), now(), now() - %s::interval)",
                (f"{tag}-{c}", f"{tag}-{c}", p, c, age),
            )
            await cur.execute(
                "INSERT INTO pardons (platform, community, user_id, moderator, reason,"
                " strikes_cleared, created_at) VALUES (%s, %s, %s, 'mod1', 'r', 0,"
                " now() - %s::interval)",
                (p, c, f"{tag}-p", age),
            )
        for tag, age, published in (
            ("x-r", 366 * DAY, True),
            ("k-r", 364 * DAY, True),
            ("k-r-unpublished", 366 * DAY, False),
        ):
            await cur.execute(
                "INSERT INTO reviews (message_id, platform, community, moderator, outcome, note,"
                " published, created_at) VALUES (%s, %s, %s, 'mod1', 'upheld', 'ok', %s,"
                " now() - %s::interval)",
                (f"{tag}-{c}", p, c, published, age),
            )


# Each table's row ids, by the column that carries the tag.
ID_COLUMNS = {
    "decisions": "message_id",
    "holds": "message_id",
    "explanations": "message_id",
    "disputes": "message_id",
    "strikes": "message_id",
    "action_ledger": "action_id",
    "action_audit": "action_id",
    "pardons": "user_id",
    "reviews": "message_id",
}


async def remaining(db: Database, c: str) -> dict[str, set[str]]:
    from psycopg import sql

    left: dict[str, set[str]] = {}
    async with db.transaction() as cur:
        for table, column in ID_COLUMNS.items():
            scope = "document->>'community' = %s" if table == "explanations" else "community = %s"
            await cur.execute(
                sql.SQL("SELECT {} FROM {} WHERE " + scope).format(
                    sql.Identifier(column), sql.Identifier(table)
                ),
                (c,),
            )
            left[table] = {str(r[0]) for r in await cur.fetchall()}
    return left


async def test_retention_purges_exactly_the_expired_rows(migrated: Settings, db: Database) -> None:
    p, c = "slack", f"T{uuid.uuid4().hex[:10].upper()}"
    await seed_ages(db, p, c)
    before = await remaining(db, c)
    expired = {t: {i for i in ids if i.startswith("x-")} for t, ids in before.items()}
    # Every table has one expired row; the disputes' reviews go nowhere (they are younger).
    assert all(len(ids) == 1 for ids in expired.values()), expired
    settings = migrated.model_copy(update={"privacy": PrivacySettings(purge_batch=1)})

    counted = await retention.purge_once(settings, dry_run=True, community=(p, c))
    assert counted == {t: 1 for t in ID_COLUMNS}
    assert await remaining(db, c) == before
    purged = await retention.purge_once(settings, community=(p, c))
    assert purged == counted
    after = await remaining(db, c)
    assert after == {t: ids - expired[t] for t, ids in before.items()}
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT count(*), count(dispute_id) FROM reviews WHERE message_id LIKE %s",
            (f"k-dr-%-{c}",),
        )
        assert await cur.fetchone() == (2, 1)  # kept; the purged dispute's link is gone

    # On a schedule: a row that expires later goes at the next turn, and a stop ends it.
    async with db.transaction() as cur:
        await cur.execute(
            "UPDATE decisions SET decided_at = now() - interval '40 days' WHERE message_id = %s",
            (f"k-d-{c}",),
        )
    stop = asyncio.Event()
    every = settings.model_copy(update={"privacy": PrivacySettings(purge_every_s=0.2)})
    task = asyncio.create_task(retention.run_periodically(every, stop, community=(p, c)))
    for _ in range(50):
        if not (await remaining(db, c))["decisions"]:
            break
        await asyncio.sleep(0.1)
    assert (await remaining(db, c))["decisions"] == set()
    stop.set()
    await asyncio.wait_for(task, 2)

    dry = await asyncio.to_thread(run_warden, migrated, "privacy", "purge", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[0].startswith("decisions: would delete ")
    assert dry.stdout.splitlines()[-1].endswith("row(s) older than 365 days")

    # Leave no unpublished review behind: a review service started later (another test's, on
    # this database) publishes every unpublished review when it starts.
    async with db.transaction() as cur:
        await cur.execute("UPDATE reviews SET published = true WHERE community = %s", (c,))


async def test_stats_count_and_rank_but_never_name_who_opted_out_or_was_forgotten(
    migrated: Settings, db: Database, redis: aioredis.Redis
) -> None:
    p, c = "twitch", f"s{uuid.uuid4().hex[:12]}"
    a, b, opted, forgotten = (f"{n}{uuid.uuid4().hex[:8]}" for n in "abof")
    pseudonymised = privacy.pseudonym(SECRET.encode(), p, c, "gone")
    lines = [chat(c, a, f"line {n}", platform=p) for n in range(3)]
    lines += [chat(c, b, "hi", platform=p), chat(c, b, "yo", platform=p)]
    await FeatureStore(redis).update(
        lines, [Outcome(bad=n == 0, violation=n == 0) for n in range(len(lines))]
    )
    async with db.transaction() as cur:
        for user, actions in ((a, 3), (b, 2), (opted, 5), (forgotten, 4), (pseudonymised, 6)):
            for n in range(actions):
                await cur.execute(
                    "INSERT INTO action_audit (action_id, message_id, platform, community,"
                    " channel, user_id, kind, status, executor, reason, severity, p_toxic,"
                    " model_version, policy_version, sent_at, requested_at, completed_at)"
                    " VALUES (%s, %s, %s, %s, '1', %s, %s, 'done', 'twitch', 'r', 'HIGH', 0.9,"
                    " 'm1', 'p@1', now(), now(), now())",
                    (f"{user}-{n}", f"{user}-{n}", p, c, user, "timeout" if n else "delete"),
                )
        await cur.execute(
            "INSERT INTO action_audit (action_id, message_id, platform, community, channel,"
            " user_id, kind, status, executor, reason, severity, p_toxic, model_version,"
            " policy_version, sent_at, requested_at, completed_at) VALUES (%s, %s, %s, %s,"
            " '1', %s, 'ban', 'skipped', 'twitch', 'shadow', 'HIGH', 0.9, 'm1', 'p@1', now(),"
            " now(), now())",
            (f"{b}-skipped", f"{b}-skipped", p, c, b),
        )
        for n, shadow in enumerate((False, True)):
            await cur.execute(
                "INSERT INTO decisions (message_id, platform, community, channel, user_id,"
                " policy_version, model_version, severity, rule, strikes_added,"
                " strikes_active, shadow, reason) VALUES (%s, %s, %s, '1', %s, 'p@1', 'm1',"
                " 'HIGH', 'r', 1, 1, %s, 'r')",
                (f"{a}-d{n}", p, c, a, shadow),
            )
        await cur.execute(
            "INSERT INTO strikes (platform, community, user_id, message_id, points, reason,"
            " policy_version, expires_at) VALUES (%s, %s, %s, %s, 2, 'r', 'p@1',"
            " now() + interval '1 day')",
            (p, c, a, f"{a}-d0"),
        )
        await cur.execute(privacy.RECORD_DELETION, (p, c, forgotten, "test"))
    await privacy.opt_out(redis, migrated, f"{p}:{c}:{opted}")

    week = timedelta(days=7)
    async with db.transaction() as cur:
        whole = await community_stats(cur, redis, migrated, p, c, week)
        of_a = await user_stats(cur, redis, migrated, p, c, a, week)
        of_opted = await user_stats(cur, redis, migrated, p, c, opted, week)
        of_forgotten = await user_stats(cur, redis, migrated, p, c, forgotten, week)
    assert (whole.messages, whole.toxic, whole.flags, whole.shadow_flags) == (5, 1, 2, 1)
    assert whole.by_status("done") == 20 and whole.by_status("skipped") == 1
    assert whole.actions[("timeout", "done")] == 15
    assert whole.top == [(a, 3), (b, 2)]  # not the opted-out, forgotten or pseudonymised
    text = render_community(whole, mention=True)
    assert f"1. <@{a}>: 3 action(s)" in text and opted not in text and "anon-" not in text
    assert (of_a.messages, of_a.toxic, of_a.flags, of_a.active_strikes) == (3, 1, 2, 2)
    assert of_a.by_status("done") == 3 and not of_a.hidden
    assert of_opted.hidden and of_forgotten.hidden and of_opted.by_status("done") == 0
    assert render_user(of_opted).startswith("Nothing is shown for")

    shown = await asyncio.to_thread(
        run_warden, migrated, "stats", "--community", c, "--platform", p, "--json"
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["top"] == [
        {"user": a, "actions": 3},
        {"user": b, "actions": 2},
    ]
    await redis.srem(migrated.ingest.opt_out_key, f"{p}:{c}:{opted}")  # type: ignore[misc]
