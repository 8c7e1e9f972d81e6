"""The model registry: every model with its data, metrics, card and lineage, and which one runs.

PostgreSQL holds the record (``models``, ``model_events``; migration 0007), the model
directories hold the models themselves, and the Redis pointer (``core.model_pointer``) tells
the running scorers which directory to load. A registry is named (``WARDEN_MODEL__REGISTRY``)
so that several deployments can share one database.

- The shipped model (``models/DEFAULT``) is registered, and made active when nothing is, by
  every command: a fresh install lists it without doing anything.
- ``register`` records a model directory as a candidate (``warden models register``, and
  ``warden retrain`` for the models it trains, with the active model as parent).
- ``promote`` makes a candidate active only when it is not worse than the active model on any
  reserved set beyond noise (``retrain.gating``); a refusal is recorded with its reason and
  ``force`` overrides it (recorded as forced). The Redis pointer is written after the commit.
- ``rollback`` makes the model that was active before the current one active again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pwd
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import ConfigError, TransientError, WardenError
from core.model_pointer import ActiveModel, read_active, write_active
from core.privacy import RECORD_DELETION
from core.settings import Settings
from retrain.gating import Check, compare, refusal
from toxicity.artifacts import (
    METADATA_FILE,
    ModelFormatError,
    default_model_dir,
    load_meta,
    resolve_stored,
    stored_path,
)

# Every query below is a constant: the column list, then one of the WHERE clauses.
_SELECT = (
    "SELECT version, path, kind, parent, status, trained_at, registered_at, data, metrics"
    " FROM models WHERE registry = %s"
)


class RegistryError(WardenError):
    """A registry command cannot do what was asked (unknown model, refused promotion)."""


@dataclass(frozen=True)
class ModelRecord:
    version: str
    path: str
    kind: str
    parent: str | None
    status: str
    trained_at: datetime | None
    registered_at: datetime
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> ModelRecord:
        return cls(*row)


@dataclass(frozen=True)
class Event:
    version: str
    previous: str | None
    event: str
    reason: str
    actor: str
    at: datetime


@dataclass(frozen=True)
class Promotion:
    record: ModelRecord
    previous: str | None
    checks: list[Check]
    forced: bool


def metric_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The numbers a list shows, from ``model.json``'s metrics (None where never measured)."""
    evaluation = metrics.get("evaluation") or {}
    # The full scorer's row (``retrain.evaluation`` lists it first, as "ChatWarden <version>").
    test = next(
        (
            row
            for row in evaluation.get("rows", [])
            if row["model"].startswith("ChatWarden ") and row["data"] == "HateXplain test"
        ),
        None,
    )
    chat = ((evaluation.get("chat") or {}).get("splits") or {}).get("test") or {}
    replay = evaluation.get("replay") or {}
    feedback = metrics.get("feedback_holdout") or {}
    return {
        "hatexplain_test_roc_auc": test["roc_auc"] if test else None,
        "hatexplain_test_f1": test["f1"] if test else None,
        "chat_test_benign_flagged": chat.get("benign_flagged"),
        "chat_test_harmful_caught": chat.get("harmful_caught"),
        "replay_emote_flagged": replay.get("emote_or_reaction_flagged"),
        "hatexplain_dev_roc_auc": (metrics.get("hatexplain_dev") or {}).get("roc_auc"),
        "feedback_holdout_roc_auc": feedback.get("roc_auc"),
    }


def _describe(folder: Path) -> tuple[str, dict[str, Any], dict[str, Any], str | None]:
    """version, training data, metric summary and card hash of a model directory."""
    try:
        meta = load_meta(folder)
    except ModelFormatError as exc:
        raise RegistryError(f"{folder}: {exc}") from exc
    return meta.version, meta.training, metric_summary(meta.metrics), _card_sha(folder)


def _card_sha(folder: Path) -> str | None:
    card = folder / "MODEL_CARD.md"
    return hashlib.sha256(card.read_bytes()).hexdigest() if card.is_file() else None


def _trained_at(folder: Path) -> datetime:
    return datetime.fromtimestamp((folder / METADATA_FILE).stat().st_mtime, UTC)


def os_account() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid without a passwd entry (some containers)
        return f"uid {os.geteuid()}"


