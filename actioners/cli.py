"""``warden actioner``, ``warden policy show|set|preset|go-live|holds|sync``,
``warden strikes``, ``warden pardon``."""

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
    from actioners.detectors import DetectorMirror
    from actioners.policystore import StoredPolicy
    from core.settings import Settings

T = TypeVar("T")
PLATFORMS = click.Choice(["discord", "slack", "twitch", "webhook", "replay"])
PRESET_NAMES = click.Choice(["lenient", "balanced", "strict", "livestream"])
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
    metrics.initialise("actioner", settings.metrics.communities)

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


def _mirrored(
    settings: Settings, work: Callable[[Database, str, DetectorMirror], Awaitable[T]]
) -> Callable[[Database, str], Awaitable[T]]:
    """``work(db, author, mirror)`` with a Redis mirror for the detector thresholds of the
    version stored (``actioners.detectors``), closed afterwards."""
    from actioners.detectors import DetectorMirror

    async def go(db: Database, author: str) -> T:
        mirror = DetectorMirror.connect(settings.redis)
        try:
            return await work(db, author, mirror)
        finally:
            await mirror.close()

    return go


def _first_day(settings: Settings) -> bool:
    return settings.actioner.first_day == "shadow"


IDENTITY_HELP = (
    "A display name, recorded as a claim next to the authenticated identity: the OS account "
    "running the command and the PostgreSQL role, e.g. 'bob (claimed) via cli:alice (pg: "
    "warden)'; without it, 'cli:alice (pg: warden)'."
)


def _echo_policy(stored: StoredPolicy) -> None:
    origin = (
        f"default preset (nothing stored), version {stored.version_id}"
        + (
            ", first-day mode: acts on nothing until `warden policy go-live`"
            if stored.policy.first_day
            else ""
        )
        if stored.is_default
        else f"version {stored.version} ({stored.version_id}) by {stored.author}"
        f" at {stored.created_at:%Y-%m-%d %H:%M:%S %Z}"
        + (f": {stored.note}" if stored.note else "")
    )
    click.echo(f"# {stored.platform}:{stored.community} policy, {origin}")
    click.echo(json.dumps(stored.policy.to_document(), indent=2))


def _change_policy(
    settings: Settings,
    platform: str,
    community: str,
    changes: dict[str, Any],
    note: str,
    author: str | None,
) -> StoredPolicy:
    """Store COMMUNITY's policy with dotted-path ``changes`` as a new version, by this operator,
    its detector thresholds mirrored to Redis."""
    from actioners import commands

    return _with_db(
        settings,
        _as_operator(
            author,
            _mirrored(
                settings,
                lambda db, who, mirror: commands.set_policy(
                    db,
                    platform,
                    community,
                    changes,
                    author=who,
                    note=note,
                    default_preset=settings.actioner.default_preset,
                    first_day=_first_day(settings),
                    mirror=mirror,
                ),
            ),
        ),
    )


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
                f"  preset={stored.policy.preset} shadow={stored.policy.shadow}"
                f" first_day={stored.policy.first_day}  {stored.note}"
            )
        return
    stored = _with_db(
        settings,
        lambda db: commands.show_policy(
            db,
            platform,
            community,
            default_preset=settings.actioner.default_preset,
            first_day=_first_day(settings),
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
      warden policy set 9812 thresholds.high=0.8 strike_decay_hours=6
      warden policy set 9812 exempt_roles+=moderator channels.5551.monitored_only=true
      warden policy set 9812 labels.profanity.act=false detectors.spam_repeats=4

    The version records who stored it: the OS account and the PostgreSQL role (see --author).
    Its detector thresholds are mirrored to Redis for the scorer (see `warden policy sync`).
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
                    _mirrored(
                        settings,
                        lambda db, who, mirror: commands.replace_policy(
                            db, platform, community, whole, author=who, note=note, mirror=mirror
                        ),
                    ),
                ),
            )
        if parsed:
            stored = _change_policy(settings, platform, community, parsed, note, author)
    except (PolicyChangeError, ValueError) as exc:
        raise click.UsageError(f"invalid policy: {exc}") from exc
    click.echo(f"stored {stored.version_id}")


