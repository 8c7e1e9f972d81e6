"""The scorers' shared text-side cache against the real local Redis."""

from __future__ import annotations

import uuid

import numpy as np

from core.clients import redis_client
from core.settings import Settings
from scorers.app import SharedCache
from scorers.cache import Row, redis_key
from toxicity.lexicon import Hits


def row(value: float) -> Row:
    return Row(
        {
            "embeddings": np.array([value, value / 3], dtype=np.float32),
            "static": np.array([value * 2], dtype=np.float32),
        },
        Hits(profanity=1, words=("heck",)),
    )


async def test_rows_are_shared_per_model_version_and_cleared_per_version(
    stack: Settings,
) -> None:
    short = stack.model_copy(
        update={"scorer": stack.scorer.model_copy(update={"shared_cache_ttl_s": 120})}
    )
    mine = SharedCache(short, f"m-{uuid.uuid4().hex}")
    other = SharedCache(short, f"o-{uuid.uuid4().hex}")
    try:
        await mine.put({f"line {i}": row(float(i)) for i in range(2_500)})
        await other.put({"line 1": row(99.0)})

        found = await mine.get(["line 1", "line 2499", "never seen"])
        assert sorted(found) == ["line 1", "line 2499"]
        assert np.array_equal(found["line 2499"].arrays["embeddings"], [2499.0, 2499.0 / 3])
        assert found["line 1"].hits == Hits(profanity=1, words=("heck",))
        # Another model's rows never answer for this one's.
        assert (await other.get(["line 1"]))["line 1"].arrays["static"][0] == 198.0
        ttl = await mine.client.ttl(redis_key(mine.version, "line 1"))
        assert 0 < ttl <= 120

        # Cleared in several scan batches; the other version's rows stay.
        assert await mine.clear(batch=1_000) == 2_500
        assert await mine.get(["line 1", "line 2499"]) == {}
        assert await mine.clear() == 0
        assert "line 1" in await other.get(["line 1"])
    finally:
        await other.clear()
        await mine.close()
        await other.close()
        client = redis_client(stack.redis)
        assert await client.exists(redis_key(other.version, "line 1")) == 0
        await client.aclose()
