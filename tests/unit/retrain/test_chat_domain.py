"""How the chat-domain data enters training: reserved evaluation lines, calibration weight, the
benign-chat cap on the flag threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from retrain.chatset import load_cases
from retrain.datasets import (
    chat_cases,
    chat_training,
    dedupe,
    load_splits,
    strip_addressing,
    unaddressed_key,
)
from retrain.training import calibration_set, cap_benign_chat
from toxicity.base import Thresholds
from toxicity.normalize import normalize

FIXTURES = Path(__file__).parent / "fixtures"


def test_no_evaluation_line_is_ever_a_training_line() -> None:
    seen: set[str] = set()
    reserved = dedupe(chat_cases("test"), seen) + dedupe(chat_cases("dev"), seen)
    assert len(reserved) == len(load_cases())
    training = dedupe(chat_training(seed=0), seen)
    assert training, "no chat training line survived"
    assert not {normalize(e.text) for e in training} & {normalize(e.text) for e in reserved}
    assert {e.source for e in training} == {"chat"}
    assert all(e.label in (0, 1) for e in training)


def test_an_addressed_copy_of_an_evaluation_line_never_trains() -> None:
    # "@ana gg" teaches "gg": the training data adds mentions, so the check ignores them.
    reserved = {unaddressed_key(e.text) for e in chat_cases("test") + chat_cases("dev")}
    would_leak = [e for e in chat_training(seed=0) if unaddressed_key(e.text) in reserved]
    assert would_leak, "no training line is an addressed evaluation line: the check tests nothing"
    splits = load_splits(FIXTURES, pool_csv=FIXTURES / "pool.csv", hatexplain_dir=FIXTURES)
    chat_rows = [e for e in splits.train if e.source == "chat"]
    assert chat_rows
    assert not {unaddressed_key(e.text) for e in chat_rows} & reserved


def test_tweet_addressing_is_removed_from_pool_rows() -> None:
    # The pool's tweets are mostly offensive and mostly replies: "@name" must not mean abuse.
    assert strip_addressing("RT @some_one: @other you are trash") == "you are trash"
    assert strip_addressing('"@KingCuh: lol" haha') == '" lol" haha'
    assert strip_addressing("mail me at a@b.com") == "mail me at a@b.com"
    rows = load_splits(FIXTURES, pool_csv=FIXTURES / "pool.csv", hatexplain_dir=FIXTURES)
    assert not [e.text for e in rows.train + rows.pool_dev if e.source == "pool" and "@" in e.text]


def test_chat_dev_weighs_as_much_as_hatexplain_dev_in_calibration() -> None:
    raw_hx, y_hx = np.linspace(0, 1, 1200), np.arange(1200) % 2
    raw_chat, y_chat = np.linspace(0, 1, 300), (np.arange(300) % 3 == 0).astype(int)
    raw, y = calibration_set(raw_hx, y_hx, raw_chat, y_chat)
    assert len(raw) == len(y) == 1200 + 4 * 300
    assert np.array_equal(raw[:1200], raw_hx)
    assert calibration_set(raw_hx, y_hx, raw_chat[:0], y_chat[:0])[0] is raw_hx


def test_the_flag_threshold_rises_until_benign_chat_is_rarely_flagged() -> None:
    benign = np.linspace(0.0, 0.99, 100)
    harmful = np.full(20, 0.995)
    p = np.concatenate([benign, harmful])
    y = np.array([0] * 100 + [1] * 20)
    thresholds, decision = cap_benign_chat(Thresholds(0.2, 0.3, 0.6), p, y, 0.05)
    assert decision == thresholds.medium
    assert np.mean(benign >= decision) <= 0.05
    assert np.mean(benign >= decision - 0.02) > 0.05  # the lowest such threshold, near enough
    assert thresholds.low == 0.2 and thresholds.high >= thresholds.medium


def test_a_threshold_already_strict_enough_is_kept() -> None:
    p = np.array([0.1, 0.2, 0.9])
    y = np.array([0, 0, 1])
    assert cap_benign_chat(Thresholds(0.2, 0.5, 0.8), p, y, 0.05) == (
        Thresholds(0.2, 0.5, 0.8),
        0.5,
    )