class Registry:
    """One named registry in PostgreSQL; each method is one transaction."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = settings.model.registry

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        import psycopg

        dsn = self.settings.postgres.dsn.get_secret_value()
        try:
            conn = psycopg.connect(
                dsn, connect_timeout=max(1, int(self.settings.postgres.connect_timeout_s))
            )
        except psycopg.OperationalError as exc:
            raise TransientError(
                f"cannot reach the model registry in PostgreSQL (WARDEN_POSTGRES__DSN): {exc}"
            ) from exc
        except psycopg.ProgrammingError as exc:
            raise ConfigError(f"WARDEN_POSTGRES__DSN: {exc}") from exc
        try:
            with conn, conn.cursor() as cur:
                yield cur
        except psycopg.errors.UndefinedTable as exc:
            raise ConfigError(
                "the model registry's tables are missing: run `warden migrate` first"
            ) from exc
        finally:
            conn.close()

    def actor(self, cur: Any) -> str:
        cur.execute("SELECT current_user")
        return f"cli:{os_account()} (pg: {cur.fetchone()[0]})"

    # -- reading ------------------------------------------------------------------------------

    def records(self) -> list[ModelRecord]:
        self.ensure_shipped()
        with self._cursor() as cur:
            cur.execute(_SELECT + " ORDER BY registered_at, version", (self.name,))
            return [ModelRecord.from_row(row) for row in cur.fetchall()]

    def get(self, version: str) -> ModelRecord:
        self.ensure_shipped()
        with self._cursor() as cur:
            return self._get(cur, version)

    def _get(self, cur: Any, version: str, *, lock: bool = False) -> ModelRecord:
        cur.execute(
            _SELECT + " AND version = %s" + (" FOR UPDATE" if lock else ""), (self.name, version)
        )
        row = cur.fetchone()
        if row is None:
            raise RegistryError(
                f"no model {version!r} in registry {self.name!r} (see `warden models list`)"
            )
        return ModelRecord.from_row(row)

    def active(self) -> ModelRecord | None:
        self.ensure_shipped()
        with self._cursor() as cur:
            return self._active(cur)

    def _active(self, cur: Any, *, lock: bool = False) -> ModelRecord | None:
        cur.execute(
            _SELECT + " AND status = 'active'" + (" FOR UPDATE" if lock else ""), (self.name,)
        )
        row = cur.fetchone()
        return ModelRecord.from_row(row) if row else None

    def events(self, version: str | None = None) -> list[Event]:
        with self._cursor() as cur:
            cur.execute(
                "SELECT version, previous, event, reason, actor, at FROM model_events"
                " WHERE registry = %s AND (%s::text IS NULL OR version = %s OR previous = %s)"
                " ORDER BY id",
                (self.name, version, version, version),
            )
            return [Event(*row) for row in cur.fetchall()]

    def lineage(self, version: str) -> list[str]:
        """The model and its ancestors, newest first (parents recorded at registration)."""
        chain = [version]
        with self._cursor() as cur:
            while True:
                record = self._get(cur, chain[-1])
                if record.parent is None or record.parent in chain:
                    return chain
                chain.append(record.parent)

    # -- writing ------------------------------------------------------------------------------

    def register(self, folder: Path, *, parent: str | None = None) -> ModelRecord:
        """Record a model directory as a candidate (again: its path and metrics are refreshed)."""
        folder = folder.resolve()
        version, data, metrics, card_sha = _describe(folder)
        with self._cursor() as cur:
            actor = self.actor(cur)
            cur.execute(
                "INSERT INTO models (registry, version, path, kind, parent, trained_at, data,"
                " metrics, card_sha256) VALUES (%s, %s, %s, 'hybrid', %s, %s, %s, %s, %s)"
                " ON CONFLICT (registry, version) DO UPDATE SET path = EXCLUDED.path,"
                " metrics = EXCLUDED.metrics, card_sha256 = EXCLUDED.card_sha256,"
                " parent = COALESCE(models.parent, EXCLUDED.parent)"
                " RETURNING (xmax = 0)",
                (
                    self.name,
                    version,
                    stored_path(folder),
                    parent,
                    _trained_at(folder),
                    json.dumps(data),
                    json.dumps(metrics),
                    card_sha,
                ),
            )
            row = cur.fetchone()
            if row and row[0]:
                self._event(cur, version, None, "registered", stored_path(folder), actor)
            return self._get(cur, version)

    def ensure_shipped(self) -> None:
        """Register the shipped model (again when its card changed: an update re-evaluated it,
        and the list should show today's numbers); make it active when the registry has no
        active model."""
        shipped = default_model_dir()
        version = load_meta(shipped).version
        card_sha = _card_sha(shipped)
        with self._cursor() as cur:
            cur.execute(
                "SELECT card_sha256 FROM models WHERE registry = %s AND version = %s",
                (self.name, version),
            )
            row = cur.fetchone()
            known = row is not None and row[0] == card_sha
            active = self._active(cur)
            # A registry whose active model's directory is gone (an older shipped model that an
            # update removed) falls back to the shipped one, as the scorers do.
            has_active = (
                active is not None and (resolve_stored(active.path) / METADATA_FILE).is_file()
            )
        if not known:
            self.register(shipped)
        if not has_active:
            with self._cursor() as cur:
                cur.execute("LOCK TABLE models IN SHARE ROW EXCLUSIVE MODE")
                current = self._active(cur)
                gone = current is not None and not (
                    (resolve_stored(current.path) / METADATA_FILE).is_file()
                )
                if current is None or (gone and current.version != version):
                    self._activate(cur, version, current)
                    why = "the shipped model (models/DEFAULT), active until a promotion"
                    if current is not None:
                        why += f"; {current.version}'s directory {current.path} is gone"
                    self._event(
                        cur,
                        version,
                        current.version if current else None,
                        "promoted",
                        why,
                        self.actor(cur),
                    )

    def promote(self, version: str, *, force: bool = False, reason: str = "") -> Promotion:
        """Make ``version`` active when it is not worse than the active model (or ``force``)."""
        self.ensure_shipped()
        with self._cursor() as cur:
            actor = self.actor(cur)
            candidate = self._get(cur, version, lock=True)
            current = self._active(cur, lock=True)
            if current is not None and current.version == version:
                raise RegistryError(f"{version} is already the active model")
            checks = (
                compare(
                    resolve_stored(candidate.path),
                    resolve_stored(current.path),
                    active_version=current.version,
                )
                if current
                else []
            )
            why = refusal(checks)
            if why is not None and not force:
                self._event(
                    cur, version, current.version if current else None, "refused", why, actor
                )
                refused = why
            else:
                refused = None
                self._activate(cur, version, current)
                kind = "forced" if why is not None else "promoted"
                text = "; ".join(
                    part for part in (reason, why and f"refusal overridden: {why}") if part
                )
                self._event(cur, version, current.version if current else None, kind, text, actor)
                record = self._get(cur, version)
        if refused is not None:
            raise RegistryError(
                f"promotion of {version} refused: {refused} (`--force` overrides, recorded)"
            )
        self.publish(record)
        return Promotion(record, current.version if current else None, checks, why is not None)

    def rollback(self, *, reason: str = "") -> tuple[ModelRecord, str]:
        """Make the model that was active before the current one active again."""
        self.ensure_shipped()
        with self._cursor() as cur:
            actor = self.actor(cur)
            current = self._active(cur, lock=True)
            if current is None:
                raise RegistryError(f"registry {self.name!r} has no active model")
            cur.execute(
                "SELECT previous FROM model_events WHERE registry = %s AND version = %s"
                " AND event IN ('promoted', 'forced', 'rolled_back') ORDER BY id DESC LIMIT 1",
                (self.name, current.version),
            )
            row = cur.fetchone()
            if row is None or row[0] is None:
                raise RegistryError(f"{current.version} has no previous model to roll back to")
            target = self._get(cur, row[0], lock=True)
            self._activate(cur, target.version, current)
            self._event(cur, target.version, current.version, "rolled_back", reason, actor)
            record = self._get(cur, target.version)
        self.publish(record)
        return record, current.version

    def _activate(self, cur: Any, version: str, current: ModelRecord | None) -> None:
        if current is not None:
            cur.execute(
                "UPDATE models SET status = 'retired' WHERE registry = %s AND version = %s",
                (self.name, current.version),
            )
        cur.execute(
            "UPDATE models SET status = 'active' WHERE registry = %s AND version = %s",
            (self.name, version),
        )

    def _event(
        self, cur: Any, version: str, previous: str | None, event: str, reason: str, actor: str
    ) -> None:
        cur.execute(
            "INSERT INTO model_events (registry, version, previous, event, reason, actor)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (self.name, version, previous, event, reason, actor),
        )

    # -- deleted users -------------------------------------------------------------------------

    def forget_user(self, platform: str, community: str, user: str) -> bool:
        """Record that a user's data was deleted; True when it was not recorded before."""
        with self._cursor() as cur:
            # The statement `warden privacy forget` records its deletions with (core.privacy).
            cur.execute(RECORD_DELETION, (platform, community, user, self.actor(cur)))
            return bool(cur.rowcount)

    def deleted_users(self) -> set[tuple[str, str, str]]:
        with self._cursor() as cur:
            cur.execute("SELECT platform, community, user_id FROM data_deletions")
            return {(str(a), str(b), str(c)) for a, b, c in cur.fetchall()}

    # -- the scorers' pointer -----------------------------------------------------------------

    def publish(self, record: ModelRecord) -> None:
        """Point the scorers at ``record`` (Redis); they load it between batches."""
        asyncio.run(self._publish(record))

    async def _publish(self, record: ModelRecord) -> None:
        from redis.exceptions import RedisError

        from core.clients import redis_client

        client = redis_client(self.settings.redis)
        try:
            await write_active(
                client,
                self.name,
                ActiveModel(record.version, record.path, datetime.now(UTC).isoformat()),
            )
        except (RedisError, OSError) as exc:
            raise TransientError(
                f"{record.version} is active in the registry, but the scorers' pointer in Redis"
                f" (WARDEN_REDIS__URL) could not be written: {exc}; any `warden models` command"
                " writes it again"
            ) from exc
        finally:
            await client.aclose()

    def sync_pointer(self) -> str | None:
        """Write the pointer when Redis does not name the registry's active model (after a
        Redis flush or a failed write); returns the version written, if any."""
        record = self.active()
        if record is None:
            return None
        return asyncio.run(self._sync(record))

    async def _sync(self, record: ModelRecord) -> str | None:
        from core.clients import redis_client

        client = redis_client(self.settings.redis)
        try:
            pointer = await read_active(client, self.name)
        finally:
            await client.aclose()
        if pointer is not None and (pointer.version, pointer.path) == (record.version, record.path):
            return None
        await self._publish(record)
        return record.version
