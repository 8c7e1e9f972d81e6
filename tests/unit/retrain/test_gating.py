"""Promotion gating: a paired bootstrap on the per-line results kept with each model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from retrain.gating import compare, load_reserved, refusal, save_reserved, texts_sha

TEXTS = [f"line {i}" for i in range(400)]


def model(folder: Path, p: np.ndarray, flagged: np.ndarray, *, texts: list[str] = TEXTS) -> Path:
    rng = np.random.default_rng(1)
    y = (np.arange(len(texts)) % 2).astype(np.int8)
    harmful = y.astype(bool)
    folder.mkdir()
    (folder / "model.json").write_text(json.dumps({"version": f"v-{folder.name}"}))
    save_reserved(
        folder,
        {
            "hatexplain_test": {"sha": np.array(texts_sha(texts)), "p": p, "y": y},
            "chat_test": {
                "sha": np.array(texts_sha(texts)),
                "p": p + rng.normal(0, 1e-3, len(p)),
                "flagged": flagged,
                "harmful": harmful,
            },
        },
    )
    return folder


def good_scores(noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(len(TEXTS)) % 2
    p = np.clip(0.3 + 0.4 * y + rng.normal(0, noise, len(y)), 0, 1)
    return p, p >= 0.5


def test_results_round_trip(tmp_path: Path) -> None:
    p, flagged = good_scores(0.2, 0)
    folder = model(tmp_path / "a", p, flagged)
    sets = load_reserved(folder)
    assert set(sets) == {"hatexplain_test", "chat_test"}
    assert np.allclose(sets["hatexplain_test"]["p"], p)
    assert str(sets["chat_test"]["sha"]) == texts_sha(TEXTS)
    assert load_reserved(tmp_path) == {}
    # Results measured on another model (a copied directory, an edited model.json) are none.
    (folder / "model.json").write_text(json.dumps({"version": "v-changed"}))
    assert load_reserved(folder) == {}


def test_a_clearly_worse_candidate_is_refused_on_every_metric_it_lost(tmp_path: Path) -> None:
    active = model(tmp_path / "active", *good_scores(0.15, 0))
    candidate = model(tmp_path / "worse", *good_scores(0.6, 0))
    checks = compare(candidate, active)
    worse = {c.name for c in checks if c.worse}
    assert "HateXplain test ROC-AUC" in worse
    assert "chat test: benign lines flagged" in worse
    why = refusal(checks)
    assert why is not None and "WORSE" in why and "95% interval" in why


def test_the_same_model_and_a_better_one_pass(tmp_path: Path) -> None:
    active = model(tmp_path / "active", *good_scores(0.3, 0))
    same = model(tmp_path / "same", *good_scores(0.3, 0))
    better = model(tmp_path / "better", *good_scores(0.1, 0))
    for candidate in (same, better):
        checks = compare(candidate, active)
        assert checks and refusal(checks) is None
    same_auc = next(c for c in compare(same, active) if c.name.startswith("HateXplain"))
    assert same_auc.low == same_auc.high == 0.0


def test_noise_is_not_a_loss(tmp_path: Path) -> None:
    # A re-draw of the same quality: the point estimate moves, the interval straddles zero.
    active = model(tmp_path / "active", *good_scores(0.3, 0))
    redraw = model(tmp_path / "redraw", *good_scores(0.3, 7))
    checks = compare(redraw, active)
    assert refusal(checks) is None
    auc = next(c for c in checks if c.name.startswith("HateXplain"))
    assert auc.low is not None and auc.high is not None and auc.low < 0 < auc.high


def test_missing_or_different_results_refuse(tmp_path: Path) -> None:
    active = model(tmp_path / "active", *good_scores(0.3, 0))
    unmeasured = tmp_path / "unmeasured"
    unmeasured.mkdir()
    (unmeasured / "model.json").write_text(json.dumps({"version": "v-unmeasured"}))
    why = refusal(compare(unmeasured, active))
    assert why is not None and "warden evaluate --model" in why
    other = model(tmp_path / "other", *good_scores(0.3, 0), texts=[t + "!" for t in TEXTS])
    why = refusal(compare(other, active))
    assert why is not None and "different" in why
    # Nothing to compare against (the active model was never evaluated): nothing refuses.
    assert compare(active, unmeasured) == []
