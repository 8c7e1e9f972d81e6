"""The booster's trees in numpy (toxicity.forest) score exactly as XGBoost does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from core.settings import ModelSettings
from toxicity.artifacts import default_model_dir, load_booster_bytes
from toxicity.forest import Forest
from toxicity.hybrid import HybridScorer


def rows(n: int, n_features: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 2.0, (n, n_features)).astype(np.float32)
    x[rng.random(x.shape) < 0.25] = np.nan
    x[:, 0] = np.round(x[:, 0])  # values on the split points as well
    return x


def trained(params: dict[str, Any], rounds: int = 30, n_features: int = 12) -> xgb.Booster:
    rng = np.random.default_rng(0)
    x = rows(600, n_features, seed=0)
    signal = np.nan_to_num(x[:, 0]) + np.isnan(x[:, 1]) - np.nan_to_num(x[:, 2]) ** 2 / 4
    y = (signal + rng.normal(0, 0.5, len(x)) > 0).astype(np.float32)
    return xgb.train({"nthread": 1, "seed": 0, **params}, xgb.DMatrix(x, label=y), rounds)


@pytest.mark.parametrize("depth", [1, 3, 6, 8])
def test_probabilities_are_the_boosters_bit_for_bit(depth: int) -> None:
    booster = trained({"objective": "binary:logistic", "max_depth": depth, "base_score": 0.3})
    forest = Forest.from_booster(booster)
    assert forest is not None
    for n in (1, 2, 5, 16, 300):
        x = rows(n, 12, seed=n)
        assert np.array_equal(forest.predict(x), booster.inplace_predict(x))


def test_trees_of_uneven_depth_and_a_single_leaf() -> None:
    # min_child_weight this high leaves most trees shallow or a single leaf.
    booster = trained(
        {"objective": "binary:logistic", "max_depth": 5, "min_child_weight": 60, "eta": 0.8}
    )
    forest = Forest.from_booster(booster)
    assert forest is not None
    x = rows(500, 12, seed=7)
    assert np.array_equal(forest.predict(x), booster.inplace_predict(x))


def test_the_shipped_model() -> None:
    booster = xgb.Booster()
    booster.load_model(bytearray(load_booster_bytes(default_model_dir())))
    forest = Forest.from_booster(booster)
    assert forest is not None and forest.trees == booster.num_boosted_rounds()
    x = rows(400, booster.num_features(), seed=3)
    x[:200] = np.abs(x[:200])
    for n in (1, 2, 16):
        assert np.array_equal(forest.predict(x[:n]), booster.inplace_predict(x[:n]))
    assert np.array_equal(forest.predict(x), booster.inplace_predict(x))


@pytest.mark.parametrize(
    "params",
    [
        {"objective": "multi:softprob", "num_class": 3},
        {"objective": "binary:logistic", "booster": "gblinear"},
        {"objective": "reg:squarederror"},
        {"objective": "binary:logistic", "max_depth": 14, "min_child_weight": 0, "lambda": 0},
    ],
    ids=["multi-class", "linear", "regression", "too-deep"],
)
def test_a_model_it_cannot_reproduce_stays_with_xgboost(params: dict[str, Any]) -> None:
    booster = trained(params, rounds=4)
    assert Forest.from_booster(booster) is None


def test_the_scorer_gives_small_and_large_batches_the_same_scores(
    model_factory: Callable[..., Path],
) -> None:
    settings = ModelSettings(kind="hybrid", quantize="none", batch_size=8)
    scorer = HybridScorer.load(model_factory(), settings)
    assert scorer._forest is not None
    texts = [f"line {i} {'fuck ' * (i % 3)}you" for i in range(40)]
    together = [s.p_toxic for s in scorer.score(texts)]  # XGBoost (more than 16 rows)
    alone = [scorer.score([t])[0].p_toxic for t in texts]  # the forest, one row each
    assert together == alone
    assert len(set(together)) > 1
