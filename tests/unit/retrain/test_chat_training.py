"""Chat-domain training data: deterministic, valid labels, unique lines, both classes per family."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from retrain.chat_training import (
    BENIGN_SHARE,
    ISSUE_SPOT_CHECKS,
    MENTION_SHARE,
    ChatDataError,
    ChatExample,
    chat_examples,
    disguise,
    family_files,
    normalised_key,
    parse_family,
)
from schemas.labels import HARM_LABELS
from toxicity.lexicon import HARD_SLURS
from toxicity.normalize import MENTION, model_text, normalize

MIN_PER_LABEL = 150


@pytest.fixture(scope="module")
def examples() -> list[ChatExample]:
    return chat_examples(seed=0)


def test_same_seed_same_data_other_seed_other_fills(examples: list[ChatExample]) -> None:
    assert chat_examples(seed=0) == examples
    other = chat_examples(seed=1)
    assert {e.text for e in other} != {e.text for e in examples}


def test_size_and_benign_share(examples: list[ChatExample]) -> None:
    assert 3000 <= len(examples) <= 12000
    share = sum(e.label == 0 for e in examples) / len(examples)
    assert BENIGN_SHARE[0] <= share <= BENIGN_SHARE[1]


def test_labels_valid(examples: list[ChatExample]) -> None:
    for example in examples:
        assert example.label in (0, 1)
        assert set(example.labels) <= set(HARM_LABELS)
        assert len(set(example.labels)) == len(example.labels)
        if example.label == 1:
            # A harmful line says what the harm is, beyond swearing.
            assert set(example.labels) - {"profanity"}, example
        else:
            assert set(example.labels) <= {"profanity"}, example
        assert example.text == example.text.strip() and example.text


def test_no_duplicate_normalised_text(examples: list[ChatExample]) -> None:
    keys = Counter(normalised_key(e.text) for e in examples)
    assert [key for key, n in keys.items() if n > 1] == []


def test_every_family_has_both_classes(examples: list[ChatExample]) -> None:
    families = {name.removesuffix(".txt") for name in family_files()}
    assert len(families) >= 10
    for family in families:
        classes = {e.label for e in examples if e.family == family}
        assert classes == {0, 1}, family


@pytest.mark.parametrize("label", HARM_LABELS)
def test_minimum_per_harm_label(examples: list[ChatExample], label: str) -> None:
    count = sum(1 for e in examples if label in e.labels)
    assert count >= MIN_PER_LABEL, (label, count)


def test_benign_swearing_carries_profanity(examples: list[ChatExample]) -> None:
    swearing = [e for e in examples if e.label == 0 and "profanity" in e.labels]
    assert len(swearing) >= 100
    assert any(e.text.lower().startswith("holy shit") for e in swearing)


def test_emotes_appear_in_both_classes(examples: list[ChatExample]) -> None:
    with_emote = [e for e in examples if any(w in ("KEKW", "LUL", "Kappa") for w in e.text.split())]
    assert {e.label for e in with_emote} == {0, 1}


def test_mentions_as_common_in_both_classes(examples: list[ChatExample]) -> None:
    # A reply ("@ana same") must not read as harm because harmful lines address people more.
    for label in (0, 1):
        rows = [e for e in examples if e.label == label]
        addressed = sum(1 for e in rows if MENTION in model_text(e.text)) / len(rows)
        assert MENTION_SHARE - 0.03 <= addressed <= MENTION_SHARE + 0.03, (label, addressed)


def test_chat_native_harms_present(examples: list[ChatExample]) -> None:
    harmful = {normalize(e.text) for e in examples if e.label == 1}
    benign = {normalize(e.text) for e in examples if e.label == 0}
    assert {"kys", "go kys"} <= harmful
    assert {"f", "lmao", "lol"} <= benign


def test_issue_spot_checks_stay_unseen(examples: list[ChatExample]) -> None:
    keys = {normalised_key(e.text) for e in examples}
    assert not keys & {normalised_key(text) for text in ISSUE_SPOT_CHECKS}


def test_slurs_only_disguised(examples: list[ChatExample]) -> None:
    # The hard-slur rule catches plain spellings; the data teaches the model the disguised ones.
    for example in examples:
        words = set(example.text.lower().split())
        assert not words & HARD_SLURS, example


def test_disguise_changes_the_word() -> None:
    rng = random.Random(3)
    outs = {disguise("example", rng) for _ in range(200)}
    assert "example" not in outs
    assert len(outs) > 20


def test_bad_headers_are_clear_errors() -> None:
    with pytest.raises(ChatDataError, match=r"x\.txt:1: a harmful section needs a harm label"):
        parse_family("x.txt", "[s] 1\nline\n")
    with pytest.raises(ChatDataError, match="unknown label or option 'profanity'"):
        parse_family("x.txt", "[s] 0 profanity\nline\n")
    with pytest.raises(ChatDataError, match="line before any"):
        parse_family("x.txt", "line\n")
    sections = parse_family("x.txt", "# c\n[s] 1 threat insult *4\na {b|c}\n")
    assert sections[0].labels == ("threat", "insult") and sections[0].fills == 4
