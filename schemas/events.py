"""Payloads that travel over the topics: the contract between services and with downstream users.

Validation is strict on what a field holds (types are not coerced, required fields must be
present, timestamps carry a zone) and tolerant of fields it does not know, so that adding an
optional field within a version never breaks an older consumer. A breaking change is a new class
and a new ``.v2`` topic.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

Id = Annotated[str, Field(min_length=1, max_length=200)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
# Timestamps and enums arrive as strings in JSON and in dicts parsed from it: those two are the
# only fields that accept a string for their type; everything else is strict.
LAX = Field(strict=False)
Timestamp = Annotated[AwareDatetime, LAX]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Base of every payload: strict, immutable, unknown fields ignored."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class Platform(enum.StrEnum):
    DISCORD = "discord"
    SLACK = "slack"
    TWITCH = "twitch"
    WEBHOOK = "webhook"
    REPLAY = "replay"


class Severity(enum.StrEnum):
    SAFE = "SAFE"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


class Attachment(Event):
    url: str = Field(min_length=1, max_length=2000)
    content_type: str | None = None
    filename: str | None = None


class ChatMessage(Event):
    """One chat message as a platform adapter saw it (``chat.messages.v1``)."""

    message_id: Id
    platform: Annotated[Platform, LAX]
    community: Id = Field(description="Discord guild, Slack workspace, Twitch channel.")
    channel: Id
    user: Id = Field(description="The author's platform user id.")
    user_name: str | None = None
    user_roles: list[str] = Field(default_factory=list)
    text: str = Field(max_length=40_000)
    attachments: list[Attachment] = Field(default_factory=list)
    reply_to: str | None = None
    edited: bool = Field(default=False, description="True when this event is an edit.")
    sent_at: Timestamp
    received_at: Timestamp

    @property
    def key(self) -> str:
        """The partition key: one user's messages stay in order on one partition."""
        return user_key(self.platform, self.community, self.user)


def user_key(platform: str, community: str, user: str) -> str:
    return f"{platform}:{community}:{user}"


class Verdict(Event):
    """The scorer's decision on one message (``moderation.verdicts.v1``)."""

    message_id: Id
    platform: Annotated[Platform, LAX]
    community: Id
    channel: Id
    user: Id
    user_roles: list[str] = Field(default_factory=list)
    text: str = Field(max_length=40_000)
    p_toxic: Probability
    severity: Annotated[Severity, LAX]
    flagged: bool = Field(description="True when the actioner should consider an action.")
    labels: list[str] = Field(default_factory=list)
    model_version: Id
    policy_version: str | None = None
    features: dict[str, float | None] = Field(
        default_factory=dict, description="The feature snapshot the model saw; null = missing."
    )
    degraded: bool = Field(default=False, description="Scored without context features.")
    sent_at: Timestamp
    received_at: Timestamp
    scored_at: Timestamp

    @property
    def key(self) -> str:
        return user_key(self.platform, self.community, self.user)


class ActionKind(enum.StrEnum):
    WARN = "warn"
    DELETE = "delete"
    TIMEOUT = "timeout"
    KICK = "kick"
    BAN = "ban"


class ActionStatus(enum.StrEnum):
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


class ActionRequest(Event):
    """What the policy decided to do about one message."""

    action_id: Id = Field(description="Deterministic: message id + action kind.")
    message_id: Id
    platform: Annotated[Platform, LAX]
    community: Id
    channel: Id
    user: Id
    kind: Annotated[ActionKind, LAX]
    duration_s: int | None = Field(default=None, ge=1)
    reason: str
    severity: Annotated[Severity, LAX]
    p_toxic: Probability
    model_version: Id
    policy_version: Id
    sent_at: Timestamp
    requested_at: Timestamp
    notice: str | None = Field(
        default=None,
        max_length=4000,
        description="Text shown to the user (a warning), from the community's templates.",
    )

    @property
    def key(self) -> str:
        return user_key(self.platform, self.community, self.user)


class ActionResult(Event):
    """What became of an action request (``moderation.actions.v1``)."""

    action_id: Id
    message_id: Id
    platform: Annotated[Platform, LAX]
    community: Id
    channel: Id
    user: Id
    kind: Annotated[ActionKind, LAX]
    status: Annotated[ActionStatus, LAX]
    executor: Id
    detail: str = ""
    reason: str
    severity: Annotated[Severity, LAX]
    p_toxic: Probability
    model_version: Id
    policy_version: Id
    sent_at: Timestamp
    requested_at: Timestamp
    completed_at: Timestamp
    duration_s: int | None = Field(default=None, ge=1, description="A timeout's length.")

    @property
    def key(self) -> str:
        return user_key(self.platform, self.community, self.user)


class TokenWeight(Event):
    token: str
    weight: float


class Explanation(Event):
    """Word-level reasons for a verdict (``moderation.explanations.v1``)."""

    message_id: Id
    model_version: Id
    method: Literal["lime"] = "lime"
    p_toxic: Probability
    weights: list[TokenWeight]
    created_at: Timestamp


class FeedbackKind(enum.StrEnum):
    DISPUTE = "dispute"
    REVIEW = "review"


class Feedback(Event):
    """A user's dispute of a decision, or a moderator's review of one (``moderation.feedback.v1``).

    A dispute carries the user's reason; a review carries the moderator's label and id.
    """

    feedback_id: Id
    kind: Annotated[FeedbackKind, LAX]
    message_id: Id
    platform: Annotated[Platform, LAX]
    community: Id
    user: Id = Field(description="Who disputes (the author) or who reviews (the moderator).")
    reason: str = ""
    label_toxic: bool | None = Field(default=None, description="Review decision: is it toxic?")
    created_at: Timestamp

    @model_validator(mode="after")
    def _review_has_label(self) -> Feedback:
        if self.kind is FeedbackKind.REVIEW and self.label_toxic is None:
            raise ValueError("a review needs label_toxic")
        return self


class DeadLetter(Event):
    """An event a service could not process, with what it needs to be replayed (``.deadletter``)."""

    source_topic: str
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    raw: str = Field(description="The payload as text (undecodable bytes escaped).")
    error: str
    error_type: str
    service: str
    failed_at: Timestamp

    @classmethod
    def from_error(
        cls,
        error: Exception,
        raw: bytes | None,
        *,
        service: str,
        source_topic: str,
        partition: int | None = None,
        offset: int | None = None,
        key: bytes | None = None,
    ) -> DeadLetter:
        """The dead letter for ``raw`` bytes that failed with ``error``, stamped now."""
        return cls(
            source_topic=source_topic,
            partition=partition,
            offset=offset,
            key=raw_text(key) if key is not None else None,
            raw=raw_text(raw),
            error=str(error),
            error_type=type(error).__name__,
            service=service,
            failed_at=utcnow(),
        )


def raw_text(payload: bytes | None) -> str:
    """Bytes as text for a dead letter: valid UTF-8 stays readable, other bytes are escaped."""
    if payload is None:
        return ""
    return payload.decode("utf-8", errors="backslashreplace")


PAYLOADS: tuple[type[Event], ...] = (
    ChatMessage,
    Verdict,
    ActionRequest,
    ActionResult,
    Explanation,
    Feedback,
    DeadLetter,
)
