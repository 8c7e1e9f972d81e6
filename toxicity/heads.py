"""Linear heads: small models whose scores the booster reads as extra features (stacking).

Trees split the 384 embedding dimensions one at a time, which is a poor fit for a direction in
embedding space; a logistic regression finds that direction in one step. Each head's logit is a
feature of the XGBoost model, computed out-of-fold on the training rows so that the booster
learns how far to trust it.

- ``embedding``: logistic regression on the sentence embedding (weights stored in model.json);
- ``tfidf``: logistic regression on hashed word 1-2-gram TF-IDF of the normalised text (weights
  stored in ``heads.npz``), the lexical view that catches vocabulary the encoder blurs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from toxicity.normalize import normalize

HASH_FEATURES = 1 << 18
NGRAMS = (1, 2)


@dataclass(frozen=True, eq=False)
class EmbeddingHead:
    """``logit = embedding @ coef + intercept``."""

    name: str
    coef: np.ndarray  # (dim,)
    intercept: float

    def apply(self, embeddings: np.ndarray) -> np.ndarray:
        return (
            embeddings.astype(np.float64) @ self.coef.astype(np.float64) + self.intercept
        ).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "embedding",
            "coef": [float(v) for v in self.coef],
            "intercept": self.intercept,
        }


@lru_cache(maxsize=1)
def hashing_vectorizer() -> Any:
    """The n-gram hasher of the TF-IDF heads (stateless: one for the process)."""
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        n_features=HASH_FEATURES,
        ngram_range=NGRAMS,
        alternate_sign=False,
        norm=None,
        lowercase=False,
        token_pattern=r"(?u)\b\w+\b",  # noqa: S106 - a regex, not a password
    )


def sublinear_counts(texts: Sequence[str]) -> Any:
    """``1 + log(count)`` of each hashed n-gram of the normalised texts (sparse CSR rows)."""
    counts = hashing_vectorizer().transform([normalize(text) for text in texts]).tocsr()
    counts.data = 1.0 + np.log(counts.data)
    return counts


@dataclass(frozen=True, eq=False)
class TfidfHead:
    """``logit = tfidf(normalize(text)) @ coef + intercept`` over hashed n-grams."""

    name: str
    idf: np.ndarray  # (HASH_FEATURES,)
    coef: np.ndarray  # (HASH_FEATURES,)
    intercept: float

    def apply_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.float32)
        return self.apply_counts(sublinear_counts(texts))

    def apply_counts(self, counts: Any) -> np.ndarray:
        """The logits from :func:`sublinear_counts` rows: TF-IDF, L2-normalised, then the
        linear model, computed over the rows' non-zeros alone (sklearn's element-wise product
        and normalisation cost milliseconds a call, whatever the batch size)."""
        n = counts.shape[0]
        rows = np.repeat(np.arange(n), np.diff(counts.indptr))
        weights = counts.data * self.idf[counts.indices].astype(np.float64)
        norms = np.sqrt(np.bincount(rows, weights=weights * weights, minlength=n))
        dots = np.bincount(
            rows, weights=weights * self.coef[counts.indices].astype(np.float64), minlength=n
        )
        scaled = np.divide(dots, norms, out=np.zeros(n), where=norms > 0)
        return (scaled + self.intercept).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "tfidf",
            "intercept": self.intercept,
            "file": "heads.npz",
        }


Head = EmbeddingHead | TfidfHead


def head_features(
    heads: Sequence[Head], texts: Sequence[str], embeddings: np.ndarray
) -> np.ndarray:
    """(n, len(heads)) float32: each head's logit."""
    out = np.zeros((len(texts), len(heads)), dtype=np.float32)
    counts = None  # hashed once for every TF-IDF head
    for j, head in enumerate(heads):
        if isinstance(head, EmbeddingHead):
            out[:, j] = head.apply(embeddings)
        elif texts:
            counts = sublinear_counts(texts) if counts is None else counts
            out[:, j] = head.apply_counts(counts)
    return out
