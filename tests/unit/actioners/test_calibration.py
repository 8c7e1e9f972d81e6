"""Per-community calibration: reviewed outcomes move a community's thresholds, shrunk toward
the global model, and the held-out reviews say whether it helped."""

from __future__ import annotations

import numpy as np
import pytest

from actioners.calibration import CalibrationError, calibrate, in_holdout, reviewed
from actioners.policy import Thresholds
from toxicity.calibration import community_adjustment

BASE = Thresholds(low=0.34, medium=0.54, high=0.73)


def community(n: int, shift: float, seed: int = 0) -> list[tuple[str, float, bool]]:
    """Reviewed messages whose true odds are the model's shifted by ``shift`` (log-odds)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.98, n)
    truth = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + shift)))
    y = rng.random(n) < truth
    return [(f"m{i}", float(p[i]), bool(y[i])) for i in range(n)]


def test_a_community_the_model_over_flags_gets_higher_thresholds_and_fewer_false_flags() -> None:
    result = calibrate(community(1500, shift=-1.5), BASE)
    before, after = result.before, result.after
    assert result.thresholds.medium > BASE.medium + 0.1
    assert result.thresholds.low <= result.thresholds.medium <= result.thresholds.high
    assert (after["benign_flagged"] or 0) < (before["benign_flagged"] or 0)
    assert (after["accuracy"] or 0) > (before["accuracy"] or 0)
    assert (after["log_loss"] or 0) < (before["log_loss"] or 0)
    assert result.holdout == sum(in_holdout(f"m{i}") for i in range(1500))
    assert "calibrated: " in result.note() and "held-out accuracy" in result.note()


def test_a_community_the_model_under_flags_gets_lower_thresholds() -> None:
    assert calibrate(community(1500, shift=1.5), BASE).thresholds.medium < BASE.medium - 0.1


def test_a_well_calibrated_community_keeps_about_the_global_thresholds() -> None:
    result = calibrate(community(1500, shift=0.0), BASE)
    assert abs(result.thresholds.medium - BASE.medium) < 0.06


def test_few_reviews_move_less_and_too_few_refuse() -> None:
    rows = community(3000, shift=-1.5, seed=3)
    few = calibrate(rows[:60], BASE, min_reviews=30)
    many = calibrate(rows, BASE)
    assert few.adjustment.weight < 0.5 < many.adjustment.weight
    assert BASE.medium < few.thresholds.medium < many.thresholds.medium
    with pytest.raises(CalibrationError, match="calibration needs 30"):
        calibrate(rows[:20], BASE)


def test_one_class_only_still_shrinks_toward_the_global_model() -> None:
    adjustment = community_adjustment(np.full(40, 0.7), np.zeros(40), prior=50)
    assert adjustment.a == 1.0 and adjustment.b < 0
    assert adjustment.threshold(0.5) > 0.5


def test_reviews_join_the_communitys_verdicts_by_majority() -> None:
    verdicts = [
        {"message_id": "a", "platform": "discord", "community": "c", "p_toxic": 0.8},
        {"message_id": "b", "platform": "discord", "community": "c", "p_toxic": 0.3},
        {"message_id": "x", "platform": "discord", "community": "other", "p_toxic": 0.9},
    ]

    def review(m: str, label: bool, mod: str) -> dict:
        at = "2026-12-01T10:00:00Z"
        return {
            "message_id": m,
            "kind": "review",
            "label_toxic": label,
            "user": mod,
            "created_at": at,
        }

    feedback = [
        review("a", True, "m1"),
        review("a", True, "m2"),
        review("a", False, "m3"),
        review("b", True, "m1"),
        review("b", False, "m2"),  # a tie: no label
        review("x", True, "m1"),  # another community
    ]
    assert reviewed(verdicts, feedback, "discord", "c") == [("a", 0.8, True)]
