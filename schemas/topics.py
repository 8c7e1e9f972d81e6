"""Every topic declared once: name (with version), key, value type, partitions, retention.

Code never spells a topic name as a literal: it asks ``TOPICS`` (or the named constants) and
``TopicSpec.name_for(settings)``, which appends the configured suffix that keeps tests and
parallel environments apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from schemas.events import (
    ActionResult,
    ChatMessage,
    DeadLetter,
    DriftEvent,
    Event,
    Explanation,
    Feedback,
    RaidEvent,
    Verdict,
)

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    value_type: type[Event]
    partitions: int
    retention_ms: int
    cleanup_policy: Literal["delete", "compact"] = "delete"
    doc: str = ""

    def name_for(self, suffix: str = "") -> str:
        return self.name + suffix

    def config(self) -> dict[str, str]:
        """Topic-level broker configuration."""
        return {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": self.cleanup_policy,
        }


CHAT_MESSAGES = TopicSpec(
    name="chat.messages.v1",
    key="platform:community:user",
    value_type=ChatMessage,
    partitions=6,
    retention_ms=3 * DAY_MS,
    doc="Every chat message from every adapter.",
)
VERDICTS = TopicSpec(
    name="moderation.verdicts.v1",
    key="platform:community:user",
    value_type=Verdict,
    partitions=6,
    retention_ms=14 * DAY_MS,
    doc="One verdict per message: p_toxic, severity, features, model version.",
)
ACTIONS = TopicSpec(
    name="moderation.actions.v1",
    key="platform:community:user",
    value_type=ActionResult,
    partitions=3,
    retention_ms=30 * DAY_MS,
    doc="Every action done, skipped or failed.",
)
EXPLANATIONS = TopicSpec(
    name="moderation.explanations.v1",
    key="message_id",
    value_type=Explanation,
    partitions=3,
    # As long as chat.messages.v1: the explanation holds the text's words; the review service
    # stores what it needs in PostgreSQL at once (privacy: docs/privacy.md).
    retention_ms=3 * DAY_MS,
    doc="Word-level explanations of verdicts.",
)
FEEDBACK = TopicSpec(
    name="moderation.feedback.v1",
    key="message_id",
    value_type=Feedback,
    partitions=3,
    retention_ms=90 * DAY_MS,
    doc="Disputes by users and review decisions by moderators.",
)
DEADLETTER = TopicSpec(
    name="moderation.deadletter.v1",
    key="source topic",
    value_type=DeadLetter,
    partitions=1,
    retention_ms=30 * DAY_MS,
    doc="Payloads a service could not process, with the error and where they came from.",
)
RAIDS = TopicSpec(
    name="moderation.raids.v1",
    key="platform:community:channel",
    value_type=RaidEvent,
    partitions=3,
    retention_ms=30 * DAY_MS,
    doc="One event per raid the scorer saw: when, how many accounts, a sample of the lines.",
)
DRIFT = TopicSpec(
    name="moderation.drift.v1",
    key="platform:community",
    value_type=DriftEvent,
    partitions=1,
    retention_ms=90 * DAY_MS,
    doc="Drift of a community's verdict stream from its reference (the drift monitor).",
)

VERDICTS_SHADOW = TopicSpec(
    name="moderation.verdicts.shadow.v1",
    key="platform:community:user",
    value_type=Verdict,
    partitions=6,
    retention_ms=14 * DAY_MS,
    doc="Verdicts of challenger models scoring in shadow: compared, never actioned.",
)

TOPICS: tuple[TopicSpec, ...] = (
    CHAT_MESSAGES,
    VERDICTS,
    VERDICTS_SHADOW,
    ACTIONS,
    EXPLANATIONS,
    FEEDBACK,
    DEADLETTER,
    RAIDS,
    DRIFT,
)
