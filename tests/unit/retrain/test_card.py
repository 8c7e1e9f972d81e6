"""The model card says which int8 encoder file its evaluation was scored with."""

from __future__ import annotations

from typing import Any

from retrain.card import model_card
from toxicity.artifacts import ModelMeta
from toxicity.base import CONTEXT_FEATURES, Thresholds
from toxicity.calibration import Calibrator
from toxicity.features import STATIC_FEATURES

OWN = {
    "int8_sha256": "a" * 64,
    "recipe": "ort-dynamic-qint8-per-channel-7bit-v2",
    "toolchain": {"torch": "2.15.0", "onnxruntime": "1.32.0"},
}


def meta_with(evaluation_build: dict[str, Any] | None) -> ModelMeta:
    evaluation: dict[str, Any] = {"rows": [], "margins": [], "n": {}}
    if evaluation_build is not None:
        evaluation["encoder_build"] = evaluation_build
    return ModelMeta(
        version="hybrid-minilm-xgb-test",
        encoder_id="sentence-transformers/all-MiniLM-L6-v2",
        encoder_sha256="0" * 64,
        encoder_backend="int8",
        max_length=64,
        embedding_dim=4,
        static_features=list(STATIC_FEATURES),
        context_features=list(CONTEXT_FEATURES),
        thresholds=Thresholds(0.3, 0.5, 0.7),
        calibrator=Calibrator(method="isotonic", x=(0.0, 1.0), y=(0.0, 1.0)),
        decision_threshold=0.5,
        encoder_build=OWN,
        metrics={"evaluation": evaluation},
    )


def test_the_card_names_the_int8_file_the_model_learnt_from() -> None:
    card = model_card(meta_with(None))
    assert "The int8 file (recipe `ort-dynamic-qint8-per-channel-7bit-v2`" in card
    assert "built with torch 2.15.0, onnxruntime 1.32.0" in card
    assert "Scored with" not in card  # an evaluation from before the file was recorded


def test_the_card_says_whether_its_evaluation_used_the_models_own_file() -> None:
    assert "Scored with the int8 encoder file the model learnt from (`aaaaaaaaaaaaaaaa...`)" in (
        model_card(meta_with(OWN))
    )
    other = {**OWN, "int8_sha256": "b" * 64, "toolchain": {"torch": "2.9.0"}}
    card = model_card(meta_with(other))
    assert (
        "**Scored with another int8 encoder file** (`bbbbbbbbbbbbbbbb...`, built with torch "
        in card
    )
    assert "2.9.0) than the one the model learnt from" in card
