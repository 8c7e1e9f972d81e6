"""Community policies in PostgreSQL, versioned: every change is a new version, none is lost.

A community with no stored policy gets the configured default preset (``balanced`` unless
``WARDEN_ACTIONER__DEFAULT_PRESET`` says otherwise). In first-day mode
(``WARDEN_ACTIONER__FIRST_DAY=shadow``, the default) that preset runs with ``first_day`` set,
under the version ``first-day:<preset>@N``: every verdict is decided and recorded (decisions,
shadow strikes, skipped actions, holds) and nothing is acted on, until a moderator runs
``warden policy go-live``. Changes stored before that (``policy set``, ``policy preset``) keep
first-day mode; only go-live (or ``policy set first_day=false``) ends it. With
``WARDEN_ACTIONER__FIRST_DAY=off`` a new community acts from its first verdict, on the preset's
own version ``preset:<preset>@N``.

Each stored version's ``detectors`` section is mirrored to Redis for the scorer when a mirror
is given (``actioners.detectors``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from actioners.database import Database
from actioners.detectors import DetectorMirror
from actioners.policy import (
    Policy,
    builtin,
    first_day,
    first_day_version,
    preset,
    preset_version,
    stored_number,
    stored_version,
)


@dataclass(frozen=True)
class StoredPolicy:
    """A community's policy as in force, with where it came from."""

    platform: str
    community: str
    policy: Policy
    # 0 when the community has none stored and runs on the default preset.
    version: int
    version_id: str
    author: str = ""
    note: str = ""
    created_at: datetime | None = None

    @property
    def is_default(self) -> bool:
        return self.version == 0


class PolicyStore:
    def __init__(
        self,
        db: Database,
        default_preset: str = "balanced",
        cache_s: float = 0.0,
        *,
        first_day: bool = False,
    ) -> None:
        self.db = db
        self.default_preset = default_preset
        self.cache_s = cache_s
        self.first_day = first_day
        self._cache: dict[tuple[str, str], tuple[float, StoredPolicy]] = {}

    def default(self, platform: str, community: str) -> StoredPolicy:
        """The policy of a community with none stored (in first-day mode when so configured)."""
        if self.first_day:
            policy = first_day(self.default_preset)
            version_id = first_day_version(self.default_preset)
        else:
            policy = preset(self.default_preset)
            version_id = preset_version(self.default_preset)
        return StoredPolicy(
            platform=platform,
            community=community,
            policy=policy,
            version=0,
            version_id=version_id,
        )

    async def current(self, platform: str, community: str) -> StoredPolicy:
        """The policy in force (cached for ``cache_s`` seconds)."""
        key = (platform, community)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.cache_s:
            return hit[1]
        found = await self.history(platform, community, limit=1)
        stored = found[0] if found else self.default(platform, community)
        self._cache[key] = (now, stored)
        return stored

    async def history(self, platform: str, community: str, limit: int = 50) -> list[StoredPolicy]:
        """Stored versions, newest first."""
        async with self.db.transaction() as cur:
            await cur.execute(
                "SELECT version, document, author, note, created_at FROM policies"
                " WHERE platform = %s AND community = %s ORDER BY version DESC LIMIT %s",
                (platform, community, limit),
            )
            rows = await cur.fetchall()
        return [self._stored(platform, community, row) for row in rows]

    async def version(self, platform: str, community: str, version: int) -> StoredPolicy | None:
        async with self.db.transaction() as cur:
            await cur.execute(
                "SELECT version, document, author, note, created_at FROM policies"
                " WHERE platform = %s AND community = %s AND version = %s",
                (platform, community, version),
            )
            row = await cur.fetchone()
        return self._stored(platform, community, row) if row else None

    async def at(self, platform: str, community: str, version_id: str) -> StoredPolicy | None:
        """The policy a community's decision names in ``policy_version``: a stored version
        (None when it is not stored) or a built-in preset (ValueError for a preset this code
        cannot rebuild, or an id that names no policy version)."""
        policy = builtin(version_id)
        if policy is not None:
            return StoredPolicy(platform, community, policy, version=0, version_id=version_id)
        found = stored_number(version_id)
        if found is None:
            raise ValueError(f"{version_id!r} is not a policy version")
        return await self.version(*found)

    async def save(
        self,
        platform: str,
        community: str,
        policy: Policy,
        *,
        author: str,
        note: str = "",
        mirror: DetectorMirror | None = None,
    ) -> StoredPolicy:
        """Store ``policy`` as the community's next version, then mirror its detector
        thresholds to Redis when ``mirror`` is given (``MirrorError`` if Redis refuses: the
        version is stored all the same)."""
        async with self.db.transaction() as cur:
            # Two moderators saving at once get consecutive versions, not a conflict.
            await cur.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"policy:{platform}:{community}",),
            )
            await cur.execute(
                "INSERT INTO policies (platform, community, version, document, author, note)"
                " SELECT %s, %s, COALESCE(MAX(version), 0) + 1, %s, %s, %s FROM policies"
                " WHERE platform = %s AND community = %s"
                " RETURNING version, document, author, note, created_at",
                (
                    platform,
                    community,
                    Jsonb(policy.to_document()),
                    author,
                    note,
                    platform,
                    community,
                ),
            )
            row = await cur.fetchone()
        assert row is not None
        stored = self._stored(platform, community, row)
        self._cache.pop((platform, community), None)
        if mirror is not None:
            await mirror.publish(platform, community, stored.policy.detectors, stored.version_id)
        return stored

    @staticmethod
    def _stored(platform: str, community: str, row: tuple[Any, ...]) -> StoredPolicy:
        version, document, author, note, created_at = row
        return StoredPolicy(
            platform=platform,
            community=community,
            policy=Policy.model_validate(document),
            version=version,
            version_id=stored_version(platform, community, version),
            author=author,
            note=note,
            created_at=created_at,
        )
