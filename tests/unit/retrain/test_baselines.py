"""The numpy BiLSTM reproduces the Keras model's outputs (skipped when not fetched)."""

from __future__ import annotations

import numpy as np
import pytest

from core.settings import load_settings
from retrain.sources import is_fetched

CACHE = load_settings().stack.cache_dir

pytestmark = pytest.mark.skipif(
    not is_fetched(CACHE, ("bilstm", "apc")),
    reason="comparison models not fetched (run `warden data fetch`)",
)


def test_bilstm_matches_the_keras_reference() -> None:
    from retrain.baselines import JigsawBiLSTM

    model = JigsawBiLSTM(CACHE)
    # Reference values from toxic-comment-classifier 0.3.0 with TensorFlow 2.21 (classify()).
    got = model.predict_all(["You are so dumb and stupid!", "have a nice day friend"])
    expected = np.array(
        [
            [0.9889, 0.0726, 0.6204, 0.0193, 0.8664, 0.0407],
            [0.0204, 0.0002, 0.0058, 0.0001, 0.0069, 0.0009],
        ]
    )
    assert np.allclose(got, expected, atol=2e-4)


def test_alt_profanity_check_scores() -> None:
    from retrain.baselines import AltProfanityCheck

    p = AltProfanityCheck(CACHE).predict(["you fucking idiot", "the article needs sources"])
    assert p[0] > 0.9 > 0.1 > p[1]
