"""Load the configured toxicity model once per worker: the one place every service asks.

Moved here from ``scorers/model.py`` so that a second service (the ingest webhook's synchronous
``/v1/moderate``) can load the same model without importing the scorer.
"""

from __future__ import annotations

import logging

from core.settings import ModelSettings
from toxicity.base import TextScorer, Thresholds

logger = logging.getLogger(__name__)


def thresholds_override(model: ModelSettings, base: Thresholds | None = None) -> Thresholds:
    """The model's thresholds with any set in settings taking precedence."""
    base = base or Thresholds()
    return Thresholds(
        low=model.low_threshold if model.low_threshold is not None else base.low,
        medium=model.medium_threshold if model.medium_threshold is not None else base.medium,
        high=model.high_threshold if model.high_threshold is not None else base.high,
    )


def load_model(model: ModelSettings) -> TextScorer:
    """The model ``settings.model`` names: the lexical placeholder or the hybrid model."""
    if model.kind == "lexical":
        from toxicity.lexical import LexicalScorer

        scorer: TextScorer = LexicalScorer(thresholds_override(model))
    else:
        from toxicity.loader import load_scorer

        scorer = load_scorer(model)
    logger.info("model %s loaded", scorer.version)
    return scorer
