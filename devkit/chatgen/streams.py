"""Seeded message streams, the chat generator's library face.

The natural chat of one stream (:func:`iter_generated`, :func:`generate`: the bundled sample and
test data) and a benchmark stream with knobs (:func:`iter_load`, :func:`load_messages`), each
message a ``ChatMessage``-compatible dict; :func:`to_json_line` writes one as JSONL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from itertools import islice
from typing import Any

from devkit.chatgen.generator import (
    DEFAULT_CHANNEL,
    DEFAULT_COMMUNITY,
    DEFAULT_START,
    NATURAL_RATE_PER_S,
    ChatGenerator,
    Generated,
)


def iter_generated(
    seed: int = 7,
    count: int | None = 3000,
    *,
    community: str = DEFAULT_COMMUNITY,
    channel: str = DEFAULT_CHANNEL,
    start: datetime = DEFAULT_START,
    toxic_share: float = 0.10,
) -> Iterator[Generated]:
    """The natural chat of one stream: ``count`` items (None: forever)."""
    gen = ChatGenerator(
        seed, community=community, channel=channel, start=start, toxic_share=toxic_share
    )
    return gen.stream() if count is None else islice(gen.stream(), count)


def generate(
    seed: int = 7,
    count: int = 3000,
    *,
    community: str = DEFAULT_COMMUNITY,
    channel: str = DEFAULT_CHANNEL,
    start: datetime = DEFAULT_START,
    toxic_share: float = 0.10,
) -> list[tuple[dict[str, Any], bool]]:
    """``count`` messages of natural chat, each with its ground-truth toxic flag."""
    items = iter_generated(
        seed, count, community=community, channel=channel, start=start, toxic_share=toxic_share
    )
    return [(g.message, g.toxic) for g in items]


def iter_load(
    count: int,
    *,
    seed: int = 0,
    repetition: float = 0.25,
    raid_every: int | None = None,
    unique: bool = False,
    rate: float | None = None,
    community: str = DEFAULT_COMMUNITY,
    channel: str = DEFAULT_CHANNEL,
    start: datetime = DEFAULT_START,
    toxic_share: float = 0.10,
    id_prefix: str = "m",
) -> Iterator[Generated]:
    """A deterministic benchmark stream of ``count`` labelled messages.

    ``rate`` (messages per second, approximate) compresses or stretches the clock; the default
    is livestream speed (~80 a minute). See :meth:`ChatGenerator.load` for the other knobs.
    """
    if rate is not None and rate <= 0:
        raise ValueError("rate must be positive")
    scale = 1.0 if rate is None else NATURAL_RATE_PER_S / rate
    gen = ChatGenerator(
        seed,
        community=community,
        channel=channel,
        start=start,
        toxic_share=toxic_share,
        id_prefix=id_prefix,
        unique=unique,
        time_scale=scale,
    )
    return gen.load(count, repetition=repetition, raid_every=raid_every)


def load_messages(
    count: int,
    *,
    seed: int = 0,
    repetition: float = 0.25,
    raid_every: int | None = None,
    unique: bool = False,
    rate: float | None = None,
    community: str = DEFAULT_COMMUNITY,
    channel: str = DEFAULT_CHANNEL,
    start: datetime = DEFAULT_START,
) -> Iterator[dict[str, Any]]:
    """Like :func:`iter_load`, messages only (``ChatMessage``-compatible dicts)."""
    for item in iter_load(
        count,
        seed=seed,
        repetition=repetition,
        raid_every=raid_every,
        unique=unique,
        rate=rate,
        community=community,
        channel=channel,
        start=start,
    ):
        yield item.message


def to_json_line(message: dict[str, Any]) -> str:
    """One JSONL line (no newline): compact, UTF-8 characters kept as they are."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))
