"""``warden actioner``, ``warden policy show|set|preset``, ``warden strikes``, ``warden pardon``."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from core.commandline import settings_from

if TYPE_CHECKING:
    from actioners.database import Database
    from actioners.policystore import StoredPolicy
    from core.settings import Settings

T = TypeVar("T")
PLATFORMS = click.Choice(["discord", "slack", "twitch", "webhook", "replay"])
platform_option = click.option(
    "--platform", type=PLATFORMS, default="discord", show_default=True, help="The community's."
)


@click.command()
@click.pass_context
def actioner(ctx: click.Context) -> None:
    """Turn moderation.verdicts.v1 into platform actions, audit rows and ActionResults."""
    from actioners.platforms import build_executor
    from actioners.service import serve
    from core import metrics

    settings = settings_from(ctx)
    executor = build_executor(settings)
    metrics.serve(settings.metrics.actioner_port, settings.metrics.host)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, executor, stop)

    asyncio.run(go())


def _with_db(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """``work(db)`` on a connection of its own; PostgreSQL's failures become one clear line."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from actioners.database import Database, DatabaseUnavailable
    from core.errors import ConfigError, TransientError, WardenError

    async def go() -> T:
        db = await Database.connect(settings.postgres, report_loss=False)
        try:
            await db.check_schema()
            return await work(db)
        finally:
            await db.close()

    dsn = settings.postgres.dsn.get_secret_value()
    try:
        password = conninfo_to_dict(dsn).get("password")
    except psycopg.Error as exc:
        problem = _redacted(str(exc).strip(), dsn, None)
        raise ConfigError(f"WARDEN_POSTGRES__DSN: {problem}") from exc
    try:
        return asyncio.run(go())
    except DatabaseUnavailable as exc:
        raise TransientError(
            _redacted(f"{exc} (WARDEN_POSTGRES__DSN={dsn})", dsn, password)
        ) from exc
    except psycopg.Error as exc:
        # Refused rather than away (a missing grant, a constraint): trying again fails again.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        problem = f"PostgreSQL: {type(exc).__name__}: {first}"
        raise WardenError(_redacted(problem, dsn, password)) from exc


def _redacted(text: str, dsn: str, password: object) -> str:
    """``text`` without the password of ``dsn`` (URL ``user:secret@`` or ``password=secret``)."""
    import re

    secrets = set(re.findall(r"://[^:/@]*:([^@]+)@", dsn))
    secrets.update(re.findall(r"password\s*=\s*'?([^\s']+)", dsn))
    if isinstance(password, str) and password:
        secrets.add(password)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _as_operator(
    claimed: str | None, work: Callable[[Database, str], Awaitable[T]]
) -> Callable[[Database], Awaitable[T]]:
    """``work(db, author)`` with the author recorded as the authenticated operator (see
    ``actioners.commands.operator``)."""
    from actioners import commands

    async def signed(db: Database) -> T:
        return await work(db, await commands.operator(db, claimed))

    return signed


IDENTITY_HELP = (
    "A display name, recorded as a claim next to the authenticated identity: the OS account "
    "running the command and the PostgreSQL role, e.g. 'bob (claimed) via cli:alice (pg: "
    "warden)'; without it, 'cli:alice (pg: warden)'."
)


def _echo_policy(stored: StoredPolicy) -> None:
    origin = (
        f"default preset (nothing stored), version {stored.version_id}"
        if stored.is_default
        else f"version {stored.version} ({stored.version_id}) by {stored.author}"
        f" at {stored.created_at:%Y-%m-%d %H:%M:%S %Z}"
        + (f": {stored.note}" if stored.note else "")
    )
    click.echo(f"# {stored.platform}:{stored.community} policy, {origin}")
    click.echo(json.dumps(stored.policy.to_document(), indent=2))


@click.group()
def policy() -> None:
    """A community's moderation policy (versioned in PostgreSQL)."""


@policy.command("show")
@click.argument("community")
@platform_option
@click.option("--history", is_flag=True, help="List every stored version.")
@click.pass_context
def policy_show(ctx: click.Context, community: str, platform: str, history: bool) -> None:
    """Show the policy in force for COMMUNITY (or its history)."""
    from actioners import commands

    settings = settings_from(ctx)
    if history:
        versions = _with_db(settings, lambda db: commands.policy_history(db, platform, community))
        if not versions:
            click.echo(f"{platform}:{community} has no stored policy")
        for stored in versions:
            click.echo(
                f"v{stored.version}  {stored.created_at:%Y-%m-%d %H:%M:%S}  {stored.author}"
                f"  preset={stored.policy.preset} shadow={stored.policy.shadow}  {stored.note}"
            )
        return
    stored = _with_db(
        settings,
        lambda db: commands.show_policy(
            db, platform, community, default_preset=settings.actioner.default_preset
        ),
    )
    _echo_policy(stored)


