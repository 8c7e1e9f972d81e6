"""A community's detector thresholds, mirrored to Redis for the scorer.

The policy (in PostgreSQL) is the truth; the scorer reads only Redis, per community:

    wd:policy:<platform>:<community>   hash, field "detectors" = DetectorThresholds as JSON,
                                       field "version" = the policy version's id

(``schemas.detection.policy_key``, ``DETECTORS_FIELD`` and ``VERSION_FIELD``); the scorer puts
the version it applied in ``Verdict.policy_version``. Every stored policy version is
mirrored right after it is committed (``warden policy set|preset|go-live``, and whoever saves
through ``actioners.policystore.PolicyStore.save`` with a mirror). A community with nothing in
Redis is scored with the defaults (the ``balanced`` preset's thresholds). A mirror that fails
(Redis away) leaves the stored version in force for the actioner and the old thresholds in the
scorer: the error says so, and ``warden policy sync`` writes the mirror again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.clients import redis_client
from core.errors import TransientError
from core.settings import RedisSettings
from schemas.detection import DETECTORS_FIELD, VERSION_FIELD, DetectorThresholds, policy_key

if TYPE_CHECKING:
    import redis.asyncio as aioredis


class MirrorError(TransientError):
    """The detector thresholds could not be written to Redis (retriable: run it again)."""


class DetectorMirror:
    """Writes communities' ``detectors`` sections to Redis."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    @classmethod
    def connect(cls, settings: RedisSettings) -> DetectorMirror:
        """A mirror on the Redis of ``WARDEN_REDIS__URL`` (connects on first use)."""
        return cls(redis_client(settings))

    async def publish(
        self,
        platform: str,
        community: str,
        detectors: DetectorThresholds,
        version: str | None = None,
    ) -> None:
        """Write one community's thresholds with the id of the policy version they belong to
        (None: none, and an older version's id is removed, in the same transaction);
        ``MirrorError`` when Redis does not take them."""
        from redis.exceptions import RedisError

        key = policy_key(platform, community)
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hset(key, DETECTORS_FIELD, detectors.model_dump_json())
                if version is None:
                    pipe.hdel(key, VERSION_FIELD)
                else:
                    pipe.hset(key, VERSION_FIELD, version)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise MirrorError(
                f"detector thresholds of {platform}:{community} not mirrored to Redis "
                f"(WARDEN_REDIS__URL): {type(exc).__name__}: {str(exc)[:200]}"
            ) from exc

    async def read(self, platform: str, community: str) -> DetectorThresholds | None:
        """What the scorer would read for a community (None: nothing mirrored)."""
        raw = await self.client.hget(  # type: ignore[misc]
            policy_key(platform, community), DETECTORS_FIELD
        )
        if raw is None:
            return None
        return DetectorThresholds.model_validate_json(raw)

    async def close(self) -> None:
        await self.client.aclose()
