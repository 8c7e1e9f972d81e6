"""A user's right to be forgotten and to opt out, across every service's store.

Two services must not import each other, and a forget request arrives both from the CLI
(``warden privacy forget``) and from the bots (the user's own ``/privacy forget``), so what a
user leaves behind in each store is listed here, one floor below the services:

PostgreSQL (one transaction; docs/privacy.md has the table-by-table list)
    Deleted: ``decisions`` (the text, the verdict, the features), ``strikes``, ``holds`` (the
    text), ``disputes`` and their ``dispute_feedback``, ``explanations`` of the user's messages.
    Kept pseudonymised, as the audit of what the platform was asked to do and of what
    moderators did: ``action_audit``, ``action_ledger`` (finished entries; the request loses
    its notice), ``pardons``; the user id becomes :func:`pseudonym` (a keyed hash, the same for
    every row of the user, so the audit still reads "this account had three actions") and
    free text that names the user is removed. ``reviews`` hold no user id; the notes
    moderators wrote on the user's messages are removed. An entry still being acted on
    (``pending``/``in_flight``) is left as it is and reported: run forget again once it is done.
    Recorded: ``data_deletions`` (migration 0007) gets the user, so that every later retrain
    leaves their messages out (``retrain.feedback``): the one row that keeps the user id, as
    the record of the request that a replay or retrain must honour.

Redis (the layouts of ``scorers.context_store``, ``scorers.stream_state`` and
``actioners.chatlog``; the integration test writes them with those modules and checks that
nothing of the user is left)
    Deleted: ``wf:u:<user>`` (context features), ``wd:f:<user>`` and ``wd:s:<user>`` (flood and
    spam windows), ``warden:chat:<user>`` (the review page's recent lines). Removed from shared
    keys: the user's entries in the raid windows of the community (``wd:ra:``, ``wd:rm:``,
    ``wd:rd:``).

Opting out (:func:`opt_out`) adds the user key to the Redis set that ingest's ``RedisOptOut``
drops messages by (``WARDEN_INGEST__OPT_OUT=redis``, the default); it is kept through a
forget, since it is the user's own standing request.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, LiteralString

from core.errors import ConfigError, WardenError

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from psycopg import AsyncCursor

    from core.settings import Settings

logger = logging.getLogger(__name__)

SECRET_VARIABLE = "WARDEN_PRIVACY__PSEUDONYM_SECRET"  # noqa: S105 - its name
PSEUDONYM_PREFIX = "anon-"
REMOVED = "[removed: user data deleted]"
# Redis keys named by the user key (platform:community:user), by their owners.
USER_KEY_PREFIXES = (
    "wf:u:",  # scorers.context_store: per-user context features
    "wd:f:",  # scorers.stream_state: flood window (message ids, short texts)
    "wd:s:",  # scorers.stream_state: spam index
    "warden:chat:",  # actioners.chatlog: the review page's recent lines
)
# scorers.stream_state's raid keys under the channel key (platform:community:channel:fp).
RAID_ACCOUNTS, RAID_LINES, RAID_STATE = "wd:ra:", "wd:rm:", "wd:rd:"
RAID_SEP = "\x1f"
SCAN_COUNT = 500

# The record that retraining honours (``retrain.registry`` writes it with the same statement
# for ``warden models forget-user``).
RECORD_DELETION: LiteralString = (
    "INSERT INTO data_deletions (platform, community, user_id, requested_by)"
    " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
# Message ids the user's rows name, for the tables keyed by message id only.
_MESSAGE_IDS = """
SELECT message_id FROM decisions WHERE platform = %(p)s AND community = %(c)s AND user_id = %(u)s
UNION SELECT message_id FROM holds WHERE platform = %(p)s AND community = %(c)s AND user_id = %(u)s
UNION SELECT message_id FROM disputes
  WHERE platform = %(p)s AND community = %(c)s AND user_id = %(u)s
UNION SELECT message_id FROM action_ledger
  WHERE platform = %(p)s AND community = %(c)s AND user_id = %(u)s
UNION SELECT message_id FROM action_audit
  WHERE platform = %(p)s AND community = %(c)s AND user_id = %(u)s
