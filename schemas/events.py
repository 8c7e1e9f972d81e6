"""Payloads that travel over the topics: the contract between services and with downstream users.

Validation is strict on what a field holds (types are not coerced, required fields must be
present, timestamps carry a zone) and tolerant of fields it does not know, so that adding an
optional field within a version never breaks an older consumer. A breaking change is a new class
and a new ``.v2`` topic.

What a string may hold is decided here, once, because every consumer downstream trusts it
(Postgres refuses NUL in ``text`` and in ``jsonb``; a NUL id used to stop the actioner):

- Ids (``Id``: message, channel, model and action ids) are 1-200 characters with no control
  character (U+0000-U+001F, U+007F-U+009F): an id is a name, never content, so a control
  character in one means a forged or broken event, and the whole event is rejected (it goes to
  the dead-letter topic with the reason).
- Key parts (``KeyPart``: ``community`` and ``user``) are ids that also exclude ``:``, the
  separator of the partition key ``platform:community:user``, so that two users never share a
  key (and with it a partition, strike counts and Redis context).
- Labels (``Label``: user roles, model labels, content types) follow the id rule, up to 100
  characters.
- Free text (``Text``: message text, names, reasons, file names) keeps every character but NUL,
  which validation replaces with U+FFFD: dropping a message for a NUL would let anyone hide a
  line from moderation, and nothing downstream can store NUL.
- Lists are bounded, so that a verdict built from any valid message stays far below the broker's
  1,000,000-byte record limit (40,000 characters of text are at most 240 kB JSON-escaped).
- A dead letter bounds itself (``DeadLetter``): the raw payload, key and error are cut to a fixed
  JSON-encoded size, and the payload's original size and SHA-256 are kept.
"""

from __future__ import annotations

import enum
import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

# Character classes that pydantic-core checks with its Rust regex engine, without a Python call.
_NO_CONTROL = r"^[^\x00-\x1f\x7f-\x9f]+$"
_NO_CONTROL_NO_COLON = r"^[^\x00-\x1f\x7f-\x9f:]+$"

Id = Annotated[str, Field(min_length=1, max_length=200, pattern=_NO_CONTROL)]
KeyPart = Annotated[str, Field(min_length=1, max_length=200, pattern=_NO_CONTROL_NO_COLON)]
Label = Annotated[str, Field(min_length=1, max_length=100, pattern=_NO_CONTROL)]


def _without_nul(value: str) -> str:
    # The membership test runs at C speed; only the rare string holding a NUL is copied.
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


Text = Annotated[str, AfterValidator(_without_nul)]
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
    url: str = Field(min_length=1, max_length=2000, pattern=_NO_CONTROL)
    content_type: Label | None = None
    filename: Text | None = Field(default=None, max_length=1000)
    size: int | None = Field(
        default=None,
        ge=0,
        description="Bytes, as the platform reports it (Discord, Slack files); null: unknown.",
    )


class ChatMessage(Event):
    """One chat message as a platform adapter saw it (``chat.messages.v1``)."""

    message_id: Id
    platform: Annotated[Platform, LAX]
    community: KeyPart = Field(description="Discord guild, Slack workspace, Twitch channel.")
    channel: Id
    user: KeyPart = Field(description="The author's platform user id.")
    user_name: Text | None = Field(default=None, max_length=200)
    user_roles: list[Label] = Field(default_factory=list, max_length=256)
    text: Text = Field(max_length=40_000)
    attachments: list[Attachment] = Field(default_factory=list, max_length=100)
    channel_nsfw: bool | None = Field(
        default=None,
        description=(
            "True when the platform marks the channel NSFW (Discord's age-restricted channels);"
            " null: the platform does not say."
        ),
    )
    reply_to: Id | None = None
    edited: bool = Field(default=False, description="True when this event is an edit.")
    sent_at: Timestamp
    received_at: Timestamp

    @property
    def key(self) -> str:
        """The partition key: one user's messages stay in order on one partition."""
        return user_key(self.platform, self.community, self.user)


