"""The hybrid scorer: save/load round trip, context handling, hard slurs, labels."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from core.settings import ModelSettings
from schemas.events import Severity
from toxicity.artifacts import BOOSTER_FILE, METADATA_FILE, ModelFormatError, load_meta
from toxicity.base import CONTEXT_FEATURES, TextScorer
from toxicity.features import STATIC_FEATURES
from toxicity.hybrid import HybridScorer, hard_slur_probability
from toxicity.loading import load_scorer

FP32 = ModelSettings(kind="hybrid", quantize="none", batch_size=8)


@pytest.fixture(scope="module")
def model_dir(model_factory: Callable[..., Path]) -> Path:
    return model_factory()


@pytest.fixture(scope="module")
def scorer(model_dir: Path) -> HybridScorer:
    return HybridScorer.load(model_dir, FP32)


def test_round_trip_keeps_metadata_and_predictions(model_dir: Path, scorer: HybridScorer) -> None:
    meta = load_meta(model_dir)
    assert meta.version == scorer.version == model_dir.name
    assert meta.thresholds == scorer.thresholds
    again = HybridScorer.load(model_dir, FP32)
    texts = ["hello there", "what the fuck", "f.u.c.k you", ""]
    first = [s.p_toxic for s in scorer.score(texts)]
    second = [s.p_toxic for s in again.score(texts)]
    assert first == second


def test_scorer_implements_the_protocol(scorer: HybridScorer) -> None:
    assert isinstance(scorer.version, str)
    _: TextScorer = scorer


def test_profanity_drives_this_model_and_gets_its_label(scorer: HybridScorer) -> None:
    clean, rude = scorer.score(["have a nice day", "shit happens, f.u.c.k"])
    assert rude.p_toxic > clean.p_toxic
    assert rude.labels == ("profanity",)
    assert clean.labels == ()
    assert rude.features["profanity_count"] == 2


def test_missing_context_is_none_and_matches_text_only(scorer: HybridScorer) -> None:
    texts = ["you idiot", "good game"]
    text_only = scorer.score(texts)
    empty = scorer.score(texts, [{}, {name: None for name in CONTEXT_FEATURES}])
    assert [s.p_toxic for s in text_only] == [s.p_toxic for s in empty]
    assert all(s.features[name] is None for s in text_only for name in CONTEXT_FEATURES)


def test_a_model_from_before_a_feature_was_added_reads_its_own_features(
    model_factory: Callable[..., Path],
) -> None:
    older = tuple(name for name in STATIC_FEATURES if name != "private_detail_count")
    scorer = HybridScorer.load(model_factory(name="older", static=older), FP32)
    clean, rude = scorer.score(["have a nice day", "shit happens, f.u.c.k"])
    assert rude.p_toxic > clean.p_toxic
    assert list(rude.features)[: len(older)] == list(older)
    assert "private_detail_count" not in rude.features

    unknown = model_factory(name="newer", static=(*STATIC_FEATURES, "feature_from_the_future"))
    with pytest.raises(ValueError, match="feature_from_the_future"):
        HybridScorer.load(unknown, FP32)


def test_context_values_reach_the_booster(model_factory: Callable[..., Path]) -> None:
    scorer = HybridScorer.load(model_factory(context_weight=1.0, name="ctx"), FP32)
    name = CONTEXT_FEATURES[0]
    low, high = scorer.score(["hello", "hello"], [{name: 0.0}, {name: 1.0}])
    assert high.p_toxic > low.p_toxic
    assert high.features[name] == 1.0


def test_hard_slur_is_always_high(scorer: HybridScorer) -> None:
    slur = sorted(scorer.lexicon.hard_slurs)[0]
    (result,) = scorer.score([f"hello {slur[0]}.{'.'.join(slur[1:])}"])
    assert result.severity is Severity.HIGH
    assert "hard_slur" in result.labels


def test_a_reclaimed_slur_is_left_to_the_model_and_labelled_profanity(
    scorer: HybridScorer,
) -> None:
    word = sorted(scorer.lexicon.reclaimed_slurs)[0]
    side = scorer.score_text_side([f"wassup {word}"])
    (result,) = scorer.combine(side)
    model_alone = float(scorer.meta.calibrator(scorer.raw_probability(side, None))[0])
    assert result.p_toxic == pytest.approx(model_alone)
    assert result.features["hard_slur_count"] == 1.0  # the model still sees the word
    assert "hard_slur" not in result.labels
    assert "profanity" in result.labels


def test_text_side_is_reusable(scorer: HybridScorer) -> None:
    side = scorer.score_text_side(["one", "two"])
    assert side.embeddings.shape == (2, 384)
    assert np.allclose(np.linalg.norm(side.embeddings, axis=1), 1.0, atol=1e-4)
    assert [s.p_toxic for s in scorer.combine(side)] == [
        s.p_toxic for s in scorer.score(["one", "two"])
    ]


def test_context_count_must_match(scorer: HybridScorer) -> None:
    with pytest.raises(ValueError, match="contexts"):
        scorer.score(["a", "b"], [{}])


def test_settings_thresholds_override_stored_ones(model_dir: Path) -> None:
    scorer = HybridScorer.load(model_dir, FP32.model_copy(update={"high_threshold": 0.99}))
    assert scorer.thresholds.high == 0.99


def test_loader_builds_the_hybrid_scorer(model_dir: Path) -> None:
    scorer = load_scorer(FP32.model_copy(update={"path": model_dir}))
    assert scorer.version == model_dir.name


def test_damaged_model_dir_is_a_clear_error(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match=r"model\.json"):
        load_meta(tmp_path)
    (tmp_path / METADATA_FILE).write_text(json.dumps({"format": 99, "kind": "hybrid"}))
    (tmp_path / BOOSTER_FILE).write_bytes((model_dir / BOOSTER_FILE).read_bytes())
    with pytest.raises(ModelFormatError, match="format"):
        HybridScorer.load(tmp_path, FP32)


def test_hard_slur_probability_is_high_and_keeps_order() -> None:
    lifted = [hard_slur_probability(p, 0.7) for p in (0.0, 0.2, 0.6, 0.8)]
    assert all(p >= 0.7 for p in lifted)
    assert lifted == sorted(lifted)
    assert lifted[3] == 0.8  # already HIGH: unchanged
    assert lifted[2] < 0.701  # lifted just over the line, not above other HIGH messages


def test_emote_and_reaction_only_lines_are_safe_unless_they_hold_a_hard_slur(
    scorer: HybridScorer,
) -> None:
    # "lmao" and "wtf" are listed words, which this model reads as toxic; alone they are
    # reactions, and so is an emote wall.
    reaction, wall, sentence = scorer.score(["LMAO wtf", "KEKW KEKW LUL", "lmao you wtf idiot"])
    assert reaction.severity is Severity.SAFE and wall.severity is Severity.SAFE
    assert reaction.p_toxic <= scorer.thresholds.low / 2
    assert sentence.p_toxic > reaction.p_toxic


def test_harm_labels_and_scores_come_from_label_heads(model_dir: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "labelled"
    shutil.copytree(model_dir, folder)
    meta = json.loads((folder / "model.json").read_text())
    # A head that says "threat" for everything: its label appears once the line is graded.
    meta["label_heads"] = [
        {"name": "label_threat", "kind": "embedding", "coef": [0.0] * 384, "intercept": 5.0}
    ]
    (folder / "model.json").write_text(json.dumps(meta))
    labelled = HybridScorer.load(folder)
    calm, rude = labelled.score(["nice weather", "fuck fuck you shit"])
    assert calm.label_scores == rude.label_scores == {"threat": pytest.approx(0.9933, abs=1e-4)}
    assert rude.severity is not Severity.SAFE and "threat" in rude.labels
    assert calm.severity is Severity.SAFE and "threat" not in calm.labels
