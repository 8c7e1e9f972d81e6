"""Replay a chat log (JSONL of ChatMessage objects) into ``chat.messages.v1``.

Pacing keeps the log's own rhythm: at ``speed=1`` messages go out as they were sent, at
``speed=20`` twenty times faster, at ``speed=0`` as fast as the broker takes them; ``rate`` sets a
fixed number of messages per second instead. Timestamps are moved to the present (keeping each
message's sent -> received delay) so that latency measured downstream is real. Lines that are not
valid ChatMessages go to the dead-letter topic and the replay goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ingest.publisher import Publisher
from schemas.events import ChatMessage, utcnow

logger = logging.getLogger(__name__)


@dataclass
class ReplayStats:
    published: int = 0
    rejected: int = 0
    seconds: float = 0.0


def read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line.rstrip(b"\n")


def restamp(record: dict[str, Any], id_prefix: str) -> dict[str, Any]:
    """Move a logged message to the present, keeping its sent -> received delay."""
    sent = datetime.fromisoformat(record["sent_at"])
    received = datetime.fromisoformat(record["received_at"])
    now = utcnow()
    record = dict(
        record, received_at=now.isoformat(), sent_at=(now - (received - sent)).isoformat()
    )
    if id_prefix:
        record["message_id"] = id_prefix + record["message_id"]
        if record.get("reply_to"):
            record["reply_to"] = id_prefix + record["reply_to"]
    return record


def offset_seconds(record: dict[str, Any], first: datetime | None) -> tuple[float, datetime | None]:
    """Seconds since the log's first message, by the log's own clock."""
    try:
        sent = datetime.fromisoformat(record["sent_at"])
    except (KeyError, TypeError, ValueError):
        return 0.0, first
    if first is None:
        return 0.0, sent
    return (sent - first) / timedelta(seconds=1), first


async def replay(
    publisher: Publisher,
    path: Path,
    *,
    speed: float = 1.0,
    rate: float | None = None,
    loops: int = 1,
    id_prefix: str = "",
) -> ReplayStats:
    """Publish every line of ``path`` ``loops`` times; returns what was published and rejected."""
    stats = ReplayStats()
    started = time.monotonic()
    source = f"replay:{path.name}"
    sent_count = 0
    for loop in range(loops):
        prefix = f"{id_prefix}{loop}-" if loops > 1 else id_prefix
        first: datetime | None = None
        loop_started = time.monotonic()
        for number, raw in read_lines(path):
            try:
                record = json.loads(raw)
                if not isinstance(record, dict):
                    raise ValueError("a line must be a JSON object")
                due, first = offset_seconds(record, first)
                message = ChatMessage.model_validate_json(json.dumps(restamp(record, prefix)))
            except (ValueError, KeyError, TypeError, ValidationError) as exc:
                await publisher.reject(raw, exc, f"{source}:{number}")
                stats.rejected += 1
                continue
            if rate:
                wait = loop_started + sent_count / rate - time.monotonic()
            elif speed > 0:
                wait = loop_started + due / speed - time.monotonic()
            else:
                wait = 0.0
            if wait > 0:
                await asyncio.sleep(wait)
            await publisher.publish(message)
            sent_count += 1
            stats.published += 1
        if rate:
            sent_count = 0
    await publisher.flush()
    stats.seconds = time.monotonic() - started
    logger.info(
        "replayed %d messages (%d rejected) in %.1f s",
        stats.published,
        stats.rejected,
        stats.seconds,
    )
    return stats