def user_key(platform: str, community: str, user: str) -> str:
    return f"{platform}:{community}:{user}"


class Scoring(Event):
    """How the model scored a verdict (``Verdict.scoring``): with ``model_version`` and the
    feature snapshot, what it takes to score the message again the same way
    (``warden replay-decision``)."""

    backend: Label = Field(
        description=(
            "The encoder back end used: int8 (ONNX Runtime on the CPU), fp32 (torch on the"
            " CPU), fp16 (CUDA); none for a model without an encoder (lexical)."
        )
    )
    device: Label = Field(description="Where the encoder ran: cpu or cuda.")
    encoder_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description=(
            "The encoder's identity (sha256 of its weights; a fine-tuned one: of its base and"
            " adapter); the model's own unless WARDEN_MODEL__ENCODER named another."
        ),
    )
    low_threshold: Probability = Field(description="p_toxic at or above it: LOW.")
    medium_threshold: Probability = Field(description="p_toxic at or above it: MEDIUM.")
    high_threshold: Probability = Field(description="p_toxic at or above it: HIGH.")
    thresholds_overridden: list[Label] = Field(
        default_factory=list,
        max_length=3,
        description=(
            "The thresholds (low, medium, high) that settings set instead of the model's own"
            " (WARDEN_MODEL__{LOW,MEDIUM,HIGH}_THRESHOLD)."
        ),
    )
    flag_severity: Annotated[Severity, LAX] = Field(
        description="WARDEN_SCORER__FLAG_SEVERITY: model_flagged is severity >= this."
    )


class VerdictKind(enum.StrEnum):
    """What a verdict judged: the message's text, or one of its image attachments."""

    TEXT = "text"
    IMAGE = "image"


class ImageFinding(Event):
    """The image an image verdict judged (``Verdict.image``), and what the detector saw in it."""

    url: str = Field(min_length=1, max_length=2000, pattern=_NO_CONTROL)
    index: int = Field(ge=0, le=99, description="Its place in ChatMessage.attachments.")
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="Hex SHA-256 of the image's bytes (the cache key); null: never fetched.",
    )
    content_type: Label | None = None
    width: int | None = Field(default=None, ge=1)
    height: int | None = Field(default=None, ge=1)
    detections: dict[Label, Probability] = Field(
        default_factory=dict,
        max_length=64,
        description="The detector's best score per class it found (e.g. FACE_FEMALE: 0.72).",
    )
    cached: bool = Field(default=False, description="Scored earlier: the same bytes were seen.")


