"""The review service on the real stack: disputes reach the queue, an overturn lifts a timeout
on the (fake) platform exactly once, and nobody sees what is not theirs.

`warden actioner` times a user out on the fake Discord from real verdicts; `warden review` runs
as a process next to it, and the test talks to it over HTTP like a browser would.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from kit import REPO, Service, consume, service_env
from reviewkit import (
    DISCORD_TOKEN,
    PASSWORD,
    add_moderator,
    review_env,
    seed_ban_hold,
    seed_timeout,
    sign_in,
    snowflake,
    started,
)

from actioners.review.resolutions import NotFound, ResolutionError
from core.net import free_port
from core.settings import Settings
from devkit.platforms.discord import DiscordServer, command, interaction, send_interaction
from schemas.events import Feedback, FeedbackKind, Platform, Severity, Verdict
from schemas.topics import ACTIONS, DEADLETTER, FEEDBACK, VERDICTS


@pytest_asyncio.fixture
async def discord() -> AsyncIterator[DiscordServer]:
    fake = DiscordServer()
    await fake.start()
    yield fake
    await fake.close()


def verdict(message_id: str, guild: str, user: str, text: str) -> Verdict:
    sent = datetime.now(UTC)
    return Verdict(
        message_id=message_id,
        platform=Platform.DISCORD,
        community=guild,
        channel="100",
        user=user,
        text=text,
        p_toxic=0.6,
        severity=Severity.MEDIUM,
        flagged=True,
        model_version="test-model-1",
        features={"caps_ratio": 0.2},
        label_scores={"insult": 0.55},
        sent_at=sent,
        received_at=sent,
        scored_at=sent + timedelta(milliseconds=20),
    )


def dispute(feedback_id: str, message_id: str, guild: str, user: str, why: str) -> Feedback:
    return Feedback(
        feedback_id=feedback_id,
        kind=FeedbackKind.DISPUTE,
        message_id=message_id,
        platform=Platform.DISCORD,
        community=guild,
        user=user,
        reason=why,
        created_at=datetime.now(UTC),
        source="discord",
    )


async def until(check: Callable[[], Any], what: str, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = await check() if asyncio.iscoroutinefunction(check) else check()
        if found:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def test_disputes_queue_and_an_overturn_lifts_the_timeout_once(
    migrated: Settings,
    settings: Settings,
    producer: AIOKafkaProducer,
    service_factory: Callable[..., Service],
    discord: DiscordServer,
) -> None:
    guild, user, other_guild = snowflake(), snowflake(), snowflake()
    mod, outsider = f"mod_{uuid.uuid4().hex[:8]}", f"out_{uuid.uuid4().hex[:8]}"
    await add_moderator(migrated, mod, ("discord", guild))
    await add_moderator(migrated, outsider, ("discord", other_guild))
    env = review_env(settings, discord, free_port())
    # The review app also serves the Discord interactions endpoint (disputes from the bot).
    key = Ed25519PrivateKey.generate()
    env["WARDEN_BOTS__DISCORD_PUBLIC_KEY"] = (
        key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    )
    base = f"http://127.0.0.1:{env['WARDEN_REVIEW__PORT']}"
    actioner = service_factory(
        "actioner", **{k: v for k, v in env.items() if "REVIEW" not in k and "BOTS" not in k}
    )
    review = service_factory("review", **env)

    # Two MEDIUM lines: the second climbs the ladder to a 600 s timeout on the fake Discord.
    first, second = snowflake(), snowflake()
    topic = VERDICTS.name_for(settings.kafka.topic_suffix)
    for message_id, text in (
        (first, "you are a clown"),
        (second, "clown <script>alert(1)</script>"),
    ):
        v = verdict(message_id, guild, user, text)
        await producer.send_and_wait(topic, v.to_json_bytes(), key=v.key.encode())
    await started(review, base)
    await until(lambda: (guild, user) in discord.timeouts, "the timeout", 40)
    assert actioner.alive()

    # The author disputes through the Discord bot (a signed /dispute interaction from the fake
    # platform, sent twice: one dispute), then two more disputes of the same action arrive on
    # the topic (one naming a line of its own, as Twitch's !dispute does), the first delivered
    # twice: one row, counted three times.
    link = f"https://discord.com/channels/{guild}/100/{second}"
    for _ in range(2):
        status, reply = await send_interaction(
            f"{base}/bots/discord/interactions",
            key,
            interaction(
                2, guild=guild, user=user, data=command("dispute", message=link, reason="a quote")
            ),
        )
        assert status == 200 and reply["data"]["flags"] == 64, reply
    feedback = FEEDBACK.name_for(settings.kafka.topic_suffix)
    # A record that is no Feedback: a dead letter, and the consumer goes on.
    await producer.send_and_wait(feedback, b'{"kind": "dispute"}', key=b"broken")
    for fb in (
        dispute("d1", second, guild, user, "it was a joke"),
        dispute("d2", snowflake(), guild, user, "please look again"),
        dispute("d1", second, guild, user, "it was a joke"),
    ):
        fb = fb.model_copy(update={"feedback_id": f"{guild}-{fb.feedback_id}"})
        await producer.send_and_wait(feedback, fb.to_json_bytes(), key=fb.message_id.encode())

    async with (
        httpx.AsyncClient(base_url=base, timeout=15) as anonymous,
        httpx.AsyncClient(base_url=base, timeout=15) as client,
        httpx.AsyncClient(base_url=base, timeout=15) as stranger,
    ):
        # Not signed in: the API says 401, a page sends to the sign-in.
        assert (await anonymous.get("/api/queue")).status_code == 401
        page = await anonymous.get(f"/messages/{second}")
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        assert (await anonymous.post(f"/messages/{second}/overturn")).status_code == 303

        csrf = await sign_in(client, mod)

        async def disputed() -> list[dict[str, Any]]:
            queue = (await client.get("/api/queue")).json()
            return [d for d in queue["disputes"] if d["message_id"] == second and d["count"] == 3]

        (row,) = await until(disputed, "the dispute in the queue")
        assert row["user_id"] == user and row["action_id"] == f"{second}:timeout"

        # Another community's moderator: not found, also for a forged overturn.
        stranger_csrf = await sign_in(stranger, outsider)
        assert (await stranger.get(f"/messages/{second}")).status_code == 404
        assert (await stranger.get(f"/api/messages/{second}")).status_code == 404
        forged = await stranger.post(
            f"/messages/{second}/overturn", data={"note": "mine now", "csrf": stranger_csrf}
        )
        assert forged.status_code == 404
        assert not (await stranger.get("/api/queue")).json()["disputes"]
        # A POST without the session's CSRF token is refused.
        no_csrf = await client.post(f"/messages/{second}/overturn", data={"note": "x"})
        assert no_csrf.status_code == 403

        # Overturn twice at once: one reversal on the platform.
        note = {"note": "a joke between friends", "csrf": csrf}
        answers = await asyncio.gather(
            client.post(f"/messages/{second}/overturn", data=note),
            client.post(f"/messages/{second}/overturn", data=note),
        )
        assert [a.status_code for a in answers] == [303, 303]
        shown = (await client.get(f"/messages/{second}")).text
        assert "Overturned" in shown and "a joke between friends" in shown
        # The user's text is shown, never run.
        assert "<script>alert(1)" not in shown and "&lt;script&gt;alert(1)" in shown

        async def lifted() -> bool:
            return (guild, user) not in discord.timeouts

        await until(lifted, "the timeout lifted")
        detail = (await client.get(f"/api/messages/{second}")).json()
        assert detail["dispute"]["state"] == "overturned"
        assert detail["dispute"]["resolved_by"] == mod
        undo = [a for a in detail["actions"] if a["reverses"]]
        assert [(a["kind"], a["state"]) for a in undo] == [("untimeout", "done")]
        # The strike of the message is pardoned, with who and why.
        assert detail["strikes"] and all(s["pardoned_at"] for s in detail["strikes"])
        assert detail["strikes"][0]["pardoned_by"] == f"review:{mod}"

    await asyncio.sleep(0.5)  # a second platform call, if there were one, has had its time
    assert discord.effect_counts()[("untimeout", f"{guild}:{user}")] == 1
    nulls = [
        r
        for r in discord.requests
        if r.bucket == "member-modify"
        and (r.body or {}).get("communication_disabled_until") is None
    ]
    assert len(nulls) == 1
    with psycopg.connect(settings.postgres.dsn.get_secret_value()) as conn:
        reviews = conn.execute(
            "SELECT moderator, outcome, note FROM reviews WHERE message_id = %s", (second,)
        ).fetchall()
    assert reviews == [(mod, "overturned", "a joke between friends")]

    # The reversal's result and the moderator's label are on their topics.
    suffix = settings.kafka.topic_suffix
    results = await consume(settings, ACTIONS.name_for(suffix), count=3, services=[review])
    assert any(
        r["kind"] == "untimeout" and r["status"] == "done" and r["message_id"] == second
        for r in results
    ), json.dumps(results)[:2000]
    labels = await consume(settings, feedback, count=5, services=[review])
    # This message's label. (The service publishes, when it starts, every review left
    # unpublished in this database, also other tests' rows; delivery is at-least-once, so a
    # redelivered label has the same feedback_id.)
    (label,) = {
        x["feedback_id"]: x for x in labels if x["kind"] == "review" and x["message_id"] == second
    }.values()
    assert label["label_toxic"] is False and label["overturned"] is True
    assert label["user"] == mod and label["source"] == "review"
    assert label["action_id"] == f"{second}:timeout"
    (letter,) = await consume(settings, DEADLETTER.name_for(suffix), count=1, services=[review])
    assert letter["service"] == "review" and letter["source_topic"] == feedback
    assert letter["error_type"] == "ValidationError"


async def resolver_for(settings: Settings, db: Any, discord: DiscordServer) -> Any:
    """The review service's resolver in this process, acting on the fake Discord."""
    from pydantic import SecretStr

    from actioners.executors import Router
    from actioners.platforms.discord import DiscordExecutor
    from actioners.publisher import Publisher
    from actioners.review.resolutions import Resolver
    from core.clients import kafka_producer
    from core.settings import DiscordSettings

    executor = Router(
        {
            Platform.DISCORD: DiscordExecutor(
                DiscordSettings(token=SecretStr(DISCORD_TOKEN), api_base_url=discord.base_url)
            )
        }
    )
    await executor.start()
    publisher = Publisher(lambda: kafka_producer(settings.kafka), service="review")
    await publisher.start()
    review = settings.review.model_copy(update={"reversal_wait_s": 5.0})
    return Resolver(settings.model_copy(update={"review": review}), db, executor, publisher)


