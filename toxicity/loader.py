"""Builds the configured ``TextScorer`` from ``ModelSettings``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from toxicity.base import TextScorer

if TYPE_CHECKING:
    from core.settings import ModelSettings


def load_scorer(model: ModelSettings, *, cache_dir: Path | None = None) -> TextScorer:
    """The model the settings name, loaded once; ``kind="hybrid"`` defaults to the shipped one.

    ``cache_dir`` is where the int8 encoder is built on first use (``settings.stack.cache_dir``;
    ``~/.cache/chatwarden`` when not given).
    """
    if model.kind == "hybrid":
        from toxicity.artifacts import default_model_dir
        from toxicity.hybrid import HybridScorer

        return HybridScorer.load(model.path or default_model_dir(), model, cache_dir=cache_dir)
    raise ValueError(f"unknown model kind {model.kind!r}")