class Verdict(Event):
    """The scorer's decision on one message (``moderation.verdicts.v1``).

    A message gets one ``text`` verdict, and one ``image`` verdict for its images when it has
    any (``kind``; the image scorer runs in its own consumer group, so a text verdict never waits
    for an image). Both carry the message's ``message_id``; consumers that keep one decision per
    verdict key it by :attr:`decision_id`.
    """

    message_id: Id
    platform: Annotated[Platform, LAX]
    community: KeyPart
    channel: Id
    user: KeyPart
    user_roles: list[Label] = Field(default_factory=list, max_length=256)
    text: Text = Field(max_length=40_000)
    p_toxic: Probability
    severity: Annotated[Severity, LAX]
    flagged: bool = Field(description="True when the actioner should consider an action.")
    model_flagged: bool | None = Field(
        default=None,
        description=(
            "True when the model's severity alone flags it (flagged may also come from a"
            " stream-detector label); null in verdicts written before this field: read flagged."
        ),
    )
    labels: list[Label] = Field(
        default_factory=list,
        max_length=64,
        description="What the harm is (schemas.labels): model, rule and stream-detector labels.",
    )
    label_scores: dict[Label, Probability] = Field(
        default_factory=dict,
        max_length=64,
        description="The model's score per harm label (schemas.labels.HARM_LABELS).",
    )
    reasons: dict[Label, Text] = Field(
        default_factory=dict,
        max_length=64,
        description="Per stream-detector label, a reason a moderator can read.",
    )
    model_version: Id
    policy_version: Id | None = Field(
        default=None,
        description=(
            "The policy version whose stream-detector thresholds the scorer applied (as the"
            " actioner mirrors it: platform:community@vN, preset:NAME@N, first-day:NAME@N;"
            " defaults: none mirrored); null when no stream detector ran."
        ),
    )
    features: dict[str, float | None] = Field(
        default_factory=dict, description="The feature snapshot the model saw; null = missing."
    )
    degraded: bool = Field(default=False, description="Scored without context features.")
    sent_at: Timestamp
    received_at: Timestamp
    scored_at: Timestamp
    scoring: Scoring | None = Field(
        default=None,
        description=(
            "How the model scored (encoder back end, thresholds, flag severity); null in"
            " verdicts written before this field."
        ),
    )
    kind: Annotated[VerdictKind, LAX] = Field(
        default=VerdictKind.TEXT,
        description="text: the message's text; image: its image attachments (see ``images``).",
    )
    images: list[ImageFinding] = Field(
        default_factory=list,
        max_length=100,
        description="Image verdicts: each image judged; p_toxic and labels are the worst one's.",
    )
    channel_nsfw: bool | None = Field(
        default=None, description="The message's ChatMessage.channel_nsfw, for the policy."
    )

    @property
    def key(self) -> str:
        return user_key(self.platform, self.community, self.user)

    @property
    def decision_id(self) -> str:
        """The id one decision is kept under: the message id for its text verdict, the message
        id and ``~image`` for its image verdict (a message may be acted on for either; ``~``
        needs no escaping in a URL, so the review page's ``/messages/<id>`` opens either)."""
        if self.kind is VerdictKind.TEXT:
            return self.message_id
        return f"{self.message_id}~{self.kind.value}"


class ActionKind(enum.StrEnum):
    WARN = "warn"
    DELETE = "delete"
    TIMEOUT = "timeout"
    KICK = "kick"
    BAN = "ban"
    # Channel-level: restrict the channel for ``duration_s`` (``ActionRequest.mode`` says how).
    RAID_MODE = "raid_mode"
    # No platform call: the message waits for a moderator's review instead of an action.
    HOLD = "hold"
    # Reversals, requested when a moderator overturns a decision (``ActionRequest.reverses``
    # names the action undone) or when a raid's restriction runs out.
    UNBAN = "unban"
    UNTIMEOUT = "untimeout"
    RAID_MODE_OFF = "raid_mode_off"


class RaidMode(enum.StrEnum):
    """How a channel is restricted during a raid (what each platform offers)."""

    SLOW = "slow"  # Twitch slow mode; Discord channel slowmode (rate_limit_per_user)
    FOLLOWERS = "followers"  # Twitch followers-only mode
    EMOTE_ONLY = "emote_only"  # Twitch emote-only mode
    VERIFICATION = "verification"  # Discord: raise the guild's verification level


class ActionStatus(enum.StrEnum):
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


class ActionRequest(Event):
    """What the policy decided to do about one message."""

    action_id: Id = Field(description="Deterministic: message id + action kind.")
    message_id: Id
    platform: Annotated[Platform, LAX]
    community: KeyPart
    channel: Id
    user: KeyPart
    kind: Annotated[ActionKind, LAX]
    duration_s: int | None = Field(default=None, ge=1)
    reason: Text
    severity: Annotated[Severity, LAX]
    p_toxic: Probability
    model_version: Id
    policy_version: Id
    sent_at: Timestamp
    requested_at: Timestamp
    notice: Text | None = Field(
        default=None,
        max_length=4000,
        description="Text shown to the user (a warning), from the community's templates.",
    )
    modes: list[Annotated[RaidMode, LAX]] = Field(
        default_factory=list,
        max_length=4,
        description="raid_mode only: the channel restrictions to turn on for duration_s.",
    )
    reverses: Id | None = Field(
        default=None,
        description="unban, untimeout, raid_mode_off: the action_id of the action undone.",
    )
    restore: dict[str, Any] | None = Field(
        default=None,
        description=(
            "raid_mode_off only: what the raid mode changed and what was set before it (as its"
            " executor reported), filled in from the action ledger when the off comes due."
        ),
    )
    platform_message_id: Id | None = Field(
        default=None,
        description=(
            "The platform's id of the message acted on, when message_id is not it: an image"
            " verdict's decision (message_id <id>~image) deletes the message <id>."
        ),
    )

    @property
    def key(self) -> str:
        return user_key(self.platform, self.community, self.user)

    @property
    def target_message_id(self) -> str:
        """The message the platform is asked to act on."""
        return self.platform_message_id or self.message_id