async def close_resolver(resolver: Any) -> None:
    await resolver.close()
    await resolver.publisher.stop()
    await resolver.dispatcher.executor.close()


async def test_a_restart_in_the_middle_of_an_overturn_does_not_lift_twice(
    migrated: Settings, settings: Settings, db: Any, discord: DiscordServer
) -> None:
    """The platform call hangs (the service dies while Discord is acting): the next start
    reconciles the reversal from the ledger, and the platform changes once."""
    guild, user = snowflake(), snowflake()
    message_id = await seed_timeout(settings, discord, guild, user, "you absolute clown")
    hung, released = asyncio.Event(), asyncio.Event()

    async def hang(kind: str, target: str) -> None:
        if kind == "untimeout":
            hung.set()
            await released.wait()  # answers only after the "crash", to nobody

    discord.on_effect = hang
    first = await resolver_for(settings, db, discord)
    overturn = asyncio.create_task(
        first.overturn("mod", message_id, [("discord", guild)], "not abuse")
    )
    await asyncio.wait_for(hung.wait(), 15)
    # The "crash": everything of the first service is cancelled mid-call.
    overturn.cancel()
    for task in list(first._tasks):
        task.cancel()
    await asyncio.gather(overturn, *first._tasks, return_exceptions=True)
    await close_resolver(first)
    discord.on_effect = None
    released.set()
    assert (guild, user) not in discord.timeouts  # Discord did act before the crash

    # Another environment sharing the database has an unpublished review of its own: it is
    # that environment's to publish, on its own feedback topic, never this one's.
    foreign = f"other-env-{message_id}"
    async with db.transaction() as cur:
        await cur.execute(
            "INSERT INTO reviews (message_id, platform, community, moderator, outcome, note,"
            " feedback_topic) VALUES (%s, 'discord', %s, 'mod', 'upheld', 'n', %s)",
            (foreign, guild, "moderation.feedback.v1.another-environment"),
        )
    second = await resolver_for(settings, db, discord)
    try:
        await second.resume()
        await second.resume()  # a further start finds nothing left
    finally:
        await close_resolver(second)
    async with db.transaction() as cur:
        await cur.execute("SELECT published FROM reviews WHERE message_id = %s", (foreign,))
        assert await cur.fetchone() == (False,)
        await cur.execute("DELETE FROM reviews WHERE message_id = %s", (foreign,))
    assert discord.effect_counts()[("untimeout", f"{guild}:{user}")] == 1
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT state, detail, published FROM action_ledger WHERE action_id = %s",
            (f"{message_id}:timeout:undo",),
        )
        state, detail, published = await cur.fetchone()
        await cur.execute("SELECT published FROM reviews WHERE message_id = %s", (message_id,))
        (review_published,) = await cur.fetchone()
    assert (state, published, review_published) == ("done", True, True)
    assert "reconciled after a restart" in detail
    # A second overturn is refused; nothing more reaches the platform.
    again = await resolver_for(settings, db, discord)
    try:
        with pytest.raises(ResolutionError, match="already overturned"):
            await again.overturn("mod2", message_id, [("discord", guild)], "again")
        with pytest.raises(NotFound):
            await again.uphold("mod2", message_id, [("discord", snowflake())], "not mine")
    finally:
        await close_resolver(again)
    assert discord.effect_counts()[("untimeout", f"{guild}:{user}")] == 1


