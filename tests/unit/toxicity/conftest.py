"""A small synthetic model directory (random booster over the real feature layout)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from toxicity.artifacts import ModelMeta, model_version, save_model
from toxicity.base import CONTEXT_FEATURES, Thresholds
from toxicity.calibration import Calibrator
from toxicity.encoder import encoder_hash, resolve_encoder
from toxicity.features import STATIC_FEATURES

DIM = 384


@pytest.fixture(scope="session")
def model_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Writes a model whose booster depends on profanity_count and the first context feature."""

    def make(
        context_weight: float = 0.0, name: str = "m", static: tuple[str, ...] = STATIC_FEATURES
    ) -> Path:
        """``static``: the static features the model was trained on (an older model's)."""
        import xgboost as xgb

        rng = np.random.default_rng(0)
        n = 400
        n_features = DIM + len(static) + len(CONTEXT_FEATURES)
        x = rng.normal(size=(n, n_features)).astype(np.float32)
        x[:, DIM : DIM + len(static)] = 0
        profanity = rng.integers(0, 3, n)
        x[:, DIM + static.index("profanity_count")] = profanity
        context = DIM + len(static)
        x[:, context:] = np.nan
        y = (profanity > 0).astype(np.float32)
        if context_weight:
            half = n // 2
            x[:half, context] = rng.uniform(0, 1, half)
            y[:half] = (x[:half, context] > 0.5).astype(np.float32)
        booster = xgb.train(
            {"objective": "binary:logistic", "max_depth": 3, "seed": 0, "nthread": 1},
            xgb.DMatrix(x, label=y),
            num_boost_round=20,
        )
        raw = bytes(booster.save_raw(raw_format="ubj"))
        encoder_id, source = resolve_encoder(None)
        meta = ModelMeta(
            version="pending",
            encoder_id=encoder_id,
            encoder_sha256=encoder_hash(source),
            encoder_backend="fp32",
            max_length=64,
            embedding_dim=DIM,
            static_features=list(static),
            context_features=list(CONTEXT_FEATURES),
            thresholds=Thresholds(0.3, 0.5, 0.7),
            calibrator=Calibrator(method="isotonic", x=(0.0, 1.0), y=(0.0, 1.0)),
            decision_threshold=0.5,
            training={"seed": 0},
        )
        meta.version = model_version(raw, meta)
        folder = tmp_path_factory.mktemp(name) / meta.version
        save_model(folder, meta, raw, card="# card\n")
        return folder

    return make
