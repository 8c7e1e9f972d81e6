"""``warden privacy``: forget a user, opt them out or in, and run the retention job once;
``warden stats``: a community's moderation numbers. docs/privacy.md says what each keeps."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import click

from core.commandline import Age, settings_from

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from actioners.database import Database
    from core.settings import Settings

T = TypeVar("T")
PLATFORMS = click.Choice(["discord", "slack", "twitch", "webhook", "replay"])
platform_option = click.option(
    "--platform", type=PLATFORMS, default="discord", show_default=True, help="The community's."
)
community_option = click.option(
    "--community", required=True, help="Guild, workspace or channel id."
)


@click.group()
def privacy() -> None:
    """A user's data: forget it, opt out of (or back into) moderation, and retention.

    \b
    forget USER   delete the user's data in a community (Redis features, strikes,
                  decisions, holds, disputes, explanations); keep the audit of actions
                  and pardons pseudonymised (WARDEN_PRIVACY__PSEUDONYM_SECRET); record the
                  deletion so that every later retrain leaves the user out
    opt-out USER  drop the user's messages at ingest from now on (the Redis set of
                  WARDEN_INGEST__OPT_OUT_KEY; the adapters drop them unless run
                  with WARDEN_INGEST__OPT_OUT=none)
    opt-in USER   take them off that set again
    purge         delete PostgreSQL rows older than WARDEN_PRIVACY__*_DAYS (the actioner
                  does it every WARDEN_PRIVACY__PURGE_EVERY_S)

    Users may ask for the same themselves with the bots (/privacy on Discord, /warden privacy on
    Slack, !warden forget|optout|optin on Twitch). Kafka topics keep records until their
    retention ends: docs/privacy.md.
    """


def _redis_errors(work: Callable[[aioredis.Redis], Awaitable[T]], settings: Settings) -> T:
    """``work(client)`` on a Redis client of its own; Redis being away is one clear line."""
    from redis.exceptions import RedisError

    from core.clients import redis_client
    from core.errors import TransientError

    async def go() -> T:
        client = redis_client(settings.redis)
        try:
            return await work(client)
        finally:
            await client.aclose()

    try:
        return asyncio.run(go())
    except (RedisError, OSError) as exc:
        raise TransientError(f"Redis unavailable (WARDEN_REDIS__URL): {exc}") from exc


def _with_db_and_redis(
    settings: Settings, work: Callable[[Database, aioredis.Redis], Awaitable[T]]
) -> T:
    """``work(db, redis)``; PostgreSQL's and Redis's failures become one clear line."""
    from redis.exceptions import RedisError

    from actioners.cli import _with_db
    from core.clients import redis_client
    from core.errors import TransientError

    async def both(db: Database) -> T:
        client = redis_client(settings.redis)
        try:
            return await work(db, client)
        except (RedisError, OSError) as exc:
            raise TransientError(f"Redis unavailable (WARDEN_REDIS__URL): {exc}") from exc
        finally:
            await client.aclose()

    return _with_db(settings, both)


@privacy.command()
@click.argument("user")
@community_option
@platform_option
@click.option("--by", "claimed", default=None, help="Who asks (recorded as a claim).")
@click.option("--json", "as_json", is_flag=True, help="What was done, as one JSON object.")
@click.pass_context
def forget(
    ctx: click.Context,
    user: str,
    community: str,
    platform: str,
    claimed: str | None,
    as_json: bool,
) -> None:
    """Delete USER's data in a community, keep the audit pseudonymised, and leave the user
    out of every later retrain (also `warden models forget-user`). Run it again to finish one
    that failed half-way: every step can be repeated.

    The request is recorded as by the OS account and PostgreSQL role running the command.
    """
    from actioners.commands import operator
    from core import privacy as core_privacy

    settings = settings_from(ctx)
    core_privacy.user_key(platform, community, user)  # a bad id fails before connecting
    core_privacy.require_secret(settings)

    async def work(db: Database, client: aioredis.Redis) -> core_privacy.ForgetReport:
        who = await operator(db, claimed)
        return await core_privacy.forget(
            db.transaction, client, settings, platform, community, user, who
        )

    report = _with_db_and_redis(settings, work)
    if as_json:
        click.echo(json.dumps(report.__dict__))
    else:
        click.echo(report.summary())


def _opt(ctx: click.Context, user: str, community: str, platform: str, out: bool) -> None:
    from core import privacy as core_privacy

    settings = settings_from(ctx)
    key = core_privacy.user_key(platform, community, user)
    change = core_privacy.opt_out if out else core_privacy.opt_in
    changed = _redis_errors(lambda client: change(client, settings, key), settings)
    if out:
        state = "opted out" if changed else "was already opted out"
        click.echo(
            f"{key}: {state}; ingest drops their messages" + core_privacy.opt_out_note(settings)
        )
    else:
        state = "opted back in" if changed else "was not opted out"
        click.echo(f"{key}: {state}")


@privacy.command("opt-out")
@click.argument("user")
@community_option
@platform_option
@click.pass_context
def opt_out(ctx: click.Context, user: str, community: str, platform: str) -> None:
    """Drop USER's messages at ingest from now on (before anything stores them)."""
    _opt(ctx, user, community, platform, out=True)


