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


def test_private_details_are_counted_and_ordinary_chat_is_not() -> None:
    def count(text: str) -> float:
        return text_features(text).as_dict()["private_detail_count"]

    assert count("ip: 198.51.100.23 lol") == 1
    assert count("his ip is 10.0.x.x") == 2  # the address and "his ip"
    assert count("call her at (555) 013-2244") == 1
    assert count("he lives at 12 oak hill road") == 1
    assert count("the house on birch street, blue door") == 1
    assert count("what's ur real name and ur school") == 2
    assert count("get him doxxed") == 1
    for ordinary in (
        "gg wp",
        "kill the boss at 12 lol",
        "what's your favourite game",
        "patch 1.2.3 is out",
        "the score was 3-1",
        "your mom is a legend for that dono",
        "nice shot 10/10",
    ):
        assert count(ordinary) == 0, ordinary


def test_empty_text_is_all_zero() -> None:
    assert all(value == 0 for value in text_features("").values)


def test_matrix_shape_and_hits() -> None:
    matrix, hits = feature_matrix(["hello", "shit", ""])
    assert matrix.shape == (3, len(STATIC_FEATURES))
    assert matrix.dtype == np.float32
    assert [h.profanity for h in hits] == [0, 1, 0]
