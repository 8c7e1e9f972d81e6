"""Replay a chat log (JSONL or CSV) into ``chat.messages.v1``.

Pacing keeps the log's own rhythm: at ``speed=1`` messages go out as they were sent, at
``speed=20`` twenty times faster, at ``speed=0`` as fast as the broker takes them; ``rate`` sets a
fixed number of messages per second instead. ``loops`` replays the log that many times
(``0``: until stopped), prefixing message ids with the loop number so each pass is new.
Timestamps are moved to the present (keeping each message's sent -> received delay) so that
latency measured downstream is real. Lines that are not valid ChatMessages go to the dead-letter
topic and the replay goes on.

Formats, chosen by the file's suffix
------------------------------------
``.jsonl`` (or anything not ``.csv``): one ``ChatMessage`` JSON object per line.

``.csv``: a header row, then one message per row. Columns (order free, unknown ones ignored):

==============  ========  ==============================================================
column          required  meaning
==============  ========  ==============================================================
message_id      yes       unique id of the message
user            yes       the author's platform user id
text            yes       the message text
sent_at         yes       ISO-8601 with a zone (``2024-06-15T18:00:01+00:00``) or epoch
                          seconds (``1718474401.3``)
received_at     no        same formats; default: ``sent_at``
platform        no        ``discord``, ``slack``, ``twitch``, ``webhook``, ``replay`` (default)
community       no        guild / workspace / channel owner; default ``replay``
channel         no        default ``#main``
user_name       no        display name
user_roles      no        roles separated by ``|`` (``moderator|subscriber``)
reply_to        no        id of the message this one answers
edited          no        ``true``/``false`` (also ``1``/``0``, ``yes``/``no``)
attachments     no        attachment URLs separated by spaces
==============  ========  ==============================================================
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.errors import PayloadError
from ingest.publisher import Publisher
from schemas.events import ChatMessage, utcnow

logger = logging.getLogger(__name__)

CSV_REQUIRED = ("message_id", "user", "text", "sent_at")
CSV_COLUMNS = (
    *CSV_REQUIRED,
    "received_at",
    "platform",
    "community",
    "channel",
    "user_name",
    "user_roles",
    "reply_to",
    "edited",
    "attachments",
)
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


@dataclass
class ReplayStats:
    published: int = 0
    rejected: int = 0
    seconds: float = 0.0
    dropped: int = 0


def read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line.rstrip(b"\n")


def _timestamp(value: str, column: str) -> str:
    value = value.strip()
    try:
        return datetime.fromtimestamp(float(value), UTC).isoformat()
    except ValueError:
        pass
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"{column} needs a time zone: {value!r}")
    return parsed.isoformat()


def csv_record(row: dict[str, str | None]) -> dict[str, Any]:
    """One CSV row (see the module doc for the columns) as a ChatMessage-shaped dict."""
    row = {k.strip(): v for k, v in row.items() if k is not None}
    missing = [c for c in CSV_REQUIRED if not (row.get(c) or "").strip()]
    if missing:
        raise ValueError(f"missing column(s): {', '.join(missing)}")

    def text(name: str) -> str | None:
        value = row.get(name)
        return value.strip() if value and value.strip() else None

    edited = (row.get("edited") or "").strip().lower()
    if edited not in _TRUE | _FALSE:
        raise ValueError(f"edited must be true or false, got {edited!r}")
    sent_at = _timestamp(row["sent_at"] or "", "sent_at")
    received = text("received_at")
    return {
        "message_id": text("message_id"),
        "platform": text("platform") or "replay",
        "community": text("community") or "replay",
        "channel": text("channel") or "#main",
        "user": text("user"),
        "user_name": text("user_name"),
        "user_roles": [r.strip() for r in (row.get("user_roles") or "").split("|") if r.strip()],
        "text": row.get("text") or "",
        "attachments": [{"url": url} for url in (row.get("attachments") or "").split()],
        "reply_to": text("reply_to"),
        "edited": edited in _TRUE,
        "sent_at": sent_at,
        "received_at": _timestamp(received, "received_at") if received else sent_at,
    }


def check_source(path: Path) -> None:
    """Fail before anything is published when ``path`` cannot be replayed at all.

    A CSV log needs a UTF-8 header with the required columns; a bad row later is data (it goes
    to the dead-letter topic), but a bad header would make every row one.
    """
    if path.suffix.lower() != ".csv":
        return
    with path.open("rb") as handle:
        _check_header(csv.DictReader(_decoded(handle, path)).fieldnames, path)


def _check_header(fieldnames: Sequence[str] | None, path: Path) -> None:
    missing = [c for c in CSV_REQUIRED if c not in (fieldnames or [])]
    if missing:
        raise PayloadError(f"{path}:1: the CSV header lacks {', '.join(missing)}")


def _decoded(lines: Iterable[bytes], path: Path) -> Iterator[str]:
    """Each line as text; a line that is not UTF-8 stops the replay, named by its number."""
    for number, raw in enumerate(lines, start=1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PayloadError(
                f"{path}:{number}: not UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1})"
            ) from exc


def read_records(path: Path) -> Iterator[tuple[int, bytes, dict[str, Any] | Exception]]:
    """(line number, raw bytes, record or the error that stops it being one) per message."""
    if path.suffix.lower() != ".csv":
        for number, raw in read_lines(path):
            try:
                record = json.loads(raw)
                if not isinstance(record, dict):
                    raise ValueError("a line must be a JSON object")
            except ValueError as exc:
                yield number, raw, exc
            else:
                yield number, raw, record
        return
    with path.open("rb") as handle:
        reader = csv.DictReader(_decoded(handle, path))
        _check_header(reader.fieldnames, path)
        for row in reader:
            number = reader.line_num
            out = io.StringIO()
            csv.writer(out).writerow([row.get(name) or "" for name in reader.fieldnames or []])
            raw = out.getvalue().rstrip("\r\n").encode()
            try:
                yield number, raw, csv_record(row)
            except (ValueError, TypeError) as exc:
                yield number, raw, exc


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
    """Publish every message of ``path`` ``loops`` times (0: forever); returns the counts."""
    stats = ReplayStats()
    started = time.monotonic()
    source = f"replay:{path.name}"
    sent_count = 0
    passes = itertools.count() if loops == 0 else range(loops)
    for loop in passes:
        prefix = f"{id_prefix}{loop}-" if loops != 1 else id_prefix
        first: datetime | None = None
        loop_started = time.monotonic()
        for number, raw, parsed in read_records(path):
            try:
                if isinstance(parsed, Exception):
                    raise parsed
                due, first = offset_seconds(parsed, first)
                message = ChatMessage.model_validate_json(json.dumps(restamp(parsed, prefix)))
            except (ValueError, KeyError, TypeError, ValidationError) as exc:
                if loop == 0:  # a bad line is reported once, not once per pass
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
            if await publisher.publish(message):
                stats.published += 1
            else:
                stats.dropped += 1
            sent_count += 1
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
