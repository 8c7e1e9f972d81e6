"""Decode a micro-batch of raw chat events, score the valid ones, build their verdicts.

Kept free of faust so that it can be tested and benchmarked on its own; ``scorers.app`` feeds it
from the stream, and fetches context features from Redis between ``decode`` and ``score``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from schemas.events import ChatMessage, DeadLetter, Severity, Verdict, utcnow
from schemas.rules import is_flagged
from scorers.cache import Row, TextSideCache
from scorers.context_store import Outcome
from toxicity.base import Context, Score, TextScorer
from toxicity.hybrid import TextSide
from toxicity.provenance import scoring_of

logger = logging.getLogger(__name__)
SERVICE = "scorer"


@dataclass(frozen=True)
class RawEvent:
    """One consumed record, with where it came from (for the dead-letter topic)."""

    value: bytes | None
    key: bytes | None
    topic: str
    partition: int | None
    offset: int | None


def decode(event: RawEvent) -> ChatMessage | DeadLetter:
    """The event as a ChatMessage, or the dead letter that says why it is not one."""
    try:
        if event.value is None:
            raise ValueError("empty payload (tombstone)")
        return ChatMessage.model_validate_json(event.value)
    except (ValidationError, ValueError) as exc:
        return DeadLetter.from_record(exc, event, service=SERVICE)


def outcome(verdict: Verdict) -> Outcome:
    """What a verdict adds to the user's and channel's counters."""
    return Outcome(bad=verdict.severity is not Severity.SAFE, violation=verdict.flagged)


@dataclass
class Scored:
    verdicts: list[Verdict]
    computed: dict[str, Row]  # text-side rows computed for this batch (for a shared cache)
    # CPU time of this thread per stage, in ns (cache lookup, features, booster, verdicts...).
    costs: dict[str, int] = field(default_factory=dict)


@dataclass
class TextPart:
    """A batch's text-side results (``BatchScorer.text_side``): the model's TextSide, the rows
    computed for it, and the CPU time spent on it by stage, in ns."""

    side: TextSide | None
    computed: dict[str, Row]
    costs: dict[str, int]


class BatchScorer:
    """Turns messages into verdicts with one model call per batch."""

    def __init__(
        self,
        model: TextScorer,
        flag_severity: Severity,
        cache: TextSideCache | None = None,
    ) -> None:
        self.model = model
        self.flag_severity = flag_severity
        self.cache = cache
        # How this model scores (back end, thresholds, flag severity), on every verdict, so a
        # decision can be replayed; a promotion builds a new BatchScorer, and with it this.
        self.scoring = scoring_of(model, flag_severity)
        self._flagged = {severity: is_flagged(severity, flag_severity) for severity in Severity}

    def _verdict(
        self,
        m: ChatMessage,
        s: Score,
        degraded: bool,
        scored_at: datetime,
        policy_version: str | None,
    ) -> Verdict:
        flagged = self._flagged[s.severity]
        # Validated: pydantic-core's check costs less than ``model_construct`` (measured: 6.7
        # against 8.1 us a verdict), and it refuses a score out of range (a model bug).
        return Verdict(
            message_id=m.message_id,
            platform=m.platform,
            community=m.community,
            channel=m.channel,
            user=m.user,
            user_roles=m.user_roles,
            text=m.text,
            p_toxic=s.p_toxic,
            severity=s.severity,
            flagged=flagged,
            model_flagged=flagged,
            labels=list(s.labels),
            label_scores=s.label_scores,
            model_version=self.model.version,
            features=s.features,
            degraded=degraded,
            sent_at=m.sent_at,
            received_at=m.received_at,
            scored_at=scored_at,
            scoring=self.scoring,
            policy_version=policy_version,
        )

    def decode(
        self, events: Sequence[RawEvent]
    ) -> tuple[list[ChatMessage], list[RawEvent], list[DeadLetter]]:
        """(messages, the record each came from, dead letters for the rest)."""
        messages: list[ChatMessage] = []
        sources: list[RawEvent] = []
        dead: list[DeadLetter] = []
        for event in events:
            decoded = decode(event)
            if isinstance(decoded, DeadLetter):
                logger.warning(
                    "dead letter from %s[%s]@%s: %s",
                    event.topic,
                    event.partition,
                    event.offset,
                    decoded.error_type,
                )
                dead.append(decoded)
            else:
                messages.append(decoded)
                sources.append(event)
        return messages, sources, dead

    def score(
        self,
        messages: Sequence[ChatMessage],
        contexts: Sequence[Context] | None,
        degraded: bool,
        shared: dict[str, Row] | None = None,
    ) -> Scored:
        """Verdicts in message order; ``contexts`` None means context is missing for all."""
        return self.finish(messages, self.text_side(messages, shared), contexts, degraded)

    def text_side(
        self, messages: Sequence[ChatMessage], shared: dict[str, Row] | None = None
    ) -> TextPart:
        """What the model computes from the texts alone (the encoder's work), before any
        context is known; None parts for a model without a cache."""
        if self.cache is None or not messages:
            return TextPart(None, {}, {})
        side, computed = self.cache.text_side([m.text for m in messages], shared)
        return TextPart(side, computed, self._take_costs())

    def finish(
        self,
        messages: Sequence[ChatMessage],
        text: TextPart,
        contexts: Sequence[Context] | None,
        degraded: bool,
        policy_versions: Sequence[str] | None = None,
    ) -> Scored:
        """The verdicts of ``messages`` from their text part and contexts (and, when known, the
        version of the policy their community's detectors apply)."""
        if not messages:
            return Scored([], {})
        if text.side is not None and self.cache is not None:
            scores = self.cache.model.combine(text.side, contexts)
        else:
            scores = self.model.score([m.text for m in messages], contexts)
        costs = dict(text.costs)
        for stage, ns in self._take_costs().items():
            costs[stage] = costs.get(stage, 0) + ns
        started = time.thread_time_ns()
        scored_at = utcnow()
        versions = policy_versions if policy_versions is not None else [None] * len(messages)
        verdicts = [
            self._verdict(m, s, degraded, scored_at, version)
            for m, s, version in zip(messages, scores, versions, strict=True)
        ]
        costs["verdicts"] = time.thread_time_ns() - started
        return Scored(verdicts, text.computed, costs)

    def _take_costs(self) -> dict[str, int]:
        take = getattr(self.model, "take_costs", None)
        costs: dict[str, int] = take() if take is not None else {}
        if self.cache is not None:
            costs.update(self.cache.take_costs())
        return costs