"""
# (what happens, table, statement), in this order: reviews lose their dispute before the
# disputes go. A free-text column of a kept row that names the user is replaced by REMOVED (it
# may be the platform's answer, "user <id> banned", or a moderator's words).
_STEPS: tuple[tuple[str, str, LiteralString], ...] = (
    (
        "deleted",
        "explanations",
        "DELETE FROM explanations WHERE message_id = ANY(%(ids)s::text[])"
        " AND coalesce(document->>'platform', %(p)s) = %(p)s"
        " AND coalesce(document->>'community', %(c)s) = %(c)s",
    ),
    (
        "pseudonymised",
        "reviews",
        "UPDATE reviews SET note = %(removed)s, dispute_id = NULL"
        " WHERE platform = %(p)s AND community = %(c)s AND (message_id = ANY(%(ids)s::text[])"
        " OR dispute_id IN (SELECT id FROM disputes"
        " WHERE platform = %(p)s AND community = %(c)s AND user_id = %(u)s))",
    ),
    (
        "deleted",
        "disputes",
        "DELETE FROM disputes WHERE platform = %(p)s AND community = %(c)s AND user_id = %(u)s",
    ),
    (
        "deleted",
        "holds",
        "DELETE FROM holds WHERE platform = %(p)s AND community = %(c)s AND user_id = %(u)s",
    ),
    (
        "deleted",
        "decisions",
        "DELETE FROM decisions WHERE platform = %(p)s AND community = %(c)s AND user_id = %(u)s",
    ),
    (
        "deleted",
        "strikes",
        "DELETE FROM strikes WHERE platform = %(p)s AND community = %(c)s AND user_id = %(u)s",
    ),
    (
        "pseudonymised",
        "pardons",
        "UPDATE pardons SET user_id = %(alias)s,"
        " reason = CASE WHEN strpos(reason, %(u)s) > 0 THEN %(removed)s ELSE reason END"
        " WHERE platform = %(p)s AND community = %(c)s AND user_id = %(u)s",
    ),
    (
        "pseudonymised",
        "action_audit",
        "UPDATE action_audit SET user_id = %(alias)s,"
        " detail = CASE WHEN strpos(detail, %(u)s) > 0 THEN %(removed)s ELSE detail END,"
        " reason = CASE WHEN strpos(reason, %(u)s) > 0 THEN %(removed)s ELSE reason END"
        " WHERE platform = %(p)s AND community = %(c)s AND user_id = %(u)s",
    ),
    (
        # Finished entries only: an open one is still being acted on, on the user.
        "pseudonymised",
        "action_ledger",
        "UPDATE action_ledger SET user_id = %(alias)s,"
        " detail = CASE WHEN strpos(detail, %(u)s) > 0 THEN %(removed)s ELSE detail END,"
        " request = (request - 'notice') || jsonb_build_object('user', %(alias)s::text, 'reason',"
        " CASE WHEN strpos(request->>'reason', %(u)s) > 0 THEN %(removed)s::text"
        " ELSE coalesce(request->>'reason', '') END)"
        " WHERE platform = %(p)s AND community = %(c)s AND user_id = %(u)s"
        " AND state IN ('done', 'skipped', 'failed') AND published",
    ),
)


class PrivacyError(WardenError):
    """A privacy request that cannot be carried out as asked (a bad user key)."""


def user_key(platform: str, community: str, user: str) -> str:
    """``platform:community:user``, the key the topics and the opt-out set use."""
    for name, part in (("platform", platform), ("community", community), ("user", user)):
        if not part or ":" in part or len(part) > 200 or not part.isprintable():
            raise PrivacyError(f"{name} {part!r}: expected a non-empty id without ':'")
    return f"{platform}:{community}:{user}"


def require_secret(settings: Settings) -> bytes:
    """The pseudonym key, or ConfigError naming the variable."""
    secret = settings.privacy.pseudonym_secret
    value = secret.get_secret_value() if secret is not None else ""
    if len(value) < 16:
        raise ConfigError(
            f"{SECRET_VARIABLE}: needed (at least 16 characters) to pseudonymise the audit rows"
            " a forget keeps"
        )
    return value.encode()


def pseudonym(secret: bytes, platform: str, community: str, user: str) -> str:
    """The stand-in for a forgotten user: ``anon-`` and 24 hex digits of HMAC-SHA256 of the user
    key. Without the secret it cannot be turned back into the user, nor be recomputed from a
    guessed user id."""
    key = user_key(platform, community, user).encode()
    return PSEUDONYM_PREFIX + hmac.new(secret, key, hashlib.sha256).hexdigest()[:24]


@dataclass
class ForgetReport:
    """What a forget did, per store and table (rows or keys)."""

    key: str
    deleted: dict[str, int] = field(default_factory=dict)
    pseudonymised: dict[str, int] = field(default_factory=dict)
    open_actions: int = 0
    recorded: bool = False

    def summary(self) -> str:
        def join(counts: dict[str, int]) -> str:
            shown = [f"{n} {name}" for name, n in counts.items() if n]
            return ", ".join(shown) or "nothing"

        text = f"{self.key}: deleted {join(self.deleted)}; pseudonymised {join(self.pseudonymised)}"
        if self.open_actions:
            text += (
                f"; {self.open_actions} action(s) still under way were left: run forget again"
                " once they are done"
            )
        return text + "; later retrains leave this user's data out"


async def forget_postgres(
    cur: AsyncCursor[Any],
    settings: Settings,
    platform: str,
    community: str,
    user: str,
    requested_by: str,
    report: ForgetReport,
) -> None:
    """Delete or pseudonymise the user's rows; run it inside one transaction."""
    alias = pseudonym(require_secret(settings), platform, community, user)
    args: dict[str, Any] = {"p": platform, "c": community, "u": user, "alias": alias}
    args["removed"] = REMOVED
    await cur.execute(_MESSAGE_IDS, args)
    args["ids"] = [str(row[0]) for row in await cur.fetchall()]
    for kind, table, statement in _STEPS:
        await cur.execute(statement, args)
        getattr(report, kind)[table] = max(cur.rowcount, 0)
    await cur.execute(
        "SELECT count(*) FROM action_ledger"
        " WHERE platform = %(p)s AND community = %(c)s AND user_id = %(u)s",
        args,
    )
    row = await cur.fetchone()
    report.open_actions = int(row[0]) if row else 0
    await cur.execute(RECORD_DELETION, (platform, community, user, requested_by))
    report.recorded = cur.rowcount > 0


