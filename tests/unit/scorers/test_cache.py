"""The text-side cache: repeated lines cost no model time; context still applies per message."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from core import metrics
from schemas.events import Severity
from scorers.cache import Row, TextSideCache, cache_key, decode_row, encode_row
from toxicity.base import Context, Score
from toxicity.hybrid import TextSide
from toxicity.lexicon import Hits


class CountingModel:
    """A SplitScorer whose text side is a pure function of the text, counting what it computes."""

    version = "counting-1"

    def __init__(self) -> None:
        self.computed: list[str] = []

    def score_text_side(self, texts: Sequence[str]) -> TextSide:
        self.computed.extend(texts)
        lengths = np.array([[len(t)] for t in texts], dtype=np.float32)
        return TextSide(
            embeddings=np.hstack([lengths, lengths * 2]),
            static=lengths,
            hits=[Hits(profanity=t.count("!")) for t in texts],
        )

    def combine(
        self, text_side: TextSide, contexts: Sequence[Context] | None = None
    ) -> list[Score]:
        out = []
        for i in range(len(text_side)):
            bump = 0.0 if contexts is None else float(contexts[i].get("user_bad_ratio_7d") or 0)
            p = min(1.0, float(text_side.static[i][0]) / 100 + bump)
            out.append(Score(p, Severity.SAFE, features={"length": float(text_side.static[i][0])}))
        return out


def test_repeats_are_computed_once_and_scored_each() -> None:
    model = CountingModel()
    cache = TextSideCache(model, max_entries=100)
    texts = ["KEKW", "KEKW", "gg", "KEKW  ", "gg"]
    scores, computed = cache.score(texts, None)
    assert model.computed == ["KEKW", "gg"]  # "KEKW  " is the same line, whitespace trimmed
    assert set(computed) == {"KEKW", "gg"}
    assert len(scores) == 5
    assert cache.hits == 3 and cache.misses == 2

    scores, computed = cache.score(["gg", "KEKW"], None)
    assert model.computed == ["KEKW", "gg"]
    assert computed == {}
    assert cache.hit_rate == 5 / 7


class CaseBlindEncoder:
    """Counts texts as the int8 encoder does: a text whose lower case it saw before is reused."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.texts_reused = 0

    def embed(self, texts: Sequence[str]) -> None:
        for text in texts:
            self.texts_reused += text.lower() in self.seen
            self.seen.add(text.lower())


class EncodingModel(CountingModel):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = CaseBlindEncoder()

    def score_text_side(self, texts: Sequence[str]) -> TextSide:
        self.encoder.embed(texts)
        return super().score_text_side(texts)


def test_misses_the_encoder_served_from_its_token_ids_are_counted() -> None:
    reused = metrics.ENCODER_REUSED.labels("cache-test")
    before = reused._value.get()
    cache = TextSideCache(EncodingModel(), max_entries=100, service="cache-test")
    cache.score(["LUL", "gg"], None)
    cache.score(["lul", "Lul", "LUL", "GG"], None)
    # Case is part of the text cache's key (caps ratio is a feature): three misses, and the
    # encoder ran none of them again.
    assert (cache.hits, cache.misses) == (1, 5)
    assert reused._value.get() - before == 3


def test_context_still_applies_per_message() -> None:
    model = CountingModel()
    cache = TextSideCache(model, max_entries=100)
    contexts: list[Context] = [{"user_bad_ratio_7d": 0.0}, {"user_bad_ratio_7d": 0.5}]
    (first, second), _ = cache.score(["same line", "same line"], contexts)
    assert second.p_toxic - first.p_toxic == 0.5
    assert len(model.computed) == 1


def test_case_is_part_of_the_key() -> None:
    assert cache_key("  LOL  ok ") == "LOL ok"
    assert cache_key("LOL") != cache_key("lol")


def test_the_cache_is_bounded_lru() -> None:
    model = CountingModel()
    cache = TextSideCache(model, max_entries=2)
    cache.score(["a", "b"], None)
    cache.score(["a"], None)  # a is now the most recent
    cache.score(["c"], None)  # evicts b
    assert len(cache) == 2
    cache.score(["a", "b"], None)
    assert model.computed == ["a", "b", "c", "b"]


def test_shared_rows_are_used_instead_of_computing() -> None:
    model = CountingModel()
    cache = TextSideCache(model, max_entries=10)
    row = Row(
        {
            "embeddings": np.array([7.0, 14.0], dtype=np.float32),
            "static": np.array([7.0], dtype=np.float32),
        },
        Hits(),
    )
    assert cache.missing(["from-peer", "from-peer"]) == ["from-peer"]
    scores, computed = cache.score(["from-peer"], None, shared={"from-peer": row})
    assert model.computed == []
    assert computed == {}
    assert scores[0].features == {"length": 7.0}


def test_rows_round_trip_through_bytes() -> None:
    row = Row(
        {
            "embeddings": np.arange(384, dtype=np.float32),
            "static": np.arange(12, dtype=np.float32),
        },
        Hits(profanity=2, hard_slurs=1, words=("a", "b", "c"), reclaimed_slurs=1),
    )
    again = decode_row(encode_row(row))
    assert again.arrays.keys() == row.arrays.keys()
    for name, value in row.arrays.items():
        assert np.array_equal(again.arrays[name], value)
    assert again.hits == row.hits


def test_rows_sharing_a_header_keep_their_own_values_and_hits() -> None:
    def row(value: float, hits: Hits) -> Row:
        return Row(
            {"embeddings": np.full(4, value, np.float32), "static": np.full(2, -value, np.float32)},
            hits,
        )

    plain, cursed = Hits(), Hits(profanity=1, words=("heck",))
    blobs = [encode_row(r) for r in (row(1.0, plain), row(2.0, cursed), row(3.0, plain))]
    assert blobs[0].partition(b"\n")[0] == blobs[2].partition(b"\n")[0]
    rows = [decode_row(b) for b in blobs]
    assert [r.hits for r in rows] == [plain, cursed, plain]
    assert [float(r.arrays["embeddings"][0]) for r in rows] == [1.0, 2.0, 3.0]
    assert [r.arrays["static"].tolist() for r in rows] == [[-1.0, -1.0], [-2.0, -2.0], [-3.0, -3.0]]
    rows[0].arrays["embeddings"][0] = 9.0  # a decoded row is its own memory
    assert decode_row(blobs[0]).arrays["embeddings"][0] == 1.0
    # A row cut short (a write torn by an outage, another format) is refused, not misread.
    with pytest.raises(ValueError, match="wrong size"):
        decode_row(blobs[1][:-4])