async def test_holds_are_approved_or_dismissed_once_and_upholds_label_the_line(
    migrated: Settings, settings: Settings, db: Any, discord: DiscordServer
) -> None:
    guild, bad, fine = snowflake(), snowflake(), snowflake()
    approved = await seed_ban_hold(settings, guild, bad)
    dismissed = await seed_ban_hold(settings, guild, fine)
    upheld = await seed_timeout(settings, discord, guild, snowflake(), "fair timeout")
    mine = [("discord", guild)]
    resolver = await resolver_for(settings, db, discord)
    try:
        await resolver.resolve_hold("mod", approved, mine, "a threat", approve=True)
        with pytest.raises(ResolutionError, match="reviewed already"):
            await resolver.resolve_hold("mod", approved, mine, "again", approve=True)
        await resolver.resolve_hold("mod", dismissed, mine, "banter", approve=False)
        await resolver.uphold("mod", upheld, mine, "fair")
        with pytest.raises(ResolutionError, match="already upheld"):
            await resolver.uphold("mod", upheld, mine, "fair")
    finally:
        await close_resolver(resolver)
    assert discord.effect_counts()[("ban", f"{guild}:{bad}")] == 1
    assert (guild, fine) not in discord.bans
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT message_id, outcome, reviewed_by FROM holds WHERE message_id = ANY(%s)"
            " ORDER BY outcome",
            ([approved, dismissed],),
        )
        holds = await cur.fetchall()
    assert holds == [(approved, "approved", "mod"), (dismissed, "dismissed", "mod")]
    labels = await consume(settings, FEEDBACK.name_for(settings.kafka.topic_suffix), count=3)
    assert {(x["message_id"], x["label_toxic"], x["overturned"]) for x in labels} == {
        (approved, True, False),
        (dismissed, False, False),
        (upheld, True, False),
    }
    assert len(discord.effects) == 1  # the approved ban, nothing else


