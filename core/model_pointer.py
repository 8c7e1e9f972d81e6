"""The active-model pointer: which model directory a registry's scorers run.

PostgreSQL's model registry (``retrain.registry``, ``warden models``) is the record of every
model and promotion; this Redis key is its one value the scorers need. A scorer reads it at start
and polls it between batches (``WARDEN_MODEL__POLL_S``), so a promotion or a rollback reaches
every replica without a restart. One key per registry name (``WARDEN_MODEL__REGISTRY``), so a
staging and a production deployment may share a Redis and a PostgreSQL.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis.asyncio as aioredis

logger = logging.getLogger(__name__)

KEY_PREFIX = "warden:model:active:"


def pointer_key(registry: str) -> str:
    return f"{KEY_PREFIX}{registry}"


@dataclass(frozen=True)
class ActiveModel:
    """The model a registry's scorers should run: its version and its directory."""

    version: str
    path: str
    promoted_at: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def parse(cls, raw: bytes | str) -> ActiveModel:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("the active-model pointer is not a JSON object")
        return cls(str(data["version"]), str(data["path"]), str(data.get("promoted_at", "")))


async def read_active(client: aioredis.Redis, registry: str) -> ActiveModel | None:
    """The pointer, or None when no model was ever promoted (or the value is unreadable,
    which is logged: the caller keeps the model it runs)."""
    raw = await client.get(pointer_key(registry))
    if raw is None:
        return None
    try:
        return ActiveModel.parse(raw)
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("ignoring the unreadable active-model pointer %s: %s", registry, exc)
        return None


async def write_active(client: aioredis.Redis, registry: str, active: ActiveModel) -> None:
    await client.set(pointer_key(registry), active.to_json())