class ActionResult(Event):
    """What became of an action request (``moderation.actions.v1``).

    Delivered at least once: a crash between the broker's acknowledgement and the ledger
    recording it as published publishes the same result again after the restart. Consumers
    de-duplicate by ``action_id`` (deterministic: message id + action kind), keeping the first.
    """

    action_id: Id
    message_id: Id
    platform: Annotated[Platform, LAX]
    community: KeyPart
    channel: Id
    user: KeyPart
    kind: Annotated[ActionKind, LAX]
    status: Annotated[ActionStatus, LAX]
    executor: Id
    detail: Text = ""
    reason: Text
    severity: Annotated[Severity, LAX]
    p_toxic: Probability
    model_version: Id
    policy_version: Id
    sent_at: Timestamp
    requested_at: Timestamp
    completed_at: Timestamp
    duration_s: int | None = Field(default=None, ge=1, description="A timeout's length.")
    modes: list[Annotated[RaidMode, LAX]] = Field(
        default_factory=list, max_length=4, description="raid_mode only: what was turned on."
    )

    @property
    def key(self) -> str:
        return user_key(self.platform, self.community, self.user)


class RaidEvent(Event):
    """A raid the scorer saw in one channel (``moderation.raids.v1``).

    One event per raid: published when the burst crosses the community's raid threshold, with
    what was seen by then. ``raid_id`` is deterministic (channel + the burst's first message), so
    an event published again after a crash is the same event; consumers de-duplicate by it.
    """

    raid_id: Id
    platform: Annotated[Platform, LAX]
    community: KeyPart
    channel: Id
    started_at: Timestamp = Field(description="The first message of the burst.")
    ended_at: Timestamp = Field(description="The latest message seen when it was published.")
    size: int = Field(ge=1, description="Distinct first-time accounts in the burst.")
    messages: int = Field(ge=1, description="Messages in the burst.")
    sample: list[Text] = Field(default_factory=list, max_length=5)
    harmful: bool = Field(
        description="True when the raid's lines were flagged by the model or name a harm."
    )
    labels: list[Label] = Field(default_factory=list, max_length=64)
    accounts: list[KeyPart] = Field(default_factory=list, max_length=1000)
    detected_at: Timestamp

    @property
    def key(self) -> str:
        return f"{self.platform.value}:{self.community}:{self.channel}"


class TokenWeight(Event):
    token: Text
    weight: float


class Explanation(Event):
    """Word-level reasons for a verdict (``moderation.explanations.v1``).

    ``weights`` are LIME's: how much each word pushed the model's P(toxic) up (positive) or down
    (negative) with the message's context held as it was. ``reasons`` are what the words do not
    show: context features, detector labels, the hard-slur rule.
    """

    message_id: Id
    model_version: Id
    method: Literal["lime"] = "lime"
    p_toxic: Probability
    weights: list[TokenWeight] = Field(max_length=512)
    created_at: Timestamp
    severity: Annotated[Severity, LAX] | None = None
    platform: Annotated[Platform, LAX] | None = None
    community: KeyPart | None = None
    intercept: float | None = Field(default=None, description="LIME's local model intercept.")
    fit: float | None = Field(default=None, description="R^2 of LIME's local model.")
    samples: int | None = Field(default=None, ge=0, description="Perturbed texts scored.")
    reasons: dict[Label, Text] = Field(
        default_factory=dict,
        max_length=64,
        description="Non-text reasons: context features, detector labels, hard-slur rule.",
    )
    on_demand: bool = Field(default=False, description="Asked for, not from a flagged verdict.")
    verdict_scored_at: Timestamp | None = Field(
        default=None, description="When the verdict was scored: latency = created_at - this."
    )


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
    reason: Text = Field(default="", max_length=2000)
    label_toxic: bool | None = Field(default=None, description="Review decision: is it toxic?")
    created_at: Timestamp
    action_id: Id | None = Field(default=None, description="The action disputed or reviewed.")
    source: Label | None = Field(
        default=None,
        description="Where it came from: discord, slack, twitch, webhook, review (the web queue).",
    )
    overturned: bool | None = Field(
        default=None, description="Review only: the automated decision was reversed."
    )

    @model_validator(mode="after")
    def _review_has_label(self) -> Feedback:
        if self.kind is FeedbackKind.REVIEW and self.label_toxic is None:
            raise ValueError("a review needs label_toxic")
        return self


