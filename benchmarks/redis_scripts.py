"""The scorer's Redis scripts alone: ``python -m benchmarks.redis_scripts [--rounds N]``.

Runs, on the local stack's Redis (a logical database of its own, emptied first), what the scorer
asks of Redis a batch: the context read, the context update and the stream detectors' script,
on ``warden bench``'s two workloads stamped as its drains stamp them (a few seconds of event time
for 20,000 lines, so that most users are first-time chatters and open raid keys, as there), in
batches of 512. No broker, no model: the numbers are Redis's own main-thread CPU a message (from
``INFO cpu``, around each workload), the client's wall time a message per call, and the calls a
message each command took (``INFO commandstats``), so a change to a script shows what it moved
without the noise of a drain. ``answers`` is a digest of every answer (context features, window
counts, raid events), to check that a change to a script answers the same.

The result goes to ``benchmarks/results/redis-scripts.json``. Redis's counters are server-wide:
run it on a stack nothing else is using.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from benchmarks.host import machine
from benchmarks.pipeline import workload
from core.settings import Settings
from schemas.detection import DetectorThresholds
from schemas.events import ChatMessage
from scorers.context_store import FeatureStore, Outcome, Position
from scorers.detectors import entry, traits
from scorers.stream_state import StreamState

RESULT = Path(__file__).resolve().parent / "results" / "redis-scripts.json"
DATABASE = 15  # the stack's scorers use database 0
# Event time between two lines, as a drain at about these rates stamps them.
SPACING_S = {"unique": 1 / 1_000, "livestream": 1 / 3_000}
START = datetime(2026, 6, 1, tzinfo=UTC)


def stamped(kind: str, count: int) -> list[ChatMessage]:
    spacing = timedelta(seconds=SPACING_S[kind])
    return [
        ChatMessage.model_validate(
            {**record, "sent_at": START + i * spacing, "received_at": START + i * spacing}
        )
        for i, record in enumerate(workload(kind, count, f"{kind[0]}-"))
    ]


async def _cpu(client: aioredis.Redis) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])


async def one_round(
    client: aioredis.Redis, messages: list[ChatMessage], batch: int
) -> dict[str, Any]:
    """Redis's CPU, the calls' wall time and the commands, a message, over one workload."""
    rng = random.Random(7)  # noqa: S311 - reproducible outcomes, not a secret
    outcomes = [Outcome(bad=rng.random() < 0.1, violation=rng.random() < 0.03) for _ in messages]
    harm = [(o.bad, ["insult"] if o.bad else []) for o in outcomes]
    offsets: dict[int, int] = {}
    positions = []
    for message in messages:  # six partitions, a user's lines on one, offsets in order
        partition = sum(map(ord, message.user)) % 6
        offsets[partition] = offsets.get(partition, -1) + 1
        positions.append(Position("chat.messages", partition, offsets[partition]))
    entries = [entry(traits(m.text)) for m in messages]
    limits = [DetectorThresholds()] * len(messages)
    await client.flushdb()
    store, state = FeatureStore(client), StreamState(client)
    now = (START + timedelta(hours=1)).timestamp()
    digest = hashlib.sha256()
    wall = {"read": 0.0, "update": 0.0, "detectors": 0.0}
    await client.config_resetstat()
    cpu_before = await _cpu(client)
    for start in range(0, len(messages), batch):
        part = slice(start, start + batch)
        began = time.perf_counter()
        contexts = await store.read(messages[part], now=now)
        wall["read"] += time.perf_counter() - began
        began = time.perf_counter()
        await store.update(messages[part], outcomes[part], now=now, positions=positions[part])
        wall["update"] += time.perf_counter() - began
        began = time.perf_counter()
        windows, raids = await state.apply(messages[part], entries[part], limits[part], harm[part])
        wall["detectors"] += time.perf_counter() - began
        seen = [
            (r.index, r.raid_id, r.size, r.messages, r.accounts, sorted(map(repr, r.lines)))
            for r in raids
        ]
        digest.update(repr((contexts, windows, seen)).encode())
    cpu = await _cpu(client) - cpu_before
    stats = await client.info("commandstats")
    n = len(messages)
    commands = {
        name.removeprefix("cmdstat_"): (value["calls"] / n, value["usec"] / n)
        for name, value in stats.items()
    }
    return {
        "redis_cpu_us_per_msg": round(1e6 * cpu / n, 1),
        "wall_us_per_msg": {call: round(1e6 * s / n, 1) for call, s in wall.items()},
        "calls_per_msg": {c: round(v[0], 2) for c, v in commands.items() if v[0] >= 0.01},
        "command_us_per_msg": {c: round(v[1], 2) for c, v in commands.items() if v[1] >= 0.01},
        "answers": digest.hexdigest()[:16],
    }


async def run(
    rounds: int, count: int, batch: int, settings: Settings | None = None
) -> dict[str, Any]:
    settings = settings or Settings()
    client = aioredis.Redis.from_url(settings.redis.url.get_secret_value(), db=DATABASE)
    out: dict[str, Any] = {"machine": machine(), "count": count, "batch": batch, "rounds": rounds}
    try:
        for kind in ("unique", "livestream"):
            messages = stamped(kind, count)
            results = [await one_round(client, messages, batch) for _ in range(rounds)]
            cpus = [r["redis_cpu_us_per_msg"] for r in results]
            out[kind] = {
                "redis_cpu_us_per_msg_median": statistics.median(cpus),
                "redis_cpu_us_per_msg": cpus,
                **{k: v for k, v in results[-1].items() if k != "redis_cpu_us_per_msg"},
            }
            if len({r["answers"] for r in results}) != 1:
                raise RuntimeError(f"{kind}: rounds answered differently")
        await client.flushdb()
    finally:
        await client.aclose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--json", type=Path, default=RESULT)
    args = parser.parse_args()
    result = asyncio.run(run(args.rounds, args.count, args.batch))
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    for kind in ("unique", "livestream"):
        r = result[kind]
        sys.stdout.write(
            f"{kind}: Redis {r['redis_cpu_us_per_msg_median']} us of CPU a message "
            f"(rounds {r['redis_cpu_us_per_msg']}), wall a message {r['wall_us_per_msg']}, "
            f"answers {r['answers']}\n"
        )
    sys.stdout.write(f"-> {args.json}\n")


if __name__ == "__main__":
    main()
