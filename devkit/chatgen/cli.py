"""``python -m devkit.chatgen``: write seeded livestream chat as ChatMessage JSONL."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TextIO

from devkit.chatgen.generator import DEFAULT_CHANNEL, DEFAULT_COMMUNITY, DEFAULT_START, Generated
from devkit.chatgen.streams import iter_generated, iter_load, to_json_line


def _write(items: Iterator[Generated], out: TextIO, labels: TextIO | None) -> tuple[int, int]:
    n = toxic = 0
    for item in items:
        out.write(to_json_line(item.message) + "\n")
        if labels is not None:
            row = {"message_id": item.message["message_id"], "toxic": item.toxic, "kind": item.kind}
            labels.write(json.dumps(row, separators=(",", ":")) + "\n")
        n += 1
        toxic += item.toxic
    return n, toxic


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m devkit.chatgen",
        description="Write seeded, realistic livestream chat as ChatMessage JSONL.",
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--count", type=int, default=3000)
    p.add_argument("--out", type=Path, help="output JSONL (default: stdout)")
    p.add_argument("--labels", type=Path, help="also write {message_id, toxic, kind} JSONL here")
    p.add_argument("--community", default=DEFAULT_COMMUNITY)
    p.add_argument("--channel", default=DEFAULT_CHANNEL)
    p.add_argument(
        "--start",
        type=datetime.fromisoformat,
        default=DEFAULT_START,
        help="first timestamp, ISO-8601 with a zone",
    )
    p.add_argument("--toxic-share", type=float, default=0.10)
    load = p.add_argument_group("load generation (benchmarks)")
    load.add_argument("--load", action="store_true", help="benchmark stream instead of the demo")
    load.add_argument("--repetition", type=float, default=0.25)
    load.add_argument("--raid-every", type=int, default=None)
    load.add_argument("--unique", action="store_true", help="make every text distinct")
    load.add_argument("--rate", type=float, default=None, help="messages per second")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Write the chat (or a benchmark stream with ``--load``); the exit status."""
    args = _parser().parse_args(argv)
    if args.start.tzinfo is None:
        sys.stderr.write("--start needs a time zone, e.g. 2024-06-15T18:00:00+00:00\n")
        return 2
    items: Iterator[Generated]
    if args.load:
        items = iter_load(
            args.count,
            seed=args.seed,
            repetition=args.repetition,
            raid_every=args.raid_every,
            unique=args.unique,
            rate=args.rate,
            community=args.community,
            channel=args.channel,
            start=args.start,
            toxic_share=args.toxic_share,
        )
    else:
        items = iter_generated(
            args.seed,
            args.count,
            community=args.community,
            channel=args.channel,
            start=args.start,
            toxic_share=args.toxic_share,
        )
    labels: TextIO | None = None
    try:
        if args.labels is not None:
            args.labels.parent.mkdir(parents=True, exist_ok=True)
            labels = args.labels.open("w", encoding="utf-8", newline="\n")
        if args.out is None:
            n, toxic = _write(items, sys.stdout, labels)
        else:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with args.out.open("w", encoding="utf-8", newline="\n") as out:
                n, toxic = _write(items, out, labels)
    finally:
        if labels is not None:
            labels.close()
    share = toxic / n if n else 0.0
    sys.stderr.write(f"wrote {n} messages, {toxic} toxic ({share:.1%})\n")
    return 0