class DriftEvent(Event):
    """A community's verdict stream moved away from its reference (``moderation.drift.v1``).

    Published by the drift monitor (``retrain.drift_service``) when a community's current window
    drifted from its reference, at most once per community per cooldown. The reference is a
    pinned period of the community's own stream (``reference_start`` to ``reference_end``).
    ``scores`` are Evidently's per-column drift scores by ``method`` (a distance: 0 = the same
    distribution, higher = further away); a column scoring ``threshold`` or more drifted.
    A new model shows as drift too: ``model_versions`` says which models decided the window.
    """

    drift_id: Id = Field(description="platform:community:detected_at; unique per event.")
    platform: Annotated[Platform, LAX]
    community: KeyPart
    detected_at: Timestamp
    method: Label = Field(description="Evidently's per-column drift method (psi by default).")
    threshold: float = Field(ge=0, description="A column scoring this or more drifted.")
    drift_share: Probability = Field(description="The share of tested columns that drifted.")
    drifted: list[Label] = Field(default_factory=list, max_length=128)
    scores: dict[Label, float] = Field(default_factory=dict, max_length=128)
    rows: int = Field(ge=1, description="Verdicts in the current window.")
    reference_rows: int = Field(ge=1, description="Verdicts in the reference.")
    window_start: Timestamp
    window_end: Timestamp
    reference_start: Timestamp
    reference_end: Timestamp
    flag_rate: Probability
    reference_flag_rate: Probability
    model_versions: list[Id] = Field(
        default_factory=list, max_length=16, description="Models that scored the window."
    )
    report: Text | None = Field(
        default=None,
        max_length=1000,
        description="The Evidently HTML report's file name in the drift reports directory.",
    )

    @property
    def key(self) -> str:
        return f"{self.platform.value}:{self.community}"


# What a dead letter keeps, in bytes of its JSON encoding (escapes included: a control
# character takes six). The whole letter stays under 80 kB, far below the broker's 1,000,000-byte
# record limit, whatever it was built from.
RAW_LIMIT = 64 * 1024
KEY_LIMIT = 1024
ERROR_LIMIT = 8 * 1024