@privacy.command("opt-in")
@click.argument("user")
@community_option
@platform_option
@click.pass_context
def opt_in(ctx: click.Context, user: str, community: str, platform: str) -> None:
    """Take USER off the opt-out set: their messages are moderated again."""
    _opt(ctx, user, community, platform, out=False)


@privacy.command()
@click.option("--dry-run", is_flag=True, help="Count the expired rows; delete nothing.")
@click.pass_context
def purge(ctx: click.Context, dry_run: bool) -> None:
    """Delete the PostgreSQL rows older than their table's WARDEN_PRIVACY__<TABLE>_DAYS once
    (the actioner does it every WARDEN_PRIVACY__PURGE_EVERY_S)."""
    import psycopg

    from actioners.retention import RULES, cutoff_age, purge_once
    from core.errors import TransientError

    settings = settings_from(ctx)
    try:
        counts = asyncio.run(purge_once(settings, dry_run=dry_run))
    except (psycopg.Error, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TransientError(f"PostgreSQL (WARDEN_POSTGRES__DSN): {first}") from exc
    if counts is None:
        click.echo("another process (an actioner) is purging now; nothing done")
        return
    verb = "would delete" if dry_run else "deleted"
    for rule in RULES:
        days = cutoff_age(settings.privacy, rule) / timedelta(days=1)
        click.echo(f"{rule.table}: {verb} {counts[rule.table]} row(s) older than {days:g} days")


@click.command()
@click.option("--community", default=None, help="Guild, workspace or channel id (else all).")
@platform_option
@click.option("--user", default=None, help="One user's numbers (needs --community).")
@click.option(
    "--since", type=Age(), default="7d", show_default=True, help="How far back: 30m, 24h, 7d."
)
@click.option("--top", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per community.")
@click.pass_context
def stats(
    ctx: click.Context,
    community: str | None,
    platform: str,
    user: str | None,
    since: timedelta,
    top: int,
    as_json: bool,
) -> None:
    """Per-community counts of messages, flags and actions, and the most-actioned users.

    Messages come from the scorer's 7-day counters in Redis, flags from the decisions, actions
    from the audit. Users who opted out or were forgotten are never named (their rows still
    count in the totals). Without --community, every community with decisions or actions
    since then.
    """
    from actioners import stats as stats_module

    settings = settings_from(ctx)
    if user is not None and community is None:
        raise click.UsageError("--user needs --community")

    async def work(db: Database, client: aioredis.Redis) -> list[stats_module.Counts]:
        async with db.transaction() as cur:
            if user is not None and community is not None:
                return [
                    await stats_module.user_stats(
                        cur, client, settings, platform, community, user, since
                    )
                ]
            communities = (
                [(platform, community)] if community is not None else await _communities(cur, since)
            )
            return [
                await stats_module.community_stats(cur, client, settings, p, c, since, top)
                for p, c in communities
            ]

    found = _with_db_and_redis(settings, work)
    if not found:
        click.echo("no decisions or actions in that time")
    for counts in found:
        if as_json:
            click.echo(json.dumps(counts.as_dict()))
        elif counts.user is not None:
            click.echo(stats_module.render_user(counts))
        else:
            click.echo(stats_module.render_community(counts))


async def _communities(cur: Any, since: timedelta) -> list[tuple[str, str]]:
    """Every (platform, community) with a decision or an action since then."""
    await cur.execute(
        "SELECT platform, community FROM decisions WHERE decided_at >= now() - %(since)s"
        " UNION SELECT platform, community FROM action_audit"
        " WHERE recorded_at >= now() - %(since)s ORDER BY 1, 2",
        {"since": since},
    )
    return [(str(p), str(c)) for p, c in await cur.fetchall()]
