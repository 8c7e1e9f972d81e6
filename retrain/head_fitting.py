"""Fitting the linear heads (``toxicity.heads``) with out-of-fold scores for the booster.

The booster must see, on each training row, the score a head gives to a text it did not train
on (as it will in production); so each head is fitted K times on K-1 folds for the training
rows' features, and once on all rows for the model itself.

Heads (text heads first: that is the order of the model's features):
    head_tfidf      logistic regression on hashed word 1-2-gram TF-IDF of the normalised text
    head_emb_all    logistic regression on the embedding, all training rows
    head_emb_hx     the same on HateXplain train only (its notion of offensive is broader than
                    Jigsaw's); rows outside HateXplain get the full head's score
    head_tfidf_chat the TF-IDF head on the chat training data only, and
    head_emb_chat   the embedding head on it: chat idiom ("kys", "back to the kitchen", "F")
                    is a few thousand rows among two hundred thousand comments, too few to move
                    the heads fitted on everything; heads of its own let the booster learn
                    where to trust chat's notion of harm
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
    is_chat: np.ndarray | None = None,
) -> tuple[list[Head], np.ndarray]:
    """The heads and their (n, len(heads)) out-of-fold training features."""
    is_chat = np.zeros(len(y), dtype=bool) if is_chat is None else is_chat
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
        chat_labels = set(y[is_chat].tolist())
        if "tfidf_chat" in kinds and is_chat.sum() >= 2 * k and len(chat_labels) == 2:
            # The chat rows' own document frequencies: their vocabulary is what matters here.
            chat_transformer = TfidfTransformer(sublinear_tf=True, smooth_idf=True).fit(
                counts[np.flatnonzero(is_chat)]
            )
            x_chat = chat_transformer.transform(counts).tocsr()
            model, oof = _oof(x_chat, y, is_chat, 4.0, k, seed)
            heads.append(
                TfidfHead(
                    "head_tfidf_chat",
                    np.asarray(chat_transformer.idf_, dtype=np.float32),
                    model.coef_[0].astype(np.float32),
                    float(model.intercept_[0]),
                )
            )
            columns.append(oof)
            echo("  head_tfidf_chat fitted")
    if "emb_all" in kinds:
        model, oof = _oof(embeddings, y, everything, 1.0, k, seed)
        heads.append(
            EmbeddingHead(
                "head_emb_all", model.coef_[0].astype(np.float32), float(model.intercept_[0])
            )
        )
        columns.append(oof)
        echo("  head_emb_all fitted")
    # Embedding heads fitted on one source's rows; the others get the full head's score.
    for kind, mask in (("emb_hx", is_hatexplain), ("emb_chat", is_chat)):
        if kind in kinds and mask.sum() >= 2 * k and len(set(y[mask].tolist())) == 2:
            model, oof = _oof(embeddings, y, mask, 1.0, k, seed)
            heads.append(
                EmbeddingHead(
                    f"head_{kind}", model.coef_[0].astype(np.float32), float(model.intercept_[0])
                )
            )
            columns.append(oof)
            echo(f"  head_{kind} fitted")
    return heads, np.column_stack(columns).astype(np.float32) if columns else np.zeros(
        (len(y), 0), dtype=np.float32
    )


def fit_label_heads(
    embeddings: np.ndarray,
    labels: Sequence[tuple[str, ...]],
    sources: Sequence[str],
    *,
    seed: int = 0,
    echo: Callable[[str], None] = logger.info,
) -> list[EmbeddingHead]:
    """One logistic head per harm label on the embedding (``label_<name>``), one-vs-rest.

    Weak public labels would drown the chat data's precise ones: the pool's offensive rows say
    only "insult", so they train the insult head and sit out the others; pool rows without a
    harm are sampled as negatives for every head. ``profanity`` has no head: the word list says
    it. A label with fewer than 20 positives gets no head.
    """
    from schemas.labels import HARM_LABELS, INSULT, PROFANITY

    rng = np.random.default_rng(seed)
    source = np.asarray(sources)
    pool = source == "pool"
    has_harm = np.array([bool(item) for item in labels], dtype=bool)
    # All non-pool rows, pool rows with a harm (insult head only), a sample of clean pool rows.
    clean_pool = np.flatnonzero(pool & ~has_harm)
    keep_clean = rng.choice(clean_pool, size=min(len(clean_pool), 30_000), replace=False)
    base = np.zeros(len(labels), dtype=bool)
    base[~pool] = True
    base[keep_clean] = True
    heads = []
    for name in HARM_LABELS:
        if name == PROFANITY:
            continue
        rows = base | (pool & has_harm) if name == INSULT else base
        index = np.flatnonzero(rows)
        y = np.array([name in labels[int(i)] for i in index], dtype=np.float32)
        if y.sum() < 20 or y.sum() == len(y):
            echo(f"  label_{name}: {int(y.sum())} positives, no head")
            continue
        # Balanced classes: a label is rare among all rows, and its head answers "which harm is
        # this", asked only of messages the model already grades LOW or above.
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(
            C=1.0, max_iter=600, random_state=seed, class_weight="balanced"
        ).fit(embeddings[index], y)
        heads.append(
            EmbeddingHead(
                f"label_{name}", model.coef_[0].astype(np.float32), float(model.intercept_[0])
            )
        )
        echo(f"  label_{name}: {int(y.sum())} positives of {len(y)}")
    return heads
