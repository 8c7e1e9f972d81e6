"""How a verdict's harm labels follow from its label scores and severity."""

from __future__ import annotations

from schemas.events import Severity
from toxicity.hybrid import harm_labels


def test_safe_messages_carry_no_harm_label_even_with_a_high_score() -> None:
    assert harm_labels({"insult": 0.9}, Severity.SAFE, profane=False) == []
    assert harm_labels({"insult": 0.9}, Severity.SAFE, profane=True) == ["profanity"]


def test_low_messages_carry_labels_at_or_above_one_half_in_score_order() -> None:
    scores = {"insult": 0.75, "threat": 0.8, "self_harm": 0.2}
    assert harm_labels(scores, Severity.LOW, profane=False) == ["threat", "insult"]


def test_labels_far_below_the_best_one_are_left_out() -> None:
    # One-vs-rest heads fire together on strong abuse: "kys" is self-harm incitement, and its
    # insult and identity-attack scores above one half are the heads' echo of it.
    scores = {"self_harm": 0.99, "insult": 0.55, "identity_attack": 0.61, "threat": 0.23}
    assert harm_labels(scores, Severity.HIGH, profane=False) == ["self_harm"]
    close = {"threat": 0.95, "self_harm": 0.9}
    assert harm_labels(close, Severity.HIGH, profane=False) == ["threat", "self_harm"]


def test_a_low_message_with_no_confident_label_stays_unlabelled() -> None:
    assert harm_labels({"insult": 0.3, "threat": 0.2}, Severity.LOW, profane=False) == []


def test_a_flagged_message_always_says_why() -> None:
    scores = {"insult": 0.3, "threat": 0.4}
    assert harm_labels(scores, Severity.MEDIUM, profane=True) == ["threat", "profanity"]


def test_without_label_heads_only_profanity_is_said() -> None:
    assert harm_labels({}, Severity.HIGH, profane=True) == ["profanity"]
