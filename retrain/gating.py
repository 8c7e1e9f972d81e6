"""Promotion gating: is a candidate model worse than the active one on a reserved set?

``warden evaluate`` keeps each model's per-line results on the reserved sets next to the model
(:data:`RESERVED_FILE`): HateXplain test (P(toxic) and labels), the chat-domain set's test split
(flagged at the flag severity, and which lines are harmful), and a held-out slice of reviewed
feedback when the model was trained with one. Two models are compared line by line on the
same lines (the file records a hash of the texts; different texts are not comparable).

"Worse beyond noise" is decided by a paired bootstrap: the lines are resampled 1,000 times
(fixed seed), the metric difference candidate - active is computed on each resample, and a
metric counts as worse when the whole 95 % interval of that difference lies on the worse side.
A small set gives a wide interval and refuses only a clear loss; a metric the active model has
and the candidate lacks refuses too (evaluate the candidate first).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toxicity.artifacts import METADATA_FILE

RESERVED_FILE = "reserved_scores.npz"
RESAMPLES = 1000
SEED = 20261201

Arrays = dict[str, np.ndarray]


def texts_sha(texts: Sequence[str]) -> str:
    """Which lines a set holds, in order: what two models must share to be compared."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def save_reserved(folder: Path, sets: dict[str, Arrays]) -> Path:
    """Write ``{set: {array: values}}`` (each set with a ``sha`` of its texts and
    a ``p`` per line) to the model."""
    # Bound to the model it measured: a copied or edited directory does not carry them over.
    flat: dict[str, np.ndarray] = {"model__version": np.array(_version(folder))}
    for name, arrays in sets.items():
        if name == "model":
            continue
        for key, value in arrays.items():
            flat[f"{name}__{key}"] = np.asarray(value)
    path = folder / RESERVED_FILE
    np.savez_compressed(path, **flat)  # type: ignore[arg-type]
    return path


def _version(folder: Path) -> str:
    """The version in ``model.json`` (read as plain JSON: no model is loaded)."""
    try:
        return str(json.loads((folder / METADATA_FILE).read_text())["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def load_reserved(folder: Path) -> dict[str, Arrays]:
    """The per-line results kept with a model, by set; empty when it was never evaluated (or
    they were measured on another model: a copied directory, a changed model.json)."""
    path = folder / RESERVED_FILE
    if not path.is_file():
        return {}
    sets: dict[str, Arrays] = {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            name, _, array = key.partition("__")
            sets.setdefault(name, {})[array] = data[key]
    measured = sets.pop("model", {}).get("version")
    if measured is None or str(measured) != _version(folder):
        return {}
    return sets


def _auc(arrays: Arrays, index: np.ndarray) -> float:
    y = arrays["y"][index].astype(int)
    p = arrays["p"][index].astype(np.float64)
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    # Mann-Whitney with average ranks for ties: ROC-AUC without sklearn's per-call checks.
    from scipy.stats import rankdata

    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _rate(kind: bool) -> Callable[[Arrays, np.ndarray], float]:
    def rate(arrays: Arrays, index: np.ndarray) -> float:
        chosen = arrays["harmful"][index].astype(bool) == kind
        flagged = arrays["flagged"][index].astype(bool)
        return float(flagged[chosen].mean()) if chosen.any() else float("nan")

    return rate


@dataclass(frozen=True)
class Metric:
    set: str
    name: str
    higher_is_better: bool
    compute: Callable[[Arrays, np.ndarray], float]


METRICS = (
    Metric("hatexplain_test", "HateXplain test ROC-AUC", True, _auc),
    Metric("chat_test", "chat test: benign lines flagged", False, _rate(False)),
    Metric("chat_test", "chat test: harmful lines caught", True, _rate(True)),
    Metric("feedback_holdout", "held-out feedback ROC-AUC", True, _auc),
)


@dataclass(frozen=True)
class Check:
    """One metric of the candidate against the active model."""

    name: str
    candidate: float | None
    active: float | None
    # The 95 % paired-bootstrap interval of candidate - active.
    low: float | None = None
    high: float | None = None
    worse: bool = False
    note: str = ""

    def line(self) -> str:
        if self.candidate is None or self.active is None:
            return f"{self.name}: {self.note}"
        verdict = "WORSE" if self.worse else "ok"
        return (
            f"{self.name}: {self.candidate:.3f} vs active {self.active:.3f} "
            f"(difference {self.candidate - self.active:+.3f}, 95% interval "
            f"{self.low:+.3f} .. {self.high:+.3f}) {verdict}"
        )


def compare(
    candidate: Path,
    active: Path,
    *,
    active_version: str | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> list[Check]:
    """Every reserved metric both models can be compared on, and the ones they cannot.

    A retrain's held-out feedback is newer than the active model: the candidate carries the
    active model's scores on it (``baseline_p``, ``baseline_version``), used when they are the
    active model's."""
    mine, theirs = load_reserved(candidate), load_reserved(active)
    carried = mine.get("feedback_holdout")
    if (
        "feedback_holdout" not in theirs
        and carried is not None
        and "baseline_p" in carried
        and active_version is not None
        and str(carried.get("baseline_version")) == active_version
    ):
        theirs["feedback_holdout"] = {**carried, "p": carried["baseline_p"]}
    rng = np.random.default_rng(seed)
    checks = []
    for metric in METRICS:
        a, b = mine.get(metric.set), theirs.get(metric.set)
        if b is None:
            continue  # the active model was never measured on this set: nothing to keep
        if a is None:
            checks.append(
                Check(
                    metric.name,
                    None,
                    metric.compute(b, np.arange(len(b["p"]))),
                    worse=True,
                    note=f"the candidate has no results on {metric.set} "
                    f"(run `warden evaluate --model {candidate}`)",
                )
            )
            continue
        if str(a["sha"]) != str(b["sha"]):
            checks.append(
                Check(
                    metric.name,
                    None,
                    None,
                    worse=True,
                    note=f"the two models were evaluated on different {metric.set} lines "
                    "(run `warden evaluate` on both with the same data)",
                )
            )
            continue
        checks.append(_paired(metric, a, b, rng, resamples))
    return checks


def _paired(
    metric: Metric, a: Arrays, b: Arrays, rng: np.random.Generator, resamples: int
) -> Check:
    n = len(a["p"])
    everything = np.arange(n)
    mine, theirs = metric.compute(a, everything), metric.compute(b, everything)
    differences = []
    for _ in range(resamples):
        index = rng.integers(0, n, n)
        differences.append(metric.compute(a, index) - metric.compute(b, index))
    values = np.array(differences)
    values = values[~np.isnan(values)]
    low, high = (float(v) for v in np.percentile(values, [2.5, 97.5]))
    worse = high < 0 if metric.higher_is_better else low > 0
    return Check(metric.name, mine, theirs, low, high, worse)


def refusal(checks: Sequence[Check]) -> str | None:
    """Why a promotion is refused, or None when the candidate is not worse anywhere."""
    worse = [check for check in checks if check.worse]
    if not worse:
        return None
    return "; ".join(check.line() for check in worse)
