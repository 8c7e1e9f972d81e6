"""How a model scores, as a verdict records it (``schemas.events.Scoring``), and back.

``model_version`` names the model directory; what else decides a score is how the scorer loaded
it: the encoder's back end (int8 on the CPU, fp32, fp16 on CUDA: each gives slightly different
embeddings), the severity thresholds in force (the model's own, or
``WARDEN_MODEL__*_THRESHOLD`` instead) and the flag severity. :func:`scoring_of` writes that
down once per loaded model; :func:`replay_settings` turns it back into the model settings that
load the model the same way (``warden replay-decision``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from schemas.events import Scoring, Severity
from toxicity.base import TextScorer, Thresholds

if TYPE_CHECKING:
    from core.settings import ModelSettings

NO_ENCODER = "none"
# The encoder back ends (``toxicity.encoder.Backend``) and where each runs.
DEVICES = {"int8": "cpu", "fp32": "cpu", "fp16": "cuda", NO_ENCODER: "cpu"}
LEVELS = ("low", "medium", "high")


def thresholds_in_force(model: TextScorer) -> tuple[Thresholds, Thresholds]:
    """(in force, the model's own) thresholds of a loaded model; the defaults for a model that
    keeps none (the lexical placeholder's own are the defaults)."""
    found = getattr(model, "thresholds", None)
    meta = getattr(model, "meta", None)
    own = getattr(meta, "thresholds", None)
    in_force = found if isinstance(found, Thresholds) else Thresholds()
    return in_force, own if isinstance(own, Thresholds) else Thresholds()


def scoring_of(model: TextScorer, flag_severity: Severity) -> Scoring:
    """What a verdict of ``model`` records of how it was scored."""
    encoder: Any = getattr(model, "encoder", None)
    backend = str(getattr(encoder, "backend", NO_ENCODER))
    weights = getattr(encoder, "weights_hash", None)
    in_force, own = thresholds_in_force(model)
    return Scoring(
        backend=backend,
        device=DEVICES.get(backend, "cpu"),
        encoder_sha256=weights if isinstance(weights, str) else None,
        low_threshold=in_force.low,
        medium_threshold=in_force.medium,
        high_threshold=in_force.high,
        thresholds_overridden=[
            level for level in LEVELS if getattr(in_force, level) != getattr(own, level)
        ],
        flag_severity=flag_severity,
    )


def stored_thresholds(scoring: Scoring) -> Thresholds:
    return Thresholds(scoring.low_threshold, scoring.medium_threshold, scoring.high_threshold)


def replay_settings(scoring: Scoring, base: ModelSettings) -> ModelSettings:
    """``base`` with the back end and thresholds a verdict was scored with: int8 loads the int8
    encoder on the CPU, fp32 the torch one, fp16 needs CUDA; the stored thresholds replace the
    model's own and any set in ``base``."""
    update: dict[str, Any] = {
        "low_threshold": scoring.low_threshold,
        "medium_threshold": scoring.medium_threshold,
        "high_threshold": scoring.high_threshold,
    }
    if scoring.backend == "int8":
        update.update(quantize="int8", device="cpu")
    elif scoring.backend == "fp32":
        update.update(quantize="none", device="cpu")
    elif scoring.backend == "fp16":
        update.update(device="cuda")
    return base.model_copy(update=update)
