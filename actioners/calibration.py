"""Per-community calibration: a community's reviewed outcomes move its severity thresholds.

``warden policy calibrate COMMUNITY`` reads the community's verdicts and the moderators' reviews
of them (``core.reviews``: each moderator's latest review, majority label, ties dropped), holds
out a stable 20 % of the reviewed messages, and fits ``toxicity.calibration.Adjustment`` on the
rest: a Platt correction of the global P(toxic) shrunk toward "no change" by ``n / (n +
prior)``. The community's thresholds are the global ones (those the verdicts were scored with)
mapped through it: where the model over-flags this community they rise, where it under-flags
they fall. It refuses below ``min_reviews`` reviewed messages.

Applied (``--apply``), the thresholds are stored as a new policy version whose note says how
they were made, so ``warden policy show`` shows them and ``--undo`` (a new version with the
thresholds the community had before) reverses it; the history keeps both.

Reviews are mostly of messages that were acted on or disputed, so the data says more about
false positives than about misses: with few reviews of unflagged messages, the fit mainly
raises thresholds. The report before/after on the held-out reviews says what it did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from actioners.policy import Thresholds
from core.reviews import held_out, majority, review_votes
from toxicity.calibration import Adjustment, community_adjustment

NOTE_PREFIX = "calibrated:"


class CalibrationError(ValueError):
    """Not enough reviewed outcomes to calibrate (or none joined to a verdict)."""


@dataclass(frozen=True)
class Calibration:
    base: Thresholds
    thresholds: Thresholds
    adjustment: Adjustment
    train: int
    holdout: int
    before: dict[str, float | None]
    after: dict[str, float | None]

    def note(self) -> str:
        return (
            f"{NOTE_PREFIX} {self.train} reviews (weight {self.adjustment.weight:.2f}, "
            f"a {self.adjustment.a:.2f}, b {self.adjustment.b:+.2f}) moved thresholds from "
            f"{self.base.low:.3f}/{self.base.medium:.3f}/{self.base.high:.3f}; held-out "
            f"accuracy at MEDIUM {_pct(self.before['accuracy'])} -> {_pct(self.after['accuracy'])}"
            f" on {self.holdout} reviews"
        )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def in_holdout(message_id: str) -> bool:
    return held_out(message_id)


def reviewed(
    verdicts: list[dict[str, Any]], feedback: list[dict[str, Any]], platform: str, community: str
) -> list[tuple[str, float, bool]]:
    """(message id, p_toxic, label) of the community's reviewed messages."""
    ours = {
        v["message_id"]: v
        for v in verdicts
        if v.get("platform") == platform and v.get("community") == community
    }
    votes, _ = review_votes(f for f in feedback if f.get("message_id") in ours)
    rows = []
    for message_id, labels in votes.items():
        label = majority(labels)
        if label is not None:
            rows.append((message_id, float(ours[message_id]["p_toxic"]), label))
    return rows


def scored_thresholds(verdicts: list[dict[str, Any]]) -> Thresholds | None:
    """The thresholds the newest verdict with a ``scoring`` record was graded with."""
    for verdict in reversed(verdicts):
        scoring = verdict.get("scoring")
        if scoring:
            return Thresholds(
                low=scoring["low_threshold"],
                medium=scoring["medium_threshold"],
                high=scoring["high_threshold"],
            )
    return None


def outcome_metrics(p: np.ndarray, y: np.ndarray, medium: float) -> dict[str, float | None]:
    flagged = p >= medium
    positives, negatives = y == 1, y == 0
    clipped = np.clip(p, 1e-6, 1 - 1e-6)
    return {
        "accuracy": float(np.mean(flagged == positives)) if len(y) else None,
        "benign_flagged": float(np.mean(flagged[negatives])) if negatives.any() else None,
        "harmful_caught": float(np.mean(flagged[positives])) if positives.any() else None,
        "log_loss": float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)))
        if len(y)
        else None,
    }


def calibrate(
    rows: list[tuple[str, float, bool]],
    base: Thresholds,
    *,
    prior: float = 50.0,
    min_reviews: int = 30,
) -> Calibration:
    train = [(p, y) for m, p, y in rows if not in_holdout(m)]
    held = [(p, y) for m, p, y in rows if in_holdout(m)]
    if len(train) < min_reviews:
        raise CalibrationError(
            f"only {len(train)} reviewed messages to fit (of {len(rows)}; {len(held)} held out):"
            f" calibration needs {min_reviews} (--min-reviews)"
        )
    p = np.array([v for v, _ in train])
    y = np.array([int(v) for _, v in train])
    adjustment = community_adjustment(p, y, prior)
    cuts = sorted(adjustment.threshold(t) for t in (base.low, base.medium, base.high))
    thresholds = Thresholds(low=round(cuts[0], 4), medium=round(cuts[1], 4), high=round(cuts[2], 4))
    hp = np.array([v for v, _ in held])
    hy = np.array([int(v) for _, v in held])
    return Calibration(
        base=base,
        thresholds=thresholds,
        adjustment=adjustment,
        train=len(train),
        holdout=len(held),
        before=outcome_metrics(hp, hy, base.medium),
        # The community's cut on the global P is the same decision as the adjusted P at the
        # global cut; the log loss is the adjusted probabilities'.
        after={
            **outcome_metrics(hp, hy, thresholds.medium),
            "log_loss": outcome_metrics(adjustment(hp), hy, base.medium)["log_loss"],
        },
    )
