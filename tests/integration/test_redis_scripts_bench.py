"""``python -m benchmarks.redis_scripts`` against the local stack's Redis, on a small sample."""

from __future__ import annotations

import asyncio

from benchmarks.redis_scripts import run
from core.settings import Settings


def test_the_scripts_benchmark_answers_the_same_each_round_and_opens_raid_keys(
    stack: Settings,
) -> None:
    result = asyncio.run(run(rounds=2, count=600, batch=128, settings=stack))
    for kind in ("unique", "livestream"):
        measured = result[kind]
        assert len(measured["redis_cpu_us_per_msg"]) == 2
        assert measured["redis_cpu_us_per_msg_median"] > 0
        assert set(measured["wall_us_per_msg"]) == {"read", "update", "detectors"}
        assert len(measured["answers"]) == 16  # the same in both rounds, or run raises
    # Stamped as a drain stamps them, unique lines come from first-time chatters: each opens
    # the raid keys (accounts and lines: two more ZADDs than the flood and spam windows' two).
    assert result["unique"]["calls_per_msg"]["zadd"] >= 3.5
