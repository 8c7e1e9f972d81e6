"""Load the configured toxicity model once per worker: the one place every service asks.

Here, in the model package, so that a second service (the ingest webhook's synchronous
``/v1/moderate``) loads the same model as the scorer without importing it. ``load_model`` is what
services call; ``load_scorer`` builds the trained (hybrid) model alone, for tools and tests that
pass their own cache directory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from core.settings import ModelSettings
from toxicity.base import TextScorer, Thresholds

if TYPE_CHECKING:
    from core.settings import Settings
    from toxicity.hybrid import HybridScorer

logger = logging.getLogger(__name__)


def thresholds_override(model: ModelSettings, base: Thresholds | None = None) -> Thresholds:
    """The model's thresholds with any set in settings taking precedence."""
    base = base or Thresholds()
    return Thresholds(
        low=model.low_threshold if model.low_threshold is not None else base.low,
        medium=model.medium_threshold if model.medium_threshold is not None else base.medium,
        high=model.high_threshold if model.high_threshold is not None else base.high,
    )


def load_model(model: ModelSettings, *, cache_dir: Path | None = None) -> TextScorer:
    """The model ``settings.model`` names: the lexical placeholder or the hybrid model.

    ``cache_dir``: see :func:`load_scorer` (services pass ``core.paths.model_cache_dir``).
    """
    if model.kind == "lexical":
        from toxicity.lexical import LexicalScorer

        scorer: TextScorer = LexicalScorer(thresholds_override(model))
    else:
        scorer = load_scorer(model, cache_dir=cache_dir)
    logger.info("model %s loaded", scorer.version)
    return scorer


def load_scorer(model: ModelSettings, *, cache_dir: Path | None = None) -> TextScorer:
    """The trained model the settings name; ``kind="hybrid"`` defaults to the shipped one.

    ``cache_dir`` is where the int8 encoder is built on first use: this argument, else
    ``model.cache_dir`` (WARDEN_MODEL__CACHE_DIR), else ``~/.cache/chatwarden``.
    """
    cache_dir = cache_dir or model.cache_dir
    if model.kind == "hybrid":
        from core.settings import env_name
        from toxicity.artifacts import ModelFormatError, default_model_dir
        from toxicity.hybrid import HybridScorer

        try:
            return HybridScorer.load(model.path or default_model_dir(), model, cache_dir=cache_dir)
        except ModelFormatError as exc:
            if model.path is None:
                raise
            # Name the variable that chose the directory (a ConfigError: one line, exit 2).
            raise ModelFormatError(f"{env_name(('model', 'path'))}: {exc}") from exc
    raise ValueError(f"unknown model kind {model.kind!r}")


def load_for_command(model_dir: Path | None, settings: Settings) -> HybridScorer:
    """The hybrid model for an offline command (``warden score``, ``warden explain``): the
    directory given, else ``WARDEN_MODEL__PATH``, else the shipped one; a wrong directory fails
    before torch loads (seconds), naming where it came from; torch uses at most two threads
    (a command beside running services)."""
    import torch

    from core.paths import model_cache_dir
    from toxicity.artifacts import default_model_dir, load_meta, naming_model_source
    from toxicity.hybrid import HybridScorer

    folder = model_dir or settings.model.path or default_model_dir()
    with naming_model_source(model_dir, settings.model.path):
        load_meta(folder)
        torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
        return HybridScorer.load(folder, settings.model, cache_dir=model_cache_dir(settings))
