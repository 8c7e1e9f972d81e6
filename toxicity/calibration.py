"""Calibration of raw classifier scores into probabilities, stored as plain JSON.

Isotonic regression is kept as its breakpoints and applied with linear interpolation (what
scikit-learn's ``IsotonicRegression.predict`` does), so loading needs only numpy; Platt scaling
is a logistic curve on the raw score's log-odds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Method = Literal["isotonic", "platt", "identity"]
_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Calibrator:
    """Maps the booster's raw P(toxic) to a calibrated probability."""

    method: Method = "identity"
    x: tuple[float, ...] = field(default_factory=tuple)
    y: tuple[float, ...] = field(default_factory=tuple)
    a: float = 1.0
    b: float = 0.0

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.float64)
        if self.method == "isotonic":
            return np.interp(raw, np.array(self.x), np.array(self.y))
        if self.method == "platt":
            return 1.0 / (1.0 + np.exp(-(self.a * _logit(raw) + self.b)))
        return raw

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "x": list(self.x),
            "y": list(self.y),
            "a": self.a,
            "b": self.b,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        method = data.get("method", "identity")
        if method not in ("isotonic", "platt", "identity"):
            raise ValueError(f"unknown calibration method {method!r}")
        x = tuple(float(v) for v in data.get("x", ()))
        y = tuple(float(v) for v in data.get("y", ()))
        if method == "isotonic" and (len(x) != len(y) or len(x) < 2):
            raise ValueError("isotonic calibration needs matching x/y breakpoints")
        return cls(method=method, x=x, y=y, a=float(data.get("a", 1.0)), b=float(data.get("b", 0)))


def fit_calibrator(raw: np.ndarray, labels: np.ndarray, method: Method = "isotonic") -> Calibrator:
    """Fit on held-out (dev) scores: never on the rows the booster trained on."""
    raw = np.asarray(raw, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True)
        iso.fit(raw, labels)
        return Calibrator(
            method="isotonic",
            x=tuple(float(v) for v in iso.X_thresholds_),
            y=tuple(float(v) for v in iso.y_thresholds_),
        )
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=1e6)
        lr.fit(_logit(raw).reshape(-1, 1), labels)
        return Calibrator(method="platt", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))
    return Calibrator()


def choose_method(raw: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0) -> Method:
    """Isotonic or Platt, whichever has the lower cross-validated log loss on this dev set.

    Isotonic bends to any monotone shape but pools scores into flat steps (ties that cost
    ranking on new data); Platt keeps the order exactly. Cross-validation decides honestly.
    """
    raw = np.asarray(raw, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    order = np.random.default_rng(seed).permutation(len(raw)) % folds
    losses: dict[Method, float] = {}
    for method in ("isotonic", "platt"):
        total = 0.0
        for fold in range(folds):
            fit, held = order != fold, order == fold
            if len(set(labels[fit].tolist())) < 2 or not held.any():
                continue
            p = np.clip(fit_calibrator(raw[fit], labels[fit], method)(raw[held]), 1e-4, 1 - 1e-4)
            total -= float(np.sum(labels[held] * np.log(p) + (1 - labels[held]) * np.log(1 - p)))
        losses[method] = total
    return min(losses, key=lambda method: losses[method])


def expected_calibration_error(p: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - predicted probability| over equal-width bins, weighted by size."""
    p = np.asarray(p, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.sum() * abs(labels[mask].mean() - p[mask].mean())
    return float(total / max(len(p), 1))


@dataclass(frozen=True)
class Adjustment:
    """A community's correction of the global probabilities: ``sigmoid(a * logit(p) + b)``,
    a Platt fit on its reviewed outcomes shrunk toward the identity (a=1, b=0) by
    ``weight = n / (n + prior)``: a few reviews move it a little, many move it to their fit."""

    a: float = 1.0
    b: float = 0.0
    weight: float = 0.0
    n: int = 0

    def __call__(self, p: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.a * _logit(np.asarray(p, dtype=np.float64)) + self.b)))

    def threshold(self, t: float) -> float:
        """The global P(toxic) at which the adjusted probability reaches ``t``."""
        z = (float(_logit(np.array([t]))[0]) - self.b) / self.a
        return float(1.0 / (1.0 + np.exp(-z)))


def community_adjustment(p: np.ndarray, y: np.ndarray, prior: float = 50.0) -> Adjustment:
    """Fit :class:`Adjustment` to reviewed outcomes ``y`` of messages scored ``p``."""
    from sklearn.linear_model import LogisticRegression

    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y).astype(int)
    n = len(y)
    if n == 0 or len(set(y.tolist())) < 2:
        # One class only: the intercept alone can say "fewer (or more) are toxic here".
        rate = (y.sum() + 1) / (n + 2) if n else 0.5
        mean = float(np.clip(np.mean(p) if n else 0.5, _EPS, 1 - _EPS))
        b_hat, a_hat = float(np.log(rate / (1 - rate)) - np.log(mean / (1 - mean))), 1.0
    else:
        model = LogisticRegression(C=1e4).fit(_logit(p).reshape(-1, 1), y)
        a_hat, b_hat = float(model.coef_[0][0]), float(model.intercept_[0])
    weight = n / (n + prior)
    a = float(np.clip(1.0 + weight * (a_hat - 1.0), 0.25, 4.0))
    return Adjustment(a=a, b=weight * b_hat, weight=weight, n=n)