async def forget_redis(
    client: aioredis.Redis, platform: str, community: str, user: str, report: ForgetReport
) -> None:
    """Delete the user's keys and take their entries out of the community's raid windows."""
    key = user_key(platform, community, user)
    deleted = await client.delete(*(prefix + key for prefix in USER_KEY_PREFIXES))
    report.deleted["redis keys"] = int(deleted)
    entries = 0
    channels = f"{glob_escape(platform)}:{glob_escape(community)}:*"
    async for name in client.scan_iter(match=RAID_ACCOUNTS + channels, count=SCAN_COUNT):
        entries += int(await client.zrem(name, user))
    async for raw in client.scan_iter(match=RAID_STATE + channels, count=SCAN_COUNT):
        name = _text(raw)
        fields: dict[Any, Any] = await client.hgetall(name)  # type: ignore[misc]
        ids = [
            _text(f)[2:]
            for f, v in fields.items()
            if _text(f).startswith("m:") and _raid_author(_text(v)) == user
        ]
        if ids:
            await client.hdel(name, *(f"{p}:{i}" for i in ids for p in ("m", "r")))  # type: ignore[misc]
            await client.zrem(RAID_LINES + name.removeprefix(RAID_STATE), *ids)
            entries += len(ids)
    report.deleted["redis raid entries"] = entries


def glob_escape(part: str) -> str:
    """``part`` matched literally inside a Redis SCAN pattern."""
    return "".join("\\" + ch if ch in "*?[]\\^" else ch for ch in part)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _raid_author(detail: str) -> str | None:
    """The user of a raid line's detail ("sent ms, user, harmful, labels, text")."""
    parts = detail.split(RAID_SEP, 2)
    return parts[1] if len(parts) > 1 else None


async def forget(
    transaction: Callable[[], AbstractAsyncContextManager[AsyncCursor[Any]]],
    client: aioredis.Redis,
    settings: Settings,
    platform: str,
    community: str,
    user: str,
    requested_by: str,
) -> ForgetReport:
    """Forget the user everywhere: PostgreSQL in one ``transaction()``, committed, then Redis.

    Redis goes after the commit: a failure there leaves the request recorded and the rows
    gone, and the same request made again finishes it (every step can be repeated).
    """
    report = ForgetReport(user_key(platform, community, user))
    async with transaction() as cur:
        await forget_postgres(cur, settings, platform, community, user, requested_by, report)
    await forget_redis(client, platform, community, user, report)
    logger.info(
        "forgot a user of %s:%s for %s (%d rows and keys deleted)",
        platform,
        community,
        requested_by,
        sum(report.deleted.values()),
    )
    return report


async def opt_out(client: aioredis.Redis, settings: Settings, key: str) -> bool:
    """Add a user key to the opt-out set; True when it was not there."""
    return bool(await client.sadd(settings.ingest.opt_out_key, key))  # type: ignore[misc]


async def opt_in(client: aioredis.Redis, settings: Settings, key: str) -> bool:
    """Take a user key out of the opt-out set; True when it was there."""
    return bool(await client.srem(settings.ingest.opt_out_key, key))  # type: ignore[misc]


async def opted_out(client: aioredis.Redis, settings: Settings) -> frozenset[str]:
    """Every opted-out user key."""
    members: Iterable[bytes | str] = await client.smembers(settings.ingest.opt_out_key)  # type: ignore[misc]
    return frozenset(_text(m) for m in members)


def opt_out_note(settings: Settings) -> str:
    """A warning when this process's settings would not drop opted-out users at ingest."""
    if settings.ingest.opt_out == "redis":
        return ""
    return (
        " (note: WARDEN_INGEST__OPT_OUT is not 'redis' here: the ingest adapters drop opted-out"
        " users only when it is)"
    )
