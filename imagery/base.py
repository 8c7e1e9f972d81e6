"""The image model protocol: decoded images in, per-label scores out.

The image scorer and ``warden score-image`` only know this protocol, so another image model
(a classifier, a different detector) replaces NudeNet by implementing it: a ``version`` that
changes whenever its answers may change (it keys the image cache) and ``score`` on a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from schemas.events import Severity
from schemas.labels import SEXUAL_EXPLICIT

if TYPE_CHECKING:
    from core.image_settings import ImageSettings


@dataclass(frozen=True)
class ImageScore:
    """What an image model says about one image."""

    # Per image label (schemas.labels.IMAGE_LABELS): the model's score in [0, 1].
    label_scores: dict[str, float]
    # What the model found, its best score per class (detector classes, for moderators).
    detections: dict[str, float] = field(default_factory=dict)

    @property
    def p_unsafe(self) -> float:
        """The worst label's score: the image verdict's ``p_toxic``."""
        return max(self.label_scores.values(), default=0.0)


@dataclass(frozen=True)
class ImageThresholds:
    """How label scores become an image verdict's labels and severity: ``sexual_explicit`` is
    named from ``explicit_medium`` on (MEDIUM; HIGH from ``explicit_high``), any other label
    from ``label`` on (LOW: many communities allow suggestive pictures; one that does not says
    so in its policy's label rules)."""

    label: float = 0.5
    explicit_high: float = 0.5
    explicit_medium: float = 0.35

    @classmethod
    def from_settings(cls, config: ImageSettings) -> ImageThresholds:
        """WARDEN_IMAGES__LABEL_THRESHOLD, __EXPLICIT_MEDIUM, __EXPLICIT_HIGH."""
        return cls(
            label=config.label_threshold,
            explicit_high=config.explicit_high,
            explicit_medium=config.explicit_medium,
        )

    def labels(self, score: ImageScore) -> list[str]:
        return [
            name
            for name, value in score.label_scores.items()
            if value >= (self.explicit_medium if name == SEXUAL_EXPLICIT else self.label)
        ]

    def severity(self, score: ImageScore) -> Severity:
        explicit = score.label_scores.get(SEXUAL_EXPLICIT, 0.0)
        if explicit >= self.explicit_high:
            return Severity.HIGH
        if explicit >= self.explicit_medium:
            return Severity.MEDIUM
        if self.labels(score):
            return Severity.LOW
        return Severity.SAFE


class ImageModel(Protocol):
    """Scores decoded RGB images, ``(height, width, 3)`` uint8 arrays, in batches."""

    @property
    def version(self) -> str: ...

    def score(self, images: Sequence[np.ndarray]) -> list[ImageScore]: ...
