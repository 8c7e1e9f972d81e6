"""Static text features: the values a user would expect for typical messages."""

from __future__ import annotations

import numpy as np

from toxicity.features import STATIC_FEATURES, feature_matrix, text_features


def test_feature_names_and_values_line_up() -> None:
    features = text_features("YOU are a f.u.c.k.i.n.g idiot!!! @bob http://x.io 😀").as_dict()
    assert list(features) == list(STATIC_FEATURES)
    assert features["profanity_count"] == 1
    assert features["evasion_count"] == 1
    assert features["pronoun_count"] == 1
    assert features["exclamation_count"] == 3
    assert features["mention_count"] == 1
    assert features["url_count"] == 1
    assert features["emoji_count"] == 1
    assert features["max_char_run"] == 3
    assert 0 < features["caps_ratio"] < 1


def test_pronouns_count_chat_spellings() -> None:
    assert text_features("u r dumb and ur team too, you know").as_dict()["pronoun_count"] == 3


def test_plain_profanity_is_not_evasion() -> None:
    features = text_features("fuck this").as_dict()
    assert features["profanity_count"] == 1
    assert features["evasion_count"] == 0


def test_caps_and_questions() -> None:
    features = text_features("WHY ARE YOU LIKE THIS??").as_dict()
    assert features["caps_ratio"] == 1.0
    assert features["question_count"] == 2


def test_empty_text_is_all_zero() -> None:
    assert all(value == 0 for value in text_features("").values)


def test_matrix_shape_and_hits() -> None:
    matrix, hits = feature_matrix(["hello", "shit", ""])
    assert matrix.shape == (3, len(STATIC_FEATURES))
    assert matrix.dtype == np.float32
    assert [h.profanity for h in hits] == [0, 1, 0]
