"""Training rows from reviews: majority labels, deduplication, deleted users, the held-out
slice, and weak labels only when asked."""

from __future__ import annotations

from typing import Any

from retrain.feedback import build, in_holdout

CONTEXT = {
    "user_bad_ratio_7d": 0.5,
    "violation_count_7d": 3,
    "channel_toxicity_ratio": 0.1,
    "hours_since_last_msg": None,
    "is_new_to_channel": 1,
}


def verdict(n: int, text: str, user: str = "u1", p: float = 0.5, **extra: Any) -> dict[str, Any]:
    return {
        "message_id": f"m{n}",
        "platform": "discord",
        "community": "c1",
        "user": user,
        "text": text,
        "p_toxic": p,
        "features": CONTEXT,
        "scored_at": f"2026-12-01T10:00:{n:02d}Z",
        **extra,
    }


def review(
    n: int, label: bool | None, mod: str = "mod1", at: int = 0, kind: str = "review"
) -> dict:
    return {
        "message_id": f"m{n}",
        "kind": kind,
        "user": mod,
        "label_toxic": label,
        "created_at": f"2026-12-01T11:00:{at:02d}Z",
    }


def rows_by_text(data: Any) -> dict[str, Any]:
    return {row.text: row for row in data.train + data.holdout}


def test_majority_of_each_moderators_latest_review_labels_a_message() -> None:
    verdicts = [verdict(1, "you absolute clown"), verdict(2, "nice play"), verdict(3, "ok sure")]
    feedback = [
        # mod1 changed their mind: their latest review counts, once.
        review(1, False, "mod1", at=1),
        review(1, True, "mod1", at=2),
        review(1, True, "mod2", at=3),
        review(2, False, "mod1"),
        # A tie is dropped, and a dispute alone is no label.
        review(3, True, "mod1"),
        review(3, False, "mod2"),
        review(2, None, "author", kind="dispute"),
    ]
    data = build(verdicts, feedback)
    rows = rows_by_text(data)
    assert set(rows) == {"you absolute clown", "nice play"}
    clown = rows["you absolute clown"]
    assert clown.label is True and clown.weight == 1.5  # two agreeing moderators
    assert clown.context == (0.5, 3.0, 0.1, None, 1.0)
    assert rows["nice play"].label is False and rows["nice play"].weight == 1.0
    assert data.stats["conflicting"] == 1 and data.stats["disputes_or_unlabelled"] == 1


def test_copies_of_one_text_make_one_row_and_unjoined_reviews_are_counted() -> None:
    verdicts = [verdict(n, "SPAM copypasta!!") for n in range(1, 6)]
    feedback = [review(n, True) for n in range(1, 6)] + [review(9, True)]
    data = build(verdicts, feedback)
    assert len(data.train + data.holdout) == 1
    assert data.stats["unjoined"] == 1
    (row,) = data.train + data.holdout
    assert row.weight == 2.0  # five agreeing labels, capped


def test_deleted_users_are_left_out() -> None:
    verdicts = [verdict(1, "first line", user="gone"), verdict(2, "second line", user="kept")]
    data = build(verdicts, [review(1, True), review(2, True)], deleted={("discord", "c1", "gone")})
    assert set(rows_by_text(data)) == {"second line"}
    assert data.stats["deleted_user"] == 1


def test_the_held_out_slice_is_stable_and_never_trains() -> None:
    texts = [f"line number {i}" for i in range(400)]
    verdicts = [verdict(i, t) for i, t in enumerate(texts)]
    data = build(verdicts, [review(i, i % 3 == 0) for i in range(400)])
    held = {row.text for row in data.holdout}
    assert held == {t for t in texts if in_holdout(t)}
    assert 40 < len(held) < 120  # about 20 %
    assert not held & {row.text for row in data.train}
    assert {e.source for e in data.examples()} == {"feedback"}
    assert len(data.examples()) == len(data.train)


def test_weak_labels_only_when_asked_and_only_confident_unreviewed_verdicts() -> None:
    verdicts = [verdict(1, "reviewed one")] + [
        verdict(n, f"logged line {n}", p=p) for n, p in ((2, 0.99), (3, 0.5), (4, 0.01), (5, 0.98))
    ]
    feedback = [review(1, True)]
    assert build(verdicts, feedback).stats["weak"] == 0
    weak = build(verdicts, feedback, weak=True)
    labels = {r.text: r.label for r in weak.train if r.source == "weak"}
    expected = {
        t: p >= 0.97
        for t, p in (("logged line 2", 0.99), ("logged line 4", 0.01), ("logged line 5", 0.98))
        if not in_holdout(t)
    }
    assert labels == expected
    assert all(r.weight == 0.25 for r in weak.train if r.source == "weak")


def test_the_trigger_setting_decides_when_a_retrain_is_due() -> None:
    from retrain.retraining import due

    assert due("labels", 499, ["c1"], 500) is None
    assert due("labels", 500, [], 500) == "500 new reviews"
    assert due("drift", 10_000, [], 500) is None
    assert due("drift", 0, ["b", "a", "b"], 500) == "drift in a, b"
    assert due("drift_or_labels", 600, [], 500) == "600 new reviews"
    assert due("drift_or_labels", 0, ["a"], 500) == "drift in a"
    assert due("off", 10_000, ["a"], 500) is None
