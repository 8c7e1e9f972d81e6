"""What moderators do: show and change policies, look at strikes, pardon, explain a decision.

``warden policy|strikes|pardon`` call these; so will the bot commands. Each takes an open
``Database`` and returns plain data.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from actioners.database import Database
from actioners.detectors import DetectorMirror
from actioners.ledger import Entry, Ledger
from actioners.policy import Policy, Rung, apply_changes, preset
from actioners.policystore import PolicyStore, StoredPolicy
from actioners.strikes import Pardon, Strike, StrikeBook
from schemas.events import utcnow


async def operator(db: Database, claimed: str | None = None) -> str:
    """Who is changing something, as recorded in the policy history and the pardons.

    The authenticated parts come first: the operating-system account running the command (from
    the kernel's uid, not from an environment variable anyone can set) and the PostgreSQL role
    the session logged in as (``current_user``), e.g. ``cli:alice (pg: warden)``. A name given
    with ``--author``/``--by`` is only a claim and is recorded as one:
    ``bob (claimed) via cli:alice (pg: warden)``.
    """
    async with db.transaction() as cur:
        await cur.execute("SELECT current_user")
        row = await cur.fetchone()
    role = str(row[0]) if row else "?"
    try:
        account = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid without a passwd entry (some containers)
        account = f"uid {os.geteuid()}"
    verified = f"cli:{account} (pg: {role})"
    name = (claimed or "").strip()
    return f"{name} (claimed) via {verified}" if name else verified


async def show_policy(
    db: Database,
    platform: str,
    community: str,
    *,
    default_preset: str = "balanced",
    first_day: bool = False,
) -> StoredPolicy:
    """The policy in force for a community (its default preset when none is stored, in
    first-day mode when ``first_day``: see ``actioners.policystore``)."""
    return await PolicyStore(db, default_preset, first_day=first_day).current(platform, community)


async def policy_history(db: Database, platform: str, community: str) -> list[StoredPolicy]:
    """Every stored version, newest first."""
    return await PolicyStore(db).history(platform, community)


async def set_policy(
    db: Database,
    platform: str,
    community: str,
    changes: Mapping[str, Any],
    *,
    author: str,
    note: str = "",
    default_preset: str = "balanced",
    first_day: bool = False,
    mirror: DetectorMirror | None = None,
) -> StoredPolicy:
    """Apply dotted-path changes (``shadow``, ``thresholds.high``, ``channels.C.exempt``,
    ``exempt_roles+``, ``detectors.spam_repeats``) to the policy in force and store the result
    as a new version (its detector thresholds mirrored to Redis through ``mirror``).

    Raises ``actioners.policy.PolicyChangeError`` naming what is invalid.
    """
    store = PolicyStore(db, default_preset, first_day=first_day)
    current = await store.current(platform, community)
    return await store.save(
        platform,
        community,
        apply_changes(current.policy, changes),
        author=author,
        note=note,
        mirror=mirror,
    )


async def replace_policy(
    db: Database,
    platform: str,
    community: str,
    policy: Policy,
    *,
    author: str,
    note: str = "",
    mirror: DetectorMirror | None = None,
) -> StoredPolicy:
    """Store a whole policy as the community's next version."""
    return await PolicyStore(db).save(
        platform, community, policy, author=author, note=note, mirror=mirror
    )


async def apply_preset(
    db: Database,
    platform: str,
    community: str,
    name: str,
    *,
    author: str,
    note: str = "",
    default_preset: str = "balanced",
    first_day: bool = False,
    mirror: DetectorMirror | None = None,
) -> StoredPolicy:
    """Store preset ``name`` (lenient, balanced, strict, livestream) as the community's next
    version. A community still in first-day mode stays in it (``go_live`` ends it)."""
    current = await PolicyStore(db, default_preset, first_day=first_day).current(
        platform, community
    )
    chosen = preset(name)
    if current.policy.first_day:
        chosen = chosen.model_copy(update={"first_day": True})
    return await replace_policy(
        db,
        platform,
        community,
        chosen,
        author=author,
        note=note or f"preset {name}",
        mirror=mirror,
    )


async def go_live(
    db: Database,
    platform: str,
    community: str,
    *,
    author: str,
    preset_name: str | None = None,
    note: str = "",
    default_preset: str = "balanced",
    first_day: bool = True,
    mirror: DetectorMirror | None = None,
) -> StoredPolicy:
    """End first-day (and shadow) mode: the policy in force, or preset ``preset_name``, stored
    as a new version that acts. Recorded like every change (author, note, version)."""
    current = await PolicyStore(db, default_preset, first_day=first_day).current(
        platform, community
    )
    base = preset(preset_name) if preset_name else current.policy
    live = Policy.model_validate({**base.to_document(), "first_day": False, "shadow": False})
    was = "live"
    if current.policy.first_day:
        was = "first-day mode"
    elif current.policy.shadow:
        was = "shadow mode"
    return await replace_policy(
        db,
        platform,
        community,
        live,
        author=author,
        note=note or f"go live ({live.preset}; was {was})",
        mirror=mirror,
    )


async def sync_detectors(
    db: Database,
    platform: str,
    community: str,
    mirror: DetectorMirror,
    *,
    default_preset: str = "balanced",
) -> StoredPolicy:
    """Write the detector thresholds of the policy in force to Redis again (after a failed
    mirror); a community with nothing stored gets its default preset's."""
    stored = await PolicyStore(db, default_preset).current(platform, community)
    await mirror.publish(platform, community, stored.policy.detectors, stored.version_id)
    return stored


@dataclass(frozen=True)
class StrikeReport:
    platform: str
    community: str
    user: str
    active: int
    shadow: int
    policy_version: str
    strike_decay: str
    next_rung: Rung | None
    strikes: list[Strike] = field(default_factory=list)


async def user_strikes(
    db: Database,
    platform: str,
    community: str,
    user: str,
    *,
    include_inactive: bool = False,
    default_preset: str = "balanced",
    first_day: bool = False,
) -> StrikeReport:
    """A user's strikes in a community, the active count and what the next strike brings."""
    stored = await PolicyStore(db, default_preset, first_day=first_day).current(platform, community)
    book = StrikeBook(db)
    strikes = await book.of(platform, community, user, include_inactive=True)
    active = [s for s in strikes if s.pardoned_at is None and _unexpired(s)]
    real = sum(s.points for s in active if not s.shadow)
    return StrikeReport(
        platform=platform,
        community=community,
        user=user,
        active=real,
        shadow=sum(s.points for s in active if s.shadow),
        policy_version=stored.version_id,
        strike_decay=stored.policy.decay_text,
        next_rung=stored.policy.rung_for(real + 1),
        strikes=strikes if include_inactive else active,
    )


def _unexpired(strike: Strike) -> bool:
    return strike.expires_at > utcnow()


async def pardon(
    db: Database, platform: str, community: str, user: str, *, moderator: str, reason: str
) -> Pardon:
    """Clear the user's active strikes; who, when and why are recorded."""
    return await StrikeBook(db).pardon(
        platform, community, user, moderator=moderator, reason=reason
    )


@dataclass(frozen=True)
class Hold:
    """A line waiting for a moderator's review (``ActionKind.HOLD``)."""

    message_id: str
    action_id: str
    channel: str
    user: str
    text: str
    labels: list[str]
    severity: str
    held_action: str
    reason: str
    policy_version: str
    held_at: Any


async def open_holds(db: Database, platform: str, community: str, limit: int = 100) -> list[Hold]:
    """The review queue of a community: holds nobody has reviewed yet, oldest first (holds of
    shadow and first-day decisions are recorded too, but only say what would have been held)."""
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT message_id, action_id, channel, user_id, text, labels, severity,"
            " held_action, reason, policy_version, held_at FROM holds"
            " WHERE platform = %s AND community = %s AND reviewed_at IS NULL AND NOT shadow"
            " ORDER BY held_at, message_id LIMIT %s",
            (platform, community, limit),
        )
        rows = await cur.fetchall()
    return [Hold(*row) for row in rows]


@dataclass(frozen=True)
class DecisionReport:
    """Why a message was acted on, for an appeal: the decision and what became of each action."""

    message_id: str
    decision: dict[str, Any]
    actions: list[Entry]


async def explain(db: Database, message_id: str) -> DecisionReport | None:
    """The decision recorded for a message, or None when the policy asked for nothing."""
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT platform, community, channel, user_id, policy_version, model_version,"
            " severity, rule, strikes_added, strikes_active, shadow, reason, labels, decided_at"
            " FROM decisions WHERE message_id = %s",
            (message_id,),
        )
        row = await cur.fetchone()
        names = [c.name for c in cur.description or []]
    if row is None:
        return None
    entries = await Ledger(db).entries([message_id])
    return DecisionReport(message_id, dict(zip(names, row, strict=True)), entries)
