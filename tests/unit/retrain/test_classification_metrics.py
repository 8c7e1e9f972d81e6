"""Threshold choice on a dev set."""

from __future__ import annotations

import numpy as np

from retrain.classification_metrics import best_f1_threshold, binary_metrics, pick_thresholds


def test_best_f1_threshold_separates_a_clean_split() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
    threshold = best_f1_threshold(y, p)
    assert 0.3 < threshold <= 0.6
    assert binary_metrics(y, p, threshold)["f1"] == 1.0


def test_thresholds_rise_and_medium_is_the_decision() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    p = np.clip(y * 0.4 + rng.uniform(0, 0.6, 2000), 0, 1)
    thresholds, decision = pick_thresholds(p, y)
    assert thresholds.low <= thresholds.medium <= thresholds.high
    assert decision == thresholds.medium
    assert np.mean(p[y == 1] >= thresholds.low) >= 0.9
    chosen = p >= thresholds.high
    assert y[chosen].mean() >= 0.9


def test_one_class_dev_set_keeps_defaults() -> None:
    thresholds, decision = pick_thresholds(np.array([0.1, 0.9]), np.array([1, 1]))
    assert (thresholds.low, thresholds.medium, thresholds.high) == (0.3, 0.5, 0.7)
    assert decision == 0.5
