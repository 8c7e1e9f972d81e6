"""Linear heads: out-of-fold training features, and inference that matches training."""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import normalize as l2

from retrain.head_fitting import fit_heads
from toxicity.heads import (
    HASH_FEATURES,
    EmbeddingHead,
    TfidfHead,
    head_features,
    sublinear_counts,
)

TEXTS = [
    "you are a stupid idiot", "shut up moron", "what a dumb loser", "go away you clown",
    "nobody likes you idiot", "you absolute moron", "stupid clown go home", "dumb idiot",
    "have a nice day", "thanks for the help", "see you at the meeting", "great game today",
    "the library opens at nine", "lovely weather", "good morning everyone", "nice work team",
]  # fmt: skip
LABELS = np.array([1.0] * 8 + [0.0] * 8)


def _embeddings(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    x[:, 0] += LABELS * 3
    return x


def test_heads_come_text_first_and_score_the_right_way() -> None:
    is_hx = np.array([i % 2 == 0 for i in range(len(TEXTS))])
    heads, oof = fit_heads(TEXTS, _embeddings(len(TEXTS)), LABELS, is_hx, folds=2)
    assert [h.name for h in heads] == ["head_tfidf", "head_emb_all", "head_emb_hx"]
    assert isinstance(heads[0], TfidfHead)
    assert all(isinstance(h, EmbeddingHead) for h in heads[1:])
    assert oof.shape == (len(TEXTS), 3)
    full = head_features(heads, TEXTS, _embeddings(len(TEXTS)))
    # Fitted on everything, every head ranks toxic above clean on its own training texts.
    for j in range(3):
        assert full[LABELS == 1, j].mean() > full[LABELS == 0, j].mean()


def test_tfidf_head_folds_evasion_like_the_lexicon() -> None:
    heads, _ = fit_heads(
        TEXTS, _embeddings(len(TEXTS)), LABELS, np.zeros(len(TEXTS), bool), kinds=("tfidf",)
    )
    (head,) = heads
    assert isinstance(head, TfidfHead)
    plain, evasive, clean = head.apply_texts(["stupid idiot", "STUP1D 1D10T", "nice day"])
    assert abs(plain - evasive) < 1e-5
    assert plain > clean


def test_one_class_data_gives_no_heads() -> None:
    x = np.zeros((4, 8), dtype=np.float32)
    heads, oof = fit_heads(TEXTS[:4], x, np.ones(4), np.zeros(4, bool))
    assert heads == []
    assert oof.shape == (4, 0)


def test_tfidf_logits_over_non_zeros_equal_sklearn_rows_times_coef() -> None:
    # The scorer's fast path must give the booster the very features training computed.
    rng = np.random.default_rng(0)
    head = TfidfHead(
        "head_tfidf",
        rng.uniform(1.0, 9.0, HASH_FEATURES).astype(np.float32),
        rng.normal(0, 1, HASH_FEATURES).astype(np.float32),
        -0.25,
    )
    texts = ["you are trash trash", "gg wp", "", "!!!", "Y0U SUCK", "kill the boss lol"]
    # sklearn's rows, as the scorer computed them before (and training still does).
    rows = l2(sublinear_counts(texts).multiply(head.idf.reshape(1, -1)).tocsr())
    reference = rows @ head.coef.astype(np.float64) + head.intercept
    got = head.apply_texts(texts)
    assert np.array_equal(got, reference.astype(np.float32))
    assert got[2] == got[3] == np.float32(-0.25)  # no n-gram: the intercept alone
    both = head_features([head, head], texts, np.zeros((len(texts), 4), dtype=np.float32))
    assert np.array_equal(both[:, 0], got) and np.array_equal(both[:, 1], got)