class DeadLetter(Event):
    """An event a service could not process, with what it needs to be replayed (``.deadletter``).

    Bounded whoever builds it (validation cuts ``raw``, ``key`` and ``error``): a dead letter
    that the broker refused for its size used to crash the worker at the same offset on every
    restart. A cut payload says so in ``raw_truncated``; ``raw_bytes`` and ``raw_sha256`` describe
    the original, so a cut letter can still be matched with the record at ``partition``/``offset``.
    """

    source_topic: str
    partition: int | None = None
    offset: int | None = None
    key: str | None = Field(default=None, description="The record's key, cut to 1 KiB.")
    raw: str = Field(
        description="The payload as text (undecodable bytes escaped), cut to 64 KiB of JSON."
    )
    raw_bytes: int | None = Field(
        default=None, ge=0, description="The original payload's size in bytes (null: unknown)."
    )
    raw_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="Hex SHA-256 of the original payload's bytes (null: unknown).",
    )
    raw_truncated: bool = Field(default=False, description="True when raw is a prefix.")
    error: str = Field(description="Why it failed, cut to 8 KiB.")
    error_type: str
    service: str
    failed_at: Timestamp

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        raw = data.get("raw")
        if isinstance(raw, str):
            cut, truncated = json_prefix(raw, RAW_LIMIT)
            if truncated:
                if data.get("raw_bytes") is None:
                    original = raw.encode("utf-8", "backslashreplace")
                    data["raw_bytes"] = len(original)
                    data["raw_sha256"] = hashlib.sha256(original).hexdigest()
                data["raw"] = cut
                data["raw_truncated"] = True
        for field, limit in (("key", KEY_LIMIT), ("error", ERROR_LIMIT)):
            value = data.get(field)
            if isinstance(value, str):
                data[field] = json_prefix(value, limit)[0]
        return data

    @classmethod
    def from_error(
        cls,
        error: Exception | str,
        raw: bytes | None,
        *,
        service: str,
        source_topic: str,
        partition: int | None = None,
        offset: int | None = None,
        key: bytes | None = None,
        error_type: str | None = None,
    ) -> DeadLetter:
        """The dead letter for ``raw`` bytes that failed with ``error``, stamped now."""
        return cls(
            source_topic=source_topic,
            partition=partition,
            offset=offset,
            key=raw_text(key) if key is not None else None,
            raw=raw_text(raw),
            raw_bytes=len(raw) if raw is not None else None,
            raw_sha256=hashlib.sha256(raw).hexdigest() if raw is not None else None,
            error=str(error),
            error_type=error_type or type(error).__name__,
            service=service,
            failed_at=utcnow(),
        )

    @classmethod
    def from_record(
        cls,
        error: Exception | str,
        record: SourceRecord,
        *,
        service: str,
        error_type: str | None = None,
    ) -> DeadLetter:
        """The dead letter for a consumed record (aiokafka's ``ConsumerRecord``, faust's event)
        that failed with ``error``: its bytes, key, topic, partition and offset."""
        return cls.from_error(
            error,
            record.value,
            service=service,
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            error_type=error_type,
        )


class SourceRecord(Protocol):
    """What a dead letter needs of a consumed record."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int | None: ...
    @property
    def offset(self) -> int | None: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


def raw_text(payload: bytes | None) -> str:
    """Bytes as text for a dead letter: valid UTF-8 stays readable, other bytes are escaped."""
    if payload is None:
        return ""
    return payload.decode("utf-8", errors="backslashreplace")


def json_prefix(text: str, limit: int) -> tuple[str, bool]:
    """(prefix, cut): the longest prefix of ``text`` whose JSON string encoding, quotes left
    out, takes at most ``limit`` bytes (as pydantic writes it: UTF-8, control characters
    escaped), and whether anything was cut. Lone surrogates, which no JSON encoder writes,
    become ``\\udXXX`` text.
    """
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) * 6 <= limit:  # even all-escapes would fit: nothing to measure
        return text, False
    encoded = json.dumps(text, ensure_ascii=False).encode()
    if len(encoded) - 2 <= limit:
        return text, False
    # Cut the encoding, not the text: one character is 1-6 bytes once encoded. The cut may
    # split a UTF-8 sequence (dropped by "ignore") or an escape (at most 5 characters, dropped
    # one at a time until the rest decodes).
    cut = encoded[1 : limit + 1].decode("utf-8", "ignore")
    for end in range(len(cut), max(len(cut) - 6, 0) - 1, -1):
        try:
            return json.loads(f'"{cut[:end]}"'), True
        except ValueError:
            continue
    return text[: limit // 6], True  # not reached: every escape is at most 6 characters


PAYLOADS: tuple[type[Event], ...] = (
    ChatMessage,
    Verdict,
    ActionRequest,
    ActionResult,
    Explanation,
    Feedback,
    DeadLetter,
    RaidEvent,
    DriftEvent,
)