def test_moderator_account_changes_are_audited_with_who_made_them(
    migrated: Settings,
) -> None:
    name, guild = f"acct_{uuid.uuid4().hex[:8]}", snowflake()
    env = service_env(migrated)
    added = subprocess.run(
        [
            sys.executable,
            "-m",
            "warden",
            "moderators",
            "add",
            name,
            "--password-stdin",
            "--community",
            f"discord:{guild}",
        ],
        input=PASSWORD + "\n",
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    revoked = subprocess.run(
        [
            sys.executable,
            "-m",
            "warden",
            "moderators",
            "revoke",
            name,
            "--community",
            f"discord:{guild}",
            "--disable",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert revoked.returncode == 0, revoked.stderr
    with psycopg.connect(migrated.postgres.dsn.get_secret_value()) as conn:
        rows = conn.execute(
            "SELECT change, communities, changed_by FROM moderator_changes"
            " WHERE moderator = %s ORDER BY id",
            (name,),
        ).fetchall()
    assert [(change, communities) for change, communities, _ in rows] == [
        ("added", [f"discord:{guild}"]),
        ("revoked", [f"discord:{guild}"]),
        ("disabled", []),
    ]
    # The operator as the actioner's commands record it: the OS account and the PG role.
    assert all(by.startswith("cli:") and "(pg: " in by for _, _, by in rows), rows
