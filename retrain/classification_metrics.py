"""Binary-classification metrics and the choice of severity thresholds on a dev set."""

from __future__ import annotations

from typing import Any

import numpy as np

from toxicity.base import Thresholds


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    """ROC-AUC, PR-AUC (average precision), and F1/precision/recall at ``threshold``."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    predicted = p >= threshold
    tp = int(np.sum(predicted & (y == 1)))
    fp = int(np.sum(predicted & (y == 0)))
    fn = int(np.sum(~predicted & (y == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    both = len(set(y.tolist())) == 2
    return {
        "n": len(y),
        "positives": int(y.sum()),
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "threshold": float(threshold),
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "brier": float(np.mean((p - y) ** 2)),
    }


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold (one of the scores) with the highest F1."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(1 - y_sorted)
    # Only the last index of a run of tied scores is a real cut.
    last = np.r_[p_sorted[1:] != p_sorted[:-1], True]
    positives = max(int(y.sum()), 1)
    f1 = 2 * tp / (tp + fp + positives)
    f1 = np.where(last, f1, -1.0)
    return float(p_sorted[int(np.argmax(f1))])


def pick_thresholds(
    p: np.ndarray,
    y: np.ndarray,
    *,
    recall_target: float = 0.9,
    precision_target: float = 0.9,
    default: Thresholds | None = None,
) -> tuple[Thresholds, float]:
    """Severity thresholds from calibrated dev-set probabilities.

    MEDIUM starts at the F1-best threshold (also the decision threshold); LOW at the highest
    threshold that still catches ``recall_target`` of toxic messages; HIGH at the lowest one
    whose precision reaches ``precision_target``. Each falls back to the default when the dev
    set cannot support it, and the three are kept in order.
    """
    default = default or Thresholds()
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    if len(set(y.tolist())) < 2:
        return default, default.medium
    medium = best_f1_threshold(y, p)
    candidates = np.unique(p)
    low = default.low
    recall_ok = [t for t in candidates if np.mean(p[y == 1] >= t) >= recall_target]
    if recall_ok:
        low = float(max(recall_ok))
    high = default.high
    for t in candidates:
        chosen = p >= t
        if chosen.sum() >= 10 and y[chosen].mean() >= precision_target:
            high = float(t)
            break
    low = min(low, medium)
    high = max(high, medium)
    return Thresholds(low=round(low, 4), medium=round(medium, 4), high=round(high, 4)), round(
        medium, 4
    )