@policy.command("preset")
@click.argument("community")
@click.argument("name", type=PRESET_NAMES)
@platform_option
@click.option("--note", default="")
@click.option("--author", default=None, help=IDENTITY_HELP)
@click.pass_context
def policy_preset(
    ctx: click.Context, community: str, name: str, platform: str, note: str, author: str | None
) -> None:
    """Set COMMUNITY's policy to a preset (a new version).

    The version records who stored it: the OS account and the PostgreSQL role (see --author).
    A community in first-day mode stays in it: `warden policy go-live` ends it.
    """
    from actioners import commands

    settings = settings_from(ctx)
    stored = _with_db(
        settings,
        _as_operator(
            author,
            _mirrored(
                settings,
                lambda db, who, mirror: commands.apply_preset(
                    db,
                    platform,
                    community,
                    name,
                    author=who,
                    note=note,
                    default_preset=settings.actioner.default_preset,
                    first_day=_first_day(settings),
                    mirror=mirror,
                ),
            ),
        ),
    )
    mode = " in first-day mode (acts on nothing until go-live)" if stored.policy.first_day else ""
    click.echo(f"stored {stored.version_id} (preset {name}){mode}")


@policy.command("go-live")
@click.argument("community")
@platform_option
@click.option("--preset", "preset_name", type=PRESET_NAMES, default=None, help="Go live on it.")
@click.option("--note", default="")
@click.option("--author", default=None, help=IDENTITY_HELP)
@click.pass_context
def policy_go_live(
    ctx: click.Context,
    community: str,
    platform: str,
    preset_name: str | None,
    note: str,
    author: str | None,
) -> None:
    """End COMMUNITY's first-day (or shadow) mode: from the next verdict on, it acts.

    Stores the policy in force (or --preset) as a new version with first-day and shadow mode
    off, recording who did it: the OS account and the PostgreSQL role (see --author).
    """
    from actioners import commands

    settings = settings_from(ctx)
    stored = _with_db(
        settings,
        _as_operator(
            author,
            _mirrored(
                settings,
                lambda db, who, mirror: commands.go_live(
                    db,
                    platform,
                    community,
                    author=who,
                    preset_name=preset_name,
                    note=note,
                    default_preset=settings.actioner.default_preset,
                    first_day=_first_day(settings),
                    mirror=mirror,
                ),
            ),
        ),
    )
    click.echo(f"stored {stored.version_id} (preset {stored.policy.preset}): live")


