"""Fitting the linear heads (``toxicity.heads``) with out-of-fold scores for the booster.

The booster must see, on each training row, the score a head gives to a text it did not train
on (as it will in production); so each head is fitted K times on K-1 folds for the training
rows' features, and once on all rows for the model itself.

Heads (text heads first: that is the order of the model's features):
    head_tfidf      logistic regression on hashed word 1-2-gram TF-IDF of the normalised text
    head_emb_all    logistic regression on the embedding, all training rows
    head_emb_hx     the same on HateXplain train only (its notion of offensive is broader than
                    Jigsaw's); rows outside HateXplain get the full head's score
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from toxicity.heads import HASH_FEATURES, EmbeddingHead, Head, TfidfHead, hashing_vectorizer
from toxicity.normalize import normalize

logger = logging.getLogger(__name__)


def _folds(n: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.permutation(np.arange(n) % k)


def _logistic(c: float, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=400, random_state=seed)


def _oof(
    x: Any, y: np.ndarray, mask: np.ndarray, c: float, k: int, seed: int
) -> tuple[Any, np.ndarray]:
    """(model fitted on all masked rows, out-of-fold decision values for every row)."""
    rows = np.flatnonzero(mask)
    out = np.zeros(len(y), dtype=np.float32)
    folds = _folds(len(rows), k, seed)
    for fold in range(k):
        fit_rows, held = rows[folds != fold], rows[folds == fold]
        if len(set(y[fit_rows].tolist())) < 2 or len(held) == 0:
            continue
        model = _logistic(c, seed).fit(x[fit_rows], y[fit_rows])
        out[held] = model.decision_function(x[held])
    full = _logistic(c, seed).fit(x[rows], y[rows])
    outside = np.flatnonzero(~mask)
    if len(outside):
        out[outside] = full.decision_function(x[outside])
    return full, out


def fit_heads(
    texts: Sequence[str],
    embeddings: np.ndarray,
    y: np.ndarray,
    is_hatexplain: np.ndarray,
    *,
    kinds: Sequence[str] = ("tfidf", "emb_all", "emb_hx"),
    folds: int = 5,
    seed: int = 0,
    echo: Callable[[str], None] = logger.info,
) -> tuple[list[Head], np.ndarray]:
    """The heads and their (n, len(heads)) out-of-fold training features."""
    heads: list[Head] = []
    columns: list[np.ndarray] = []
    everything = np.ones(len(y), dtype=bool)
    if len(set(y.tolist())) < 2:
        return heads, np.zeros((len(y), 0), dtype=np.float32)
    k = max(2, min(folds, int(min(np.bincount(y.astype(int))))))
    if "tfidf" in kinds:
        from sklearn.feature_extraction.text import TfidfTransformer

        counts = hashing_vectorizer().transform([normalize(text) for text in texts])
        transformer = TfidfTransformer(sublinear_tf=True, smooth_idf=True).fit(counts)
        x = transformer.transform(counts).tocsr()
        model, oof = _oof(x, y, everything, 4.0, k, seed)
        idf = np.asarray(transformer.idf_, dtype=np.float32)
        if idf.shape != (HASH_FEATURES,):
            raise ValueError(f"unexpected idf shape {idf.shape}")
        heads.append(
            TfidfHead(
                "head_tfidf", idf, model.coef_[0].astype(np.float32), float(model.intercept_[0])
            )
        )
        columns.append(oof)
        echo("  head_tfidf fitted")
    if "emb_all" in kinds:
        model, oof = _oof(embeddings, y, everything, 1.0, k, seed)
        heads.append(
            EmbeddingHead(
                "head_emb_all", model.coef_[0].astype(np.float32), float(model.intercept_[0])
            )
        )
        columns.append(oof)
        echo("  head_emb_all fitted")
    hx_labels = set(y[is_hatexplain].tolist())
    if "emb_hx" in kinds and is_hatexplain.sum() >= 2 * k and len(hx_labels) == 2:
        model, oof = _oof(embeddings, y, is_hatexplain, 1.0, k, seed)
        heads.append(
            EmbeddingHead(
                "head_emb_hx", model.coef_[0].astype(np.float32), float(model.intercept_[0])
            )
        )
        columns.append(oof)
        echo("  head_emb_hx fitted")
    return heads, np.column_stack(columns).astype(np.float32) if columns else np.zeros(
        (len(y), 0), dtype=np.float32
    )
