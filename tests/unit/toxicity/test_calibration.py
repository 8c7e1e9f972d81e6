"""Calibration turns scores into real probabilities; thresholds map them to severities."""

from __future__ import annotations

import numpy as np
import pytest

from core.settings import ModelSettings
from schemas.events import Severity
from toxicity.base import Thresholds
from toxicity.calibration import (
    Calibrator,
    choose_method,
    expected_calibration_error,
    fit_calibrator,
)
from toxicity.hybrid import override_thresholds


def _overconfident(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true_p = rng.uniform(0, 1, n)
    labels = (rng.uniform(0, 1, n) < true_p).astype(float)
    raw = np.clip(true_p**3, 0, 1)  # a monotone but badly calibrated score
    return raw, labels


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibration_fixes_a_miscalibrated_score(method: str) -> None:
    raw, labels = _overconfident()
    calibrator = fit_calibrator(raw, labels, method=method)  # type: ignore[arg-type]
    raw_test, labels_test = _overconfident(seed=1)
    before = expected_calibration_error(raw_test, labels_test)
    after = expected_calibration_error(calibrator(raw_test), labels_test)
    assert after < before / 2
    assert after < 0.05


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibrator_round_trips_through_json_dict(method: str) -> None:
    raw, labels = _overconfident()
    calibrator = fit_calibrator(raw, labels, method=method)  # type: ignore[arg-type]
    again = Calibrator.from_dict(calibrator.to_dict())
    probe = np.linspace(0, 1, 11)
    assert np.allclose(calibrator(probe), again(probe))
    assert np.all(np.diff(again(probe)) >= 0)


def test_bad_calibrator_metadata_is_refused() -> None:
    with pytest.raises(ValueError, match="method"):
        Calibrator.from_dict({"method": "magic"})


@pytest.mark.parametrize(
    ("p", "severity"),
    [(0.0, Severity.SAFE), (0.29, Severity.SAFE), (0.3, Severity.LOW), (0.5, Severity.MEDIUM),
     (0.69, Severity.MEDIUM), (0.7, Severity.HIGH), (1.0, Severity.HIGH)],
)  # fmt: skip
def test_default_thresholds_map_severity(p: float, severity: Severity) -> None:
    assert Thresholds().severity(p) is severity


def test_settings_override_only_what_they_set() -> None:
    stored = Thresholds(0.2, 0.4, 0.8)
    merged = override_thresholds(stored, ModelSettings(kind="hybrid", high_threshold=0.9))
    assert merged == Thresholds(0.2, 0.4, 0.9)
    assert override_thresholds(stored, None) == stored


def test_thresholds_out_of_order_fail() -> None:
    with pytest.raises(ValueError, match="rise"):
        override_thresholds(Thresholds(0.2, 0.4, 0.8), ModelSettings(low_threshold=0.9))


def test_auto_choice_prefers_platt_for_a_logistic_distortion() -> None:
    rng = np.random.default_rng(3)
    logit = rng.normal(0, 2, 4000)
    labels = (rng.uniform(0, 1, 4000) < 1 / (1 + np.exp(-logit))).astype(float)
    raw = 1 / (1 + np.exp(-3 * logit))  # overconfident, but exactly a Platt shape
    assert choose_method(raw, labels) == "platt"
