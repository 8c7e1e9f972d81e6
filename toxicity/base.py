"""The protocol every toxicity model implements, and the thresholds that grade its scores."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from schemas.events import Severity
from schemas.rules import severity_for

# Context features the scorer reads from Redis; None means missing (no history known).
CONTEXT_FEATURES: tuple[str, ...] = (
    "user_bad_ratio_7d",
    "violation_count_7d",
    "channel_toxicity_ratio",
    "hours_since_last_msg",
    "is_new_to_channel",
)

Context = Mapping[str, float | None]


@dataclass(frozen=True)
class Thresholds:
    """p_toxic at or above ``low``/``medium``/``high`` maps to LOW/MEDIUM/HIGH."""

    low: float = 0.3
    medium: float = 0.5
    high: float = 0.7

    def __post_init__(self) -> None:
        if not 0.0 <= self.low <= self.medium <= self.high <= 1.0:
            raise ValueError(f"thresholds must rise within [0, 1]: {self}")

    def severity(self, p_toxic: float) -> Severity:
        """The grade of ``p_toxic`` (the shared rule, ``schemas.rules.severity_for``)."""
        return severity_for(p_toxic, self.low, self.medium, self.high)


@dataclass(frozen=True)
class Score:
    p_toxic: float
    severity: Severity
    labels: tuple[str, ...] = ()
    features: dict[str, float | None] = field(default_factory=dict)
    # The model's score per harm label (schemas.labels.HARM_LABELS), when it has label heads.
    label_scores: dict[str, float] = field(default_factory=dict)


class TextScorer(Protocol):
    """Scores a batch of texts, with optional per-message context features."""

    @property
    def version(self) -> str: ...

    def score(
        self, texts: Sequence[str], contexts: Sequence[Context] | None = None
    ) -> list[Score]: ...


class ThreadCosts(threading.local):
    """CPU time (ns) by part, kept per thread: the scorer runs one batch's text side in its
    model thread while it scores the batch before on its event loop, and each thread takes
    only what it spent."""

    def __init__(self) -> None:
        self.parts: dict[str, int] = {}

    def add(self, part: str, ns: int) -> None:
        self.parts[part] = self.parts.get(part, 0) + ns

    def take(self) -> dict[str, int]:
        """This thread's parts since its last take."""
        parts, self.parts = self.parts, {}
        return parts
