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
    db: Database, platform: str, community: str, *, default_preset: str = "balanced"
) -> StoredPolicy:
    """The policy in force for a community (its default preset when none is stored)."""
    return await PolicyStore(db, default_preset).current(platform, community)


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
) -> StoredPolicy:
    """Apply dotted-path changes (``shadow``, ``thresholds.high``, ``channels.C.exempt``,
    ``exempt_roles+``) to the policy in force and store the result as a new version.

    Raises ``actioners.policy.PolicyChangeError`` naming what is invalid.
    """
    store = PolicyStore(db, default_preset)
    current = await store.current(platform, community)
    return await store.save(
        platform, community, apply_changes(current.policy, changes), author=author, note=note
    )


async def replace_policy(
    db: Database, platform: str, community: str, policy: Policy, *, author: str, note: str = ""
) -> StoredPolicy:
    """Store a whole policy as the community's next version."""
    return await PolicyStore(db).save(platform, community, policy, author=author, note=note)


async def apply_preset(
    db: Database, platform: str, community: str, name: str, *, author: str, note: str = ""
) -> StoredPolicy:
    """Store preset ``name`` (lenient, balanced, strict) as the community's next version."""
    return await replace_policy(
        db, platform, community, preset(name), author=author, note=note or f"preset {name}"
    )


@dataclass(frozen=True)
class StrikeReport:
    platform: str
    community: str
    user: str
    active: int
    shadow: int
    policy_version: str
    strike_decay_days: float
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
) -> StrikeReport:
    """A user's strikes in a community, the active count and what the next strike brings."""
    stored = await PolicyStore(db, default_preset).current(platform, community)
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
        strike_decay_days=stored.policy.strike_decay_days,
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
            " severity, rule, strikes_added, strikes_active, shadow, reason, decided_at"
            " FROM decisions WHERE message_id = %s",
            (message_id,),
        )
        row = await cur.fetchone()
        names = [c.name for c in cur.description or []]
    if row is None:
        return None
    entries = await Ledger(db).entries([message_id])
    return DecisionReport(message_id, dict(zip(names, row, strict=True)), entries)
