"""Moderator accounts: names, scrypt password hashes, and the communities each one moderates.

A password is stored as ``scrypt$<n>$<r>$<p>$<salt>$<hash>`` (salt and hash in base64): the
parameters travel with the hash, so raising the cost later leaves older hashes verifiable.
Verifying an unknown name still runs scrypt once, so a sign-in takes as long whether or not the
name exists.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from actioners.database import Database
from core.errors import ConfigError

# hashlib.scrypt's cost: 2^14 x 8 x 1 takes 16 MiB and some tens of milliseconds.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
PLATFORMS = ("discord", "slack", "twitch", "webhook", "replay")
_DUMMY = f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$" + "A" * 24 + "$" + "A" * 44

Community = tuple[str, str]  # platform, community


class AccountError(ConfigError):
    """A moderator command that cannot be done as asked (a bad name, an unknown moderator)."""


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The stored form of ``password`` (see the module)."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=64 * 1024 * 1024,
        dklen=HASH_BYTES,
    )
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (compared in constant time)."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(expected)
        digest = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=64 * 1024 * 1024,
            dklen=len(want) or HASH_BYTES,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, want)


def check_password(password: str) -> str:
    """``password`` if it is acceptable, else ``AccountError`` saying why."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password must have at most {MAX_PASSWORD} characters")
    return password


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise AccountError(f"moderator name {name!r}: 1-64 letters, digits, '_', '.' or '-'")
    return name


def parse_community(text: str) -> Community:
    """``discord:GUILD`` -> ("discord", "GUILD"), or ``AccountError`` naming the form."""
    platform, sep, community = text.partition(":")
    if not sep or platform not in PLATFORMS or not community or ":" in community:
        raise AccountError(
            f"community {text!r}: write it as PLATFORM:ID with PLATFORM one of "
            + ", ".join(PLATFORMS)
        )
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in community) or len(community) > 200:
        raise AccountError(f"community {text!r}: an id of 1-200 printable characters")
    return platform, community


@dataclass(frozen=True)
class Moderator:
    name: str
    disabled: bool
    created_at: datetime
    communities: tuple[Community, ...]


class Accounts:
    """Moderators in Postgres (``warden moderators`` and the review service's sign-in).

    Every change is recorded in ``moderator_changes`` in its own transaction, with ``by``: who
    made it (``warden moderators`` passes the operator, ``actioners.commands.operator``).
    """

    def __init__(self, db: Database, *, by: str = "unknown") -> None:
        self.db = db
        self.by = by

    async def _record(
        self,
        cur: psycopg.AsyncCursor[Any],
        name: str,
        change: str,
        communities: Sequence[Community] = (),
    ) -> None:
        await cur.execute(
            "INSERT INTO moderator_changes (moderator, change, communities, changed_by)"
            " VALUES (%s, %s, %s, %s)",
            (name, change, [f"{p}:{c}" for p, c in communities], self.by),
        )

    async def add(self, name: str, password: str, communities: Sequence[Community]) -> None:
        """A new moderator with these communities; ``AccountError`` if the name is taken."""
        stored = hash_password(check_password(password))
        try:
            async with self.db.transaction() as cur:
                await cur.execute(
                    "INSERT INTO moderators (name, password_hash) VALUES (%s, %s)",
                    (check_name(name), stored),
                )
                await _grant(cur, name, communities)
                await self._record(cur, name, "added", communities)
        except psycopg.errors.UniqueViolation as exc:
            raise AccountError(f"moderator {name!r} exists already") from exc

    async def set_password(self, name: str, password: str) -> None:
        stored = hash_password(check_password(password))
        async with self.db.transaction() as cur:
            await cur.execute(
                "UPDATE moderators SET password_hash = %s WHERE name = %s", (stored, name)
            )
            if cur.rowcount == 0:
                raise AccountError(f"no moderator {name!r}")
            await self._record(cur, name, "password")

    async def set_disabled(self, name: str, disabled: bool) -> None:
        async with self.db.transaction() as cur:
            await cur.execute(
                "UPDATE moderators SET disabled = %s WHERE name = %s", (disabled, name)
            )
            if cur.rowcount == 0:
                raise AccountError(f"no moderator {name!r}")
            await self._record(cur, name, "disabled" if disabled else "enabled")

    async def grant(self, name: str, communities: Sequence[Community]) -> None:
        async with self.db.transaction() as cur:
            await _exists(cur, name)
            await _grant(cur, name, communities)
            await self._record(cur, name, "granted", communities)

    async def revoke(self, name: str, communities: Sequence[Community]) -> int:
        """Take communities away; returns how many grants were removed."""
        async with self.db.transaction() as cur:
            await _exists(cur, name)
            removed = 0
            for platform, community in communities:
                await cur.execute(
                    "DELETE FROM moderator_communities"
                    " WHERE moderator = %s AND platform = %s AND community = %s",
                    (name, platform, community),
                )
                removed += cur.rowcount
            await self._record(cur, name, "revoked", communities)
        return removed

    async def list(self) -> list[Moderator]:
        async with self.db.transaction() as cur:
            await cur.execute(
                "SELECT m.name, m.disabled, m.created_at,"
                " COALESCE(array_agg(c.platform || ':' || c.community"
                "  ORDER BY c.platform, c.community) FILTER (WHERE c.platform IS NOT NULL), '{}')"
                " FROM moderators m LEFT JOIN moderator_communities c ON c.moderator = m.name"
                " GROUP BY m.name ORDER BY m.name"
            )
            rows = await cur.fetchall()
        return [
            Moderator(name, disabled, created, tuple(parse_community(c) for c in grants))
            for name, disabled, created, grants in rows
        ]

    async def password_hash(self, name: str) -> str | None:
        """The stored hash of an enabled moderator (None: unknown or disabled)."""
        async with self.db.transaction() as cur:
            await cur.execute(
                "SELECT password_hash FROM moderators WHERE name = %s AND NOT disabled", (name,)
            )
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def communities(self, name: str) -> tuple[Community, ...] | None:
        """The communities of an enabled moderator (None: unknown or disabled, so signed out)."""
        async with self.db.transaction() as cur:
            await cur.execute(
                "SELECT c.platform, c.community FROM moderators m"
                " LEFT JOIN moderator_communities c ON c.moderator = m.name"
                " WHERE m.name = %s AND NOT m.disabled ORDER BY 1, 2",
                (name,),
            )
            rows = await cur.fetchall()
        if not rows:
            return None
        return tuple((p, c) for p, c in rows if p is not None)


async def authenticate(accounts: Accounts, name: str, password: str) -> bool:
    """Whether ``name``/``password`` sign in (scrypt runs off the event loop, once either way)."""
    import asyncio

    stored = await accounts.password_hash(name) if NAME.match(name) else None
    ok = await asyncio.to_thread(verify_password, password, stored or _DUMMY)
    return ok and stored is not None


async def _exists(cur: psycopg.AsyncCursor[Any], name: str) -> None:
    await cur.execute("SELECT 1 FROM moderators WHERE name = %s", (name,))
    if await cur.fetchone() is None:
        raise AccountError(f"no moderator {name!r}")


async def _grant(
    cur: psycopg.AsyncCursor[Any], name: str, communities: Sequence[Community]
) -> None:
    for platform, community in communities:
        await cur.execute(
            "INSERT INTO moderator_communities (moderator, platform, community)"
            " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (name, platform, community),
        )
