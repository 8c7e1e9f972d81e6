"""LIME explanations of the shipped hybrid model: the words that matter, determinism, the
text-side cache, short and oversized lines, and the reasons a verdict carries besides words."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pytest

from core.settings import ModelSettings
from schemas.events import Platform, Severity, Verdict
from toxicity.explanation import MAX_TAIL_CHARS, Explainer, split_words
from toxicity.hybrid import HybridScorer
from toxicity.loading import load_scorer

# Small: the tests ask what LIME finds, not how precisely; 100 samples take ~0.1 s a line.
SAMPLES = 100
SCORED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def scorer() -> HybridScorer:
    model = load_scorer(ModelSettings())
    assert isinstance(model, HybridScorer)
    return model


@pytest.fixture
def explainer(scorer: HybridScorer) -> Explainer:
    return Explainer(scorer, samples=SAMPLES)


def test_a_threat_is_explained_by_its_harmful_words(explainer: Explainer) -> None:
    explained = explainer.explain("i hope you die in a fire tonight")
    assert explained.severity is Severity.HIGH
    word, weight = explained.weights[0]
    assert word == "die"
    assert weight > 0.15
    assert explained.fit is not None and explained.fit > 0.5
    # "kill you": the two words the threat is made of are the two that push it up most.
    threat = explainer.explain("i will kill you tonight")
    top = sorted(threat.weights, key=lambda item: -item[1])[:2]
    assert {w for w, _ in top} == {"kill", "you"}
    assert all(v > 0.15 for _, v in top)


def test_a_benign_gaming_line_has_no_word_pushing_it_up(explainer: Explainer) -> None:
    for line in ("nice clutch in the final round", "gg wp that was a great round"):
        explained = explainer.explain(line)
        assert explained.severity is Severity.SAFE
        assert len(explained.weights) == len(set(line.split()))
        assert max(v for _, v in explained.weights) < 0.1, explained.weights


def test_the_same_seed_gives_the_same_explanation(scorer: HybridScorer) -> None:
    line = "you are trash kys"
    first = Explainer(scorer, samples=SAMPLES, seed=7).explain(line)
    again = Explainer(scorer, samples=SAMPLES, seed=7).explain(line)
    assert first.weights == again.weights
    assert first.intercept == again.intercept
    assert first.fit == again.fit


def test_repeated_perturbations_cost_no_encoder_time(
    scorer: HybridScorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    embed = scorer.encoder.embed

    def counting(texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        calls.append(len(texts))
        return embed(texts, batch_size=batch_size)

    monkeypatch.setattr(scorer.encoder, "embed", counting)
    explainer = Explainer(scorer, samples=200)
    line = "get out of my stream you clown"  # 7 words: at most 127 distinct subsets
    first = explainer.explain(line)
    # The message itself, then LIME's 200 samples in one batch of the distinct misses.
    assert len(calls) == 2
    assert calls[0] == 1
    assert calls[1] < 2**7
    assert first.samples == 200
    assert first.cache_hits == 200 - calls[1]
    calls.clear()
    second = explainer.explain(line)
    assert calls == []  # every perturbed text is in the cache
    assert second.cache_hits == second.samples == 200
    assert second.weights == first.weights
    assert explainer.stats.hit_rate > 0.5


@pytest.mark.parametrize("line", ["KEKW", "go die", "nice play bro"])
def test_short_lines_get_an_explanation(explainer: Explainer, line: str) -> None:
    explained = explainer.explain(line)
    assert sorted(w for w, _ in explained.weights) == sorted(set(line.split()))
    assert explained.samples == SAMPLES
    assert explained.fit is not None and explained.intercept is not None
    if line == "go die":
        # "die" carries the harm (alone it scores nearly as high as the line); the explanation
        # puts it first and by far the strongest, whatever "go" adds (with the shipped model:
        # 0.75 against 0.17).
        weights = dict(explained.weights)
        assert weights["die"] > 0.2
        assert weights["die"] > 3 * abs(weights["go"])


def test_empty_text_has_no_words_and_does_not_fail(explainer: Explainer) -> None:
    explained = explainer.explain("   ")
    assert explained.weights == []
    assert explained.fit is None
    assert explained.samples == 0


def test_a_40000_character_message_explains_only_its_first_words(scorer: HybridScorer) -> None:
    text = " ".join(f"w{i}" for i in range(8000))[:40_000]
    explainer = Explainer(scorer, samples=SAMPLES, max_words=16)
    started = time.monotonic()
    explained = explainer.explain(text)
    assert time.monotonic() - started < 5
    assert explained.truncated
    assert explained.words == 16
    assert [w for w, _ in sorted(explained.weights)] == sorted(f"w{i}" for i in range(16))
    # The next MAX_TAIL_CHARS were held fixed; the score explained is that part's, and it says so.
    part = text[: len(split_words(text, 16)[0]) + MAX_TAIL_CHARS]
    assert explained.p_toxic == pytest.approx(scorer.score([part])[0].p_toxic)
    assert f"first {len(part)} characters" in explained.reasons["truncated"]
    head, tail = split_words("a  b c", 2)
    assert (head, tail) == ("a  b", " c")


def test_a_verdict_is_explained_with_its_context_and_its_non_text_reasons(
    scorer: HybridScorer, explainer: Explainer
) -> None:
    slur = sorted(scorer.lexicon.hard_slurs)[0]
    text = f"buy followers now {slur}"
    context = {"user_bad_ratio_7d": 0.6, "violation_count_7d": 3.0, "is_new_to_channel": 1.0}
    (score,) = scorer.score([text], [context])
    verdict = Verdict(
        message_id="m1",
        platform=Platform.DISCORD,
        community="g1",
        channel="c1",
        user="u1",
        text=text,
        p_toxic=score.p_toxic,
        severity=score.severity,
        flagged=True,
        labels=[*score.labels, "spam"],
        reasons={"spam": "the same line 5 times in 30 s"},
        model_version="some-older-model",
        features={**score.features, "hours_since_last_msg": None},
        sent_at=SCORED,
        received_at=SCORED,
        scored_at=SCORED,
    )
    explained = explainer.explain_verdict(verdict)
    # The score explained is the one the verdict gave (context held, hard-slur rule applied).
    assert explained.p_toxic == pytest.approx(score.p_toxic)
    assert explained.severity is Severity.HIGH
    assert explained.weights[0][0] == slur and explained.weights[0][1] > 0
    reasons = explained.reasons
    assert reasons["spam"] == "the same line 5 times in 30 s"
    assert "hard-slur list" in reasons["hard_slur"]
    assert reasons["user_bad_ratio_7d"].startswith(
        "60% of this user's messages in the last 7 days were flagged: P(toxic)"
    )
    assert reasons["violation_count_7d"].startswith("3 violation(s)")
    assert "first messages in this channel" in reasons["is_new_to_channel"]
    assert "hours_since_last_msg" not in reasons  # missing, so no reason
    assert "some-older-model" in reasons["model_version"]
    event = explained.event("m1", verdict=verdict)
    assert event.verdict_scored_at == SCORED
    assert event.platform is Platform.DISCORD and event.community == "g1"
    assert event.severity is Severity.HIGH
    assert event.samples == SAMPLES
    assert set(event.reasons) == set(reasons)
