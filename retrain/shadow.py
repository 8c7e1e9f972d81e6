"""The shadow comparison: how a challenger scoring in shadow differs from the live model.

A challenger is a scorer started with ``WARDEN_SCORER__SHADOW=true`` and the challenger's
``WARDEN_MODEL__PATH``: it reads the same chat in a consumer group of its own and publishes to
``moderation.verdicts.shadow.v1``, which no actioner reads. This job reads that topic, the live
verdicts and the feedback topic (from ``since`` to now), joins them by message id and reports,
per challenger: how often it agrees with the live model (the model's own flag, and severity),
the flag-rate difference, and, on messages a moderator reviewed, who was right.

The model's own flag (``model_flagged``) is compared, not ``flagged``: a challenger runs no
stream detectors (it must not count into their windows), so spam and flood labels are the live
scorer's alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from core.settings import Settings
from core.topic_reading import read_topic
from schemas.topics import FEEDBACK, VERDICTS, VERDICTS_SHADOW


@dataclass
class Tally:
    """One challenger against the live model."""

    challenger: str
    live_models: set[str] = field(default_factory=set)
    messages: int = 0
    agree_flag: int = 0
    agree_severity: int = 0
    live_flagged: int = 0
    challenger_flagged: int = 0
    reviewed: int = 0
    both_right: int = 0
    only_live_right: int = 0
    only_challenger_right: int = 0
    both_wrong: int = 0

    def summary(self) -> dict[str, Any]:
        n = max(1, self.messages)
        return {
            **asdict(self),
            "live_models": sorted(self.live_models),
            "flag_agreement": self.agree_flag / n if self.messages else None,
            "severity_agreement": self.agree_severity / n if self.messages else None,
            "live_flag_rate": self.live_flagged / n if self.messages else None,
            "challenger_flag_rate": self.challenger_flagged / n if self.messages else None,
            "flag_rate_difference": (self.challenger_flagged - self.live_flagged) / n
            if self.messages
            else None,
            "live_accuracy_on_reviewed": (self.both_right + self.only_live_right) / self.reviewed
            if self.reviewed
            else None,
            "challenger_accuracy_on_reviewed": (self.both_right + self.only_challenger_right)
            / self.reviewed
            if self.reviewed
            else None,
        }


def model_flag(verdict: dict[str, Any]) -> bool:
    own = verdict.get("model_flagged")
    return bool(verdict["flagged"] if own is None else own)


def compare(
    live: list[dict[str, Any]], shadow: list[dict[str, Any]], feedback: list[dict[str, Any]]
) -> list[Tally]:
    """Join by message id; the latest moderator review of a message is its label."""
    by_id = {v["message_id"]: v for v in live}
    labels: dict[str, bool] = {}
    for item in sorted(feedback, key=lambda f: f["created_at"]):
        if item.get("kind") == "review" and item.get("label_toxic") is not None:
            labels[item["message_id"]] = bool(item["label_toxic"])
    tallies: dict[str, Tally] = {}
    seen: set[tuple[str, str]] = set()
    for challenger in shadow:
        key = (challenger["model_version"], challenger["message_id"])
        mine = by_id.get(challenger["message_id"])
        if mine is None or key in seen:  # not scored live (yet), or delivered twice
            continue
        seen.add(key)
        tally = tallies.setdefault(key[0], Tally(key[0]))
        tally.live_models.add(mine["model_version"])
        theirs_flag, live_flag = model_flag(challenger), model_flag(mine)
        tally.messages += 1
        tally.agree_flag += theirs_flag == live_flag
        tally.agree_severity += challenger["severity"] == mine["severity"]
        tally.live_flagged += live_flag
        tally.challenger_flagged += theirs_flag
        label = labels.get(challenger["message_id"])
        if label is None:
            continue
        tally.reviewed += 1
        live_right, theirs_right = live_flag == label, theirs_flag == label
        if live_right and theirs_right:
            tally.both_right += 1
        elif live_right:
            tally.only_live_right += 1
        elif theirs_right:
            tally.only_challenger_right += 1
        else:
            tally.both_wrong += 1
    return sorted(tallies.values(), key=lambda t: t.challenger)


async def report(settings: Settings, since: datetime | None) -> list[Tally]:
    live = await read_topic(settings, VERDICTS, since)
    shadow = await read_topic(settings, VERDICTS_SHADOW, since)
    feedback = await read_topic(settings, FEEDBACK, since)
    return compare(live, shadow, feedback)
