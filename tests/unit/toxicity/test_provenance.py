"""What a verdict records of how the model scored, and the model settings that score the same
way again."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from core.settings import ModelSettings
from schemas.events import Severity
from toxicity.base import Thresholds
from toxicity.provenance import replay_settings, scoring_of


def hybrid_like(backend: str, in_force: Thresholds) -> SimpleNamespace:
    """What scoring_of reads of a loaded HybridScorer."""
    return SimpleNamespace(
        version="hybrid-x",
        thresholds=in_force,
        meta=SimpleNamespace(thresholds=Thresholds(0.3, 0.5, 0.7)),
        encoder=SimpleNamespace(backend=backend, weights_hash="ab" * 32),
    )


def test_a_hybrid_model_records_its_back_end_and_overridden_thresholds() -> None:
    model = hybrid_like("fp16", Thresholds(0.3, 0.55, 0.7))
    scoring = scoring_of(model, Severity.HIGH)
    assert (scoring.backend, scoring.device) == ("fp16", "cuda")
    assert scoring.encoder_sha256 == "ab" * 32
    assert (scoring.low_threshold, scoring.medium_threshold) == (0.3, 0.55)
    assert scoring.thresholds_overridden == ["medium"]
    assert scoring.flag_severity is Severity.HIGH


@pytest.mark.parametrize(
    ("backend", "quantize", "device"),
    [("int8", "int8", "cpu"), ("fp32", "none", "cpu"), ("fp16", "int8", "cuda")],
)
def test_the_stored_scoring_becomes_the_settings_that_load_the_model_alike(
    backend: str, quantize: str, device: str
) -> None:
    scoring = scoring_of(hybrid_like(backend, Thresholds(0.2, 0.6, 0.8)), Severity.MEDIUM)
    here = ModelSettings(quantize="int8", device="cpu", high_threshold=0.99, batch_size=8)
    again = replay_settings(scoring, here)
    assert (again.quantize, again.device) == (quantize, device)
    assert (again.low_threshold, again.medium_threshold, again.high_threshold) == (0.2, 0.6, 0.8)
    assert again.batch_size == 8  # what does not change a score stays this machine's
