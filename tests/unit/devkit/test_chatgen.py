"""The seeded livestream chat generator and the sample it bundles."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from devkit import chatgen
from schemas.events import ChatMessage

SAMPLE = Path(__file__).resolve().parents[3] / "ingest" / "samples" / "livestream.jsonl"


@pytest.fixture(scope="module")
def sample_lines() -> list[str]:
    return SAMPLE.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def sample(sample_lines: list[str]) -> list[ChatMessage]:
    return [ChatMessage.model_validate_json(line) for line in sample_lines]


@pytest.fixture(scope="module")
def labelled() -> list[chatgen.Generated]:
    return list(chatgen.iter_generated(seed=7, count=3000))


def _lines(items: list[tuple[dict, bool]]) -> list[str]:
    return [chatgen.to_json_line(message) for message, _ in items]


def _has_raid_burst(messages: list[ChatMessage], users: int = 10, within_s: float = 15) -> bool:
    """Some text posted by >= ``users`` first-time chatters within ``within_s`` seconds."""
    seen: set[str] = set()
    first_posts: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for m in messages:
        if m.user not in seen:
            first_posts[m.text].append((m.sent_at, m.user))
        seen.add(m.user)
    for posts in first_posts.values():
        for i in range(len(posts)):
            window = [u for t, u in posts[i:] if t - posts[i][0] <= timedelta(seconds=within_s)]
            if len(set(window)) >= users:
                return True
    return False


# --------------------------------------------------------------------------- bundled sample


def test_every_bundled_line_validates(sample_lines: list[str], sample: list[ChatMessage]) -> None:
    assert len(sample_lines) == 3000
    assert all(line.strip() for line in sample_lines)
    ids = [m.message_id for m in sample]
    assert len(set(ids)) == len(ids)
    assert {m.platform for m in sample} == {"replay"}
    assert {m.community for m in sample} == {"stream-demo"}
    for line in sample_lines:
        assert "label" not in json.loads(line) and "toxic" not in json.loads(line)


def test_bundled_sample_is_exactly_seed_7(sample_lines: list[str], tmp_path: Path) -> None:
    out = tmp_path / "again.jsonl"
    assert chatgen.main(["--seed", "7", "--count", "3000", "--out", str(out)]) == 0
    assert out.read_bytes() == SAMPLE.read_bytes()
    assert [chatgen.to_json_line(g.message) for g in chatgen.iter_generated(7, 50)] == (
        sample_lines[:50]
    )


def test_timestamps_are_ordered_and_at_livestream_rates(sample: list[ChatMessage]) -> None:
    sent = [m.sent_at for m in sample]
    assert all(a <= b for a, b in pairwise(sent))
    for m in sample:
        assert m.sent_at.utcoffset() is not None
        assert timedelta(0) < m.received_at - m.sent_at <= timedelta(milliseconds=201)
    minutes = (sent[-1] - sent[0]).total_seconds() / 60
    assert 60 <= len(sample) / minutes <= 100
    # Bursts are much faster than the average: some 10-second window holds >= 30 messages.
    j, best = 0, 0
    for i in range(len(sent)):
        while sent[i] - sent[j] > timedelta(seconds=10):
            j += 1
        best = max(best, i - j + 1)
    assert best >= 30


def test_repeats_copypasta_and_emote_spam(sample: list[ChatMessage]) -> None:
    by_text: dict[str, set[str]] = defaultdict(set)
    for m in sample:
        by_text[m.text].add(m.user)
    pastas = [t for t, users in by_text.items() if len(t) >= 80 and len(users) >= 3]
    assert pastas, "no copypasta repeated by several users"
    emotes = set(chatgen.GLOBAL_EMOTES)
    spam = [
        t
        for t, users in by_text.items()
        if len(users) >= 3 and t.split() and all(w in emotes for w in t.split())
    ]
    assert spam, "no emote spam repeated by several users"
    assert len(by_text) < 0.8 * len(sample)


def test_sample_has_a_raid_burst(sample: list[ChatMessage]) -> None:
    assert _has_raid_burst(sample)


def test_raid_detector_can_fail(sample: list[ChatMessage]) -> None:
    assert not _has_raid_burst(sample[:500])  # the first raid comes later in the stream


def test_population_roles_and_activity(sample: list[ChatMessage]) -> None:
    roles: dict[str, tuple[str, ...]] = {m.user: tuple(m.user_roles) for m in sample}
    assert sum("broadcaster" in r for r in roles.values()) == 1
    for role in ("moderator", "vip", "subscriber"):
        assert any(role in r for r in roles.values()), role
    names = {m.user: m.user_name for m in sample}
    assert len(set(names.values())) == len(names)
    counts = sorted(Counter(m.user for m in sample).values(), reverse=True)
    top = counts[: max(1, len(counts) // 20)]
    assert sum(top) >= 0.4 * len(sample), "activity is not Zipf-like"
    assert len(counts) >= 200


def test_replies_mentions_links_and_attachments(sample: list[ChatMessage]) -> None:
    earlier: set[str] = set()
    replies = 0
    for m in sample:
        if m.reply_to is not None:
            assert m.reply_to in earlier
            replies += 1
        earlier.add(m.message_id)
    assert replies >= 50
    assert sum(m.text.startswith("@") for m in sample) >= 100
    assert any("https://" in m.text for m in sample)
    attached = [a for m in sample for a in m.attachments]
    assert attached
    assert all(
        a.url.startswith("https://") and (a.content_type or "").startswith("image/")
        for a in attached
    )


# --------------------------------------------------------------------------- labels


def test_labels_match_the_sample(
    labelled: list[chatgen.Generated], sample: list[ChatMessage]
) -> None:
    assert [g.message["message_id"] for g in labelled] == [m.message_id for m in sample]
    share = sum(g.toxic for g in labelled) / len(labelled)
    assert 0.08 <= share <= 0.12


@pytest.mark.parametrize("seed", [1, 2, 3, 42])
def test_toxic_share_in_range_for_other_seeds(seed: int) -> None:
    pairs = chatgen.generate(seed=seed, count=3000)
    share = sum(toxic for _, toxic in pairs) / len(pairs)
    assert 0.08 <= share <= 0.12


def test_toxic_share_follows_the_knob() -> None:
    pairs = chatgen.generate(seed=5, count=2000, toxic_share=0.03)
    assert sum(toxic for _, toxic in pairs) / len(pairs) < 0.05


def test_hard_cases_on_both_sides(labelled: list[chatgen.Generated]) -> None:
    toxic = [g for g in labelled if g.toxic]
    assert all(g.kind.startswith("toxic.") for g in toxic)
    evasions = [g for g in toxic if g.kind.endswith(".evasion")]
    assert len(evasions) >= 0.1 * len(toxic)
    assert any(not g.message["text"].isascii() for g in evasions)  # homoglyphs / zero-width
    kinds = {g.kind.removesuffix(".evasion") for g in toxic}
    assert {"toxic.insult_streamer", "toxic.insult_chatter", "toxic.profanity"} <= kinds
    borderline = [g for g in labelled if g.kind == "borderline"]
    assert len(borderline) >= 30 and not any(g.toxic for g in borderline)
    assert not any(g.toxic for g in labelled if g.kind in ("raid", "copypasta", "spam"))


def test_cli_writes_labels(tmp_path: Path) -> None:
    out, labels = tmp_path / "chat.jsonl", tmp_path / "labels.jsonl"
    rc = chatgen.main(["--seed", "3", "--count", "400", "--out", str(out), "--labels", str(labels)])
    assert rc == 0
    messages = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    rows = [json.loads(line) for line in labels.read_text(encoding="utf-8").splitlines()]
    assert [r["message_id"] for r in rows] == [m["message_id"] for m in messages]
    expected = [toxic for _, toxic in chatgen.generate(seed=3, count=400)]
    assert [r["toxic"] for r in rows] == expected


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_output_different_seed_differs() -> None:
    a = _lines(chatgen.generate(seed=11, count=800))
    b = _lines(chatgen.generate(seed=11, count=800))
    c = _lines(chatgen.generate(seed=12, count=800))
    assert a == b
    assert a != c
    texts_a = [json.loads(x)["text"] for x in a]
    texts_c = [json.loads(x)["text"] for x in c]
    assert sum(x != y for x, y in zip(texts_a, texts_c, strict=True)) > 400


def test_generated_messages_validate_for_other_seeds() -> None:
    for seed in (0, 99):
        messages = [
            ChatMessage.model_validate_json(chatgen.to_json_line(message))
            for message, _ in chatgen.generate(seed=seed, count=1500)
        ]
        assert all(a.sent_at <= b.sent_at for a, b in pairwise(messages))


# --------------------------------------------------------------------------- load generation


def test_load_is_deterministic_and_valid() -> None:
    a = [
        chatgen.to_json_line(m)
        for m in chatgen.load_messages(3000, seed=4, repetition=0.3, raid_every=400)
    ]
    b = [
        chatgen.to_json_line(m)
        for m in chatgen.load_messages(3000, seed=4, repetition=0.3, raid_every=400)
    ]
    assert len(a) == 3000 and a == b
    assert a != [chatgen.to_json_line(m) for m in chatgen.load_messages(3000, seed=5)]
    for line in a:
        ChatMessage.model_validate_json(line)
    assert len({json.loads(line)["message_id"] for line in a}) == 3000


def test_unique_gives_all_distinct_texts() -> None:
    plain = [m["text"] for m in chatgen.load_messages(5000, seed=3, repetition=0.6, raid_every=300)]
    unique = [
        m["text"]
        for m in chatgen.load_messages(5000, seed=3, repetition=0.6, raid_every=300, unique=True)
    ]
    assert len(set(plain)) < 0.5 * len(plain)  # without the knob there are many repeats
    assert len(set(unique)) == len(unique) == 5000


def test_repetition_knob_raises_the_repeat_share() -> None:
    def dup_share(repetition: float) -> float:
        texts = [m["text"] for m in chatgen.load_messages(4000, seed=8, repetition=repetition)]
        return 1 - len(set(texts)) / len(texts)

    low, high = dup_share(0.0), dup_share(0.8)
    assert high > low + 0.15


def test_raid_every_injects_raids() -> None:
    items = list(chatgen.iter_load(3000, seed=2, repetition=0.1, raid_every=500))
    messages = [ChatMessage.model_validate_json(chatgen.to_json_line(g.message)) for g in items]
    assert _has_raid_burst(messages)
    no_raids = list(chatgen.iter_load(3000, seed=2, repetition=0.1, raid_every=None))
    assert not any(g.kind == "raid" for g in no_raids)
    assert sum(g.kind == "raid" for g in items) >= 5 * 18


def test_rate_knob_compresses_the_clock() -> None:
    msgs = list(chatgen.load_messages(5000, seed=1, rate=500.0))
    first = datetime.fromisoformat(msgs[0]["sent_at"])
    last = datetime.fromisoformat(msgs[-1]["sent_at"])
    assert 5 <= (last - first).total_seconds() <= 20


def test_counter_word_is_injective() -> None:
    words = [chatgen.counter_word(n) for n in range(20_000)]
    assert len(set(words)) == len(words)
    assert all(" " not in w for w in words)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        list(chatgen.load_messages(10, repetition=1.5))
    with pytest.raises(ValueError):
        chatgen.ChatGenerator(start=datetime(2024, 1, 1))  # naive
