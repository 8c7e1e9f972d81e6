"""Training data from use: moderators' reviews joined to the verdicts they judged.

How a label is made (``build``):

- **Reviews only** (``core.reviews``). A moderator's review (``moderation.feedback.v1``, kind
  ``review``, with ``label_toxic``) is a label; a user's dispute alone is not (the author's
  claim), it counts once a moderator decides it (the review that upholds or overturns it). Each
  moderator's latest review of a message counts once; the message's label is the majority, and
  a tie is dropped (counted as ``conflicting``).
- **Joined to the verdict.** The verdict (``moderation.verdicts.v1``) gives the text as the
  scorer read it and the context features it used (``features``), so the booster finally
  learns what the Redis counters mean. A review whose verdict is no longer on the topic is
  counted as ``unjoined`` and not used.
- **Deduplicated by text.** Many messages with one normalised text (a copypasta reviewed fifty
  times) make one row: the majority label over them (ties dropped), the latest context.
- **Weights.** One reviewer gives weight 1; each further agreeing moderator adds 0.5, up to 2.
  ``TrainConfig.feedback_weight`` multiplies them (4 by default, like the chat rows).
- **Held out.** A stable 20 % of the texts (by a hash of the normalised text) is never trained
  on: the held-out slice that measures a retrain (``feedback_holdout``).
- **Deleted data.** Messages of a user whose data was deleted (``data_deletions``, written by
  ``warden models forget-user``) and reviews of them are left out, whenever the review was made.
- **Weak labels (opt-in).** With ``weak=True``, logged verdicts nobody reviewed join as labels
  when the model was nearly certain (P >= 0.97 toxic, <= 0.03 not), with weight 0.25 and at
  most five per reviewed row: they carry context features in volume, and they can only
  confirm what the model already believed, so they are off by default.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.reviews import held_out, majority, review_votes
from retrain.datasets import Example
from toxicity.base import CONTEXT_FEATURES
from toxicity.normalize import normalize

WEAK_HIGH, WEAK_LOW, WEAK_WEIGHT, WEAK_PER_REVIEWED = 0.97, 0.03, 0.25, 5


@dataclass(frozen=True)
class Labelled:
    """One training text from use."""

    text: str
    label: bool
    weight: float
    context: tuple[float | None, ...]
    message_id: str
    community: str
    source: str  # "review" or "weak"


@dataclass
class FeedbackData:
    train: list[Labelled] = field(default_factory=list)
    holdout: list[Labelled] = field(default_factory=list)
    stats: Counter[str] = field(default_factory=Counter)

    def examples(self) -> tuple[Example, ...]:
        """The training rows as ``retrain.training`` reads them (source ``feedback``)."""
        return tuple(
            Example(
                text=row.text,
                label=int(row.label),
                source="feedback",
                context=row.context,
                weight=row.weight,
            )
            for row in self.train
        )


def in_holdout(text: str) -> bool:
    return held_out(normalize(text))


def context_of(verdict: dict[str, Any]) -> tuple[float | None, ...]:
    features = verdict.get("features") or {}
    values = []
    for name in CONTEXT_FEATURES:
        value = features.get(name)
        values.append(float(value) if isinstance(value, int | float) else None)
    return tuple(values)


def author(verdict: dict[str, Any]) -> tuple[str, str, str]:
    return (str(verdict["platform"]), str(verdict["community"]), str(verdict["user"]))


def build(
    verdicts: Iterable[dict[str, Any]],
    feedback: Iterable[dict[str, Any]],
    *,
    deleted: set[tuple[str, str, str]] = frozenset(),  # type: ignore[assignment]
    weak: bool = False,
) -> FeedbackData:
    """Labelled texts from reviews (and, with ``weak``, confident unreviewed verdicts)."""
    data = FeedbackData()
    by_id: dict[str, dict[str, Any]] = {}
    for verdict in verdicts:
        by_id[verdict["message_id"]] = verdict  # the latest delivery of a message wins
    votes, data.stats["disputes_or_unlabelled"] = review_votes(feedback)

    by_text: dict[str, list[tuple[dict[str, Any], list[bool]]]] = {}
    for message_id, labels in votes.items():
        found = by_id.get(message_id)
        if found is None:
            data.stats["unjoined"] += 1
            continue
        if author(found) in deleted:
            data.stats["deleted_user"] += 1
            continue
        text_key = normalize(found["text"])
        if text_key:
            by_text.setdefault(text_key, []).append((found, labels))

    for group in by_text.values():
        labels = [label for _, votes_of in group for label in votes_of]
        label = majority(labels)
        if label is None:
            data.stats["conflicting"] += 1
            continue
        agreeing = sum(labels) if label else len(labels) - sum(labels)
        verdict = max(group, key=lambda pair: str(pair[0].get("scored_at", "")))[0]
        row = Labelled(
            text=verdict["text"],
            label=label,
            weight=min(2.0, 1.0 + 0.5 * (agreeing - 1)),
            context=context_of(verdict),
            message_id=verdict["message_id"],
            community=verdict["community"],
            source="review",
        )
        (data.holdout if in_holdout(row.text) else data.train).append(row)
        data.stats["reviewed_texts"] += 1
    if weak:
        _add_weak(data, by_id.values(), set(by_text), deleted)
    data.stats["train"] = len(data.train)
    data.stats["holdout"] = len(data.holdout)
    return data


def _add_weak(
    data: FeedbackData,
    verdicts: Iterable[dict[str, Any]],
    reviewed: set[str],
    deleted: set[tuple[str, str, str]],
) -> None:
    budget = WEAK_PER_REVIEWED * max(1, data.stats["reviewed_texts"])
    seen = set(reviewed)
    for verdict in verdicts:
        if budget <= 0:
            break
        p = float(verdict.get("p_toxic", 0.5))
        if WEAK_LOW < p < WEAK_HIGH or author(verdict) in deleted:
            continue
        key = normalize(verdict["text"])
        if not key or key in seen or in_holdout(verdict["text"]):
            continue
        seen.add(key)
        budget -= 1
        data.train.append(
            Labelled(
                text=verdict["text"],
                label=p >= WEAK_HIGH,
                weight=WEAK_WEIGHT,
                context=context_of(verdict),
                message_id=verdict["message_id"],
                community=verdict["community"],
                source="weak",
            )
        )
        data.stats["weak"] += 1


def holdout_contexts(rows: Sequence[Labelled]) -> list[dict[str, float | None]]:
    """The context of each held-out row as the scorer passes it to the model."""
    return [dict(zip(CONTEXT_FEATURES, row.context, strict=True)) for row in rows]