@policy.command("calibrate")
@click.argument("community")
@platform_option
@click.option("--since-days", type=float, default=30.0, show_default=True)
@click.option(
    "--prior", type=float, default=50.0, show_default=True, help="Shrinkage: n/(n+prior)."
)
@click.option("--min-reviews", type=int, default=30, show_default=True)
@click.option("--apply", "apply_it", is_flag=True, help="Store the thresholds as a new version.")
@click.option("--undo", is_flag=True, help="Restore the thresholds from before the last one.")
@click.option("--author", default=None, help=IDENTITY_HELP)
@click.pass_context
def policy_calibrate(
    ctx: click.Context,
    community: str,
    platform: str,
    since_days: float,
    prior: float,
    min_reviews: int,
    apply_it: bool,
    undo: bool,
    author: str | None,
) -> None:
    """Fit COMMUNITY's thresholds to its moderators' reviews (shrunk toward the global model;
    actioners/calibration.py) and report before/after on held-out reviews; --apply stores them
    as a policy version (see `warden policy show`), --undo reverses the last calibration."""
    from datetime import UTC, datetime, timedelta

    from actioners import commands
    from actioners.calibration import NOTE_PREFIX, calibrate, reviewed, scored_thresholds
    from actioners.policy import Thresholds
    from core.topic_reading import read_topic
    from schemas.topics import FEEDBACK, VERDICTS
    from toxicity.artifacts import default_model_dir, load_meta

    settings = settings_from(ctx)

    def store(thresholds: dict[str, float] | None, note: str) -> StoredPolicy:
        changes = {"thresholds": thresholds}
        return _change_policy(settings, platform, community, changes, note, author)

    if undo:
        versions = _with_db(settings, lambda db: commands.policy_history(db, platform, community))
        latest = next((i for i, v in enumerate(versions) if v.note.startswith(NOTE_PREFIX)), None)
        if latest is None:
            raise click.UsageError(f"{platform}:{community} has no calibration to undo")
        earlier = versions[latest + 1].policy.thresholds if latest + 1 < len(versions) else None
        restored = earlier.model_dump() if earlier is not None else None
        stored = store(restored, f"calibration of v{versions[latest].version} undone")
        click.echo(f"stored {stored.version_id}: thresholds {restored or 'of the model'}")
        return

    since = datetime.now(UTC) - timedelta(days=since_days)

    async def read() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return await read_topic(settings, VERDICTS, since), await read_topic(
            settings, FEEDBACK, since
        )

    verdicts, feedback = asyncio.run(read())
    ours = [v for v in verdicts if (v.get("platform"), v.get("community")) == (platform, community)]
    base = scored_thresholds(ours)
    if base is None:
        model = load_meta(default_model_dir()).thresholds
        base = Thresholds(low=model.low, medium=model.medium, high=model.high)
    try:
        result = calibrate(
            reviewed(ours, feedback, platform, community),
            base,
            prior=prior,
            min_reviews=min_reviews,
        )
    except ValueError as exc:
        raise click.UsageError(f"{platform}:{community}: {exc}") from exc
    t, a = result.thresholds, result.adjustment
    click.echo(
        f"{platform}:{community}: {result.train} reviews fitted (weight {a.weight:.2f}),"
        f" {result.holdout} held out"
    )
    click.echo(
        f"  thresholds  {base.low:.3f}/{base.medium:.3f}/{base.high:.3f} -> "
        f"{t.low:.3f}/{t.medium:.3f}/{t.high:.3f} (low/medium/high)"
    )
    for key in ("accuracy", "benign_flagged", "harmful_caught", "log_loss"):
        shown = [
            ("-" if v is None else f"{v:.3f}") for v in (result.before[key], result.after[key])
        ]
        click.echo(f"  held-out {key:<15} {shown[0]} -> {shown[1]}")
    if apply_it:
        stored = store(t.model_dump(), result.note())
        click.echo(f"stored {stored.version_id} (undo: warden policy calibrate {community} --undo)")
    else:
        click.echo("not stored (--apply stores it)")


@policy.command("holds")
@click.argument("community")
@platform_option
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.pass_context
def policy_holds(ctx: click.Context, community: str, platform: str, limit: int) -> None:
    """List COMMUNITY's review queue: lines held for a moderator, oldest first."""
    from actioners import commands

    settings = settings_from(ctx)
    holds = _with_db(settings, lambda db: commands.open_holds(db, platform, community, limit))
    if not holds:
        click.echo(f"{platform}:{community}: nothing held for review")
    for hold in holds:
        click.echo(
            f"{hold.held_at:%Y-%m-%d %H:%M:%S}  {hold.held_action}  message {hold.message_id}"
            f"  user {hold.user}  channel {hold.channel}  [{', '.join(hold.labels)}]"
            f"\n      {hold.text[:200]!r}\n      {hold.reason[:300]}"
        )


@policy.command("sync")
@click.argument("community")
@platform_option
@click.pass_context
def policy_sync(ctx: click.Context, community: str, platform: str) -> None:
    """Mirror COMMUNITY's detector thresholds to Redis again (after a failed mirror)."""
    from actioners import commands
    from actioners.detectors import DetectorMirror

    settings = settings_from(ctx)

    async def sync(db: Database) -> StoredPolicy:
        mirror = DetectorMirror.connect(settings.redis)
        try:
            return await commands.sync_detectors(
                db,
                platform,
                community,
                mirror,
                default_preset=settings.actioner.default_preset,
            )
        finally:
            await mirror.close()

    stored = _with_db(settings, sync)
    click.echo(f"mirrored the detectors of {stored.version_id} to Redis")


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
            first_day=_first_day(settings),
        ),
    )
    following = report.next_rung.describe() if report.next_rung else "nothing"
    click.echo(
        f"{platform}:{community}:{user}: {report.active} active strike(s)"
        + (f" (+{report.shadow} in shadow mode)" if report.shadow else "")
        + f"; decay {report.strike_decay}; next strike: {following}"
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