@policy.command("set")
@click.argument("community")
@click.argument("changes", nargs=-1)
@platform_option
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--note", default="", help="Why (kept with the version).")
@click.option("--author", default=None, help=IDENTITY_HELP)
@click.pass_context
def policy_set(
    ctx: click.Context,
    community: str,
    changes: tuple[str, ...],
    platform: str,
    file: Path | None,
    note: str,
    author: str | None,
) -> None:
    """Change COMMUNITY's policy: KEY=VALUE changes (dotted paths, JSON values) or --file.

    \b
    Examples:
      warden policy set 9812 shadow=true
      warden policy set 9812 thresholds.high=0.8 strike_decay_days=14
      warden policy set 9812 exempt_roles+=moderator channels.5551.monitored_only=true

    The version records who stored it: the OS account and the PostgreSQL role (see --author).
    """
    from actioners import commands
    from actioners.policy import Policy, PolicyChangeError, parse_value

    settings = settings_from(ctx)
    if file is None and not changes:
        raise click.UsageError("give KEY=VALUE changes or --file")
    parsed: dict[str, Any] = {}
    for change in changes:
        key, sep, value = change.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{change!r} is not KEY=VALUE", param_hint="CHANGES")
        parsed[key.strip()] = parse_value(value)
    try:
        if file is not None:
            whole = Policy.model_validate_json(file.read_bytes())
            stored = _with_db(
                settings,
                _as_operator(
                    author,
                    lambda db, who: commands.replace_policy(
                        db, platform, community, whole, author=who, note=note
                    ),
                ),
            )
            if parsed:
                stored = _with_db(
                    settings,
                    _as_operator(
                        author,
                        lambda db, who: commands.set_policy(
                            db, platform, community, parsed, author=who, note=note
                        ),
                    ),
                )
        else:
            stored = _with_db(
                settings,
                _as_operator(
                    author,
                    lambda db, who: commands.set_policy(
                        db,
                        platform,
                        community,
                        parsed,
                        author=who,
                        note=note,
                        default_preset=settings.actioner.default_preset,
                    ),
                ),
            )
    except (PolicyChangeError, ValueError) as exc:
        raise click.UsageError(f"invalid policy: {exc}") from exc
    click.echo(f"stored {stored.version_id}")


@policy.command("preset")
@click.argument("community")
@click.argument("name", type=click.Choice(["lenient", "balanced", "strict"]))
@platform_option
@click.option("--note", default="")
@click.option("--author", default=None, help=IDENTITY_HELP)
@click.pass_context
def policy_preset(
    ctx: click.Context, community: str, name: str, platform: str, note: str, author: str | None
) -> None:
    """Set COMMUNITY's policy to a preset (a new version).

    The version records who stored it: the OS account and the PostgreSQL role (see --author).
    """
    from actioners import commands

    settings = settings_from(ctx)
    stored = _with_db(
        settings,
        _as_operator(
            author,
            lambda db, who: commands.apply_preset(
                db, platform, community, name, author=who, note=note
            ),
        ),
    )
    click.echo(f"stored {stored.version_id} (preset {name})")


@click.command()
@click.argument("user")
@click.option("--community", required=True, help="Guild, workspace or channel id.")
@platform_option
@click.option("--all", "include_inactive", is_flag=True, help="Expired and pardoned ones too.")
@click.pass_context
def strikes(
    ctx: click.Context, user: str, community: str, platform: str, include_inactive: bool
) -> None:
    """USER's strikes in a community and what the next one brings."""
    from actioners import commands

    settings = settings_from(ctx)
    report = _with_db(
        settings,
        lambda db: commands.user_strikes(
            db,
            platform,
            community,
            user,
            include_inactive=include_inactive,
            default_preset=settings.actioner.default_preset,
        ),
    )
    following = report.next_rung.describe() if report.next_rung else "nothing"
    click.echo(
        f"{platform}:{community}:{user}: {report.active} active strike(s)"
        + (f" (+{report.shadow} in shadow mode)" if report.shadow else "")
        + f"; decay {report.strike_decay_days:g} d; next strike: {following}"
        + f" (policy {report.policy_version})"
    )
    for s in report.strikes:
        state = (
            f"pardoned {s.pardoned_at:%Y-%m-%d} by {s.pardoned_by}: {s.pardon_reason}"
            if s.pardoned_at
            else f"expires {s.expires_at:%Y-%m-%d %H:%M}"
        )
        click.echo(
            f"  {s.created_at:%Y-%m-%d %H:%M}  +{s.points}{' shadow' if s.shadow else ''}"
            f"  message {s.message_id}  {state}\n      {s.reason}"
        )


@click.command()
@click.argument("user")
@click.option("--community", required=True, help="Guild, workspace or channel id.")
@click.option("--reason", required=True, help="Why (kept in the audit trail).")
@platform_option
@click.option("--by", "moderator", default=None, help="Who pardons. " + IDENTITY_HELP)
@click.pass_context
def pardon(
    ctx: click.Context,
    user: str,
    community: str,
    reason: str,
    platform: str,
    moderator: str | None,
) -> None:
    """Clear USER's active strikes in a community.

    The pardon records who gave it: the OS account and the PostgreSQL role (see --by).
    """
    from actioners import commands

    settings = settings_from(ctx)
    try:
        done = _with_db(
            settings,
            _as_operator(
                moderator,
                lambda db, who: commands.pardon(
                    db, platform, community, user, moderator=who, reason=reason
                ),
            ),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--reason") from exc
    click.echo(f"pardoned {platform}:{community}:{user}: {done.strikes_cleared} strike(s) cleared")
