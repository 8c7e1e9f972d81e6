"""Moderators' reviews as labels: the one rule every job that learns from them shares.

A review (``moderation.feedback.v1``, kind ``review``, with ``label_toxic``) is a label; a
dispute alone is not (the author's claim). Each moderator's latest review of a message counts
once, the message's label is the majority of them, and a tie gives no label.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

# The share of reviewed items a job holds out to measure itself (never trained or fitted on).
HOLDOUT_PERCENT = 20


def review_votes(feedback: Iterable[dict[str, Any]]) -> tuple[dict[str, list[bool]], int]:
    """message id -> each moderator's latest label; and how many records were no label."""
    latest: dict[tuple[str, str], tuple[str, bool]] = {}
    skipped = 0
    for item in feedback:
        if item.get("kind") != "review" or item.get("label_toxic") is None:
            skipped += 1
            continue
        key = (str(item["message_id"]), str(item["user"]))
        stamp = str(item["created_at"])
        if key not in latest or latest[key][0] <= stamp:
            latest[key] = (stamp, bool(item["label_toxic"]))
    votes: dict[str, list[bool]] = {}
    for (message_id, _), (_, label) in latest.items():
        votes.setdefault(message_id, []).append(label)
    return votes, skipped


def majority(labels: list[bool]) -> bool | None:
    """The majority label, or None on a tie."""
    toxic = sum(labels)
    if toxic * 2 == len(labels):
        return None
    return toxic * 2 > len(labels)


def held_out(key: str, percent: int = HOLDOUT_PERCENT) -> bool:
    """Whether ``key`` falls in the stable held-out slice: the same answer on every run and
    machine (a hash, not a random draw)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100 < percent
