"""Training the hybrid model: embed, add static features, fit XGBoost, calibrate, pick thresholds.

    train  = training pool (less a 5 % held-back slice) + HateXplain train
    hx_dev = HateXplain dev: early stopping, calibration, thresholds
    pool_dev = the held-back slice: a second dev set from another domain, reported
    HateXplain test is never read here (``warden evaluate`` reports it).

Context features are all missing (NaN) in public data, so the booster never splits on them and a
message without context gets exactly the text-only answer; retraining on logged verdicts, where
they are present, learns their weights.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retrain.classification_metrics import binary_metrics, pick_thresholds
from retrain.datasets import Example, Splits, load_splits
from retrain.embeddings import EmbeddingCache, cache_folder, features_folder
from retrain.head_fitting import fit_heads
from retrain.sources import SOURCES, TRAINING_SOURCES
from toxicity.artifacts import ModelMeta, model_version, save_model
from toxicity.base import CONTEXT_FEATURES
from toxicity.calibration import (
    Calibrator,
    choose_method,
    expected_calibration_error,
    fit_calibrator,
)
from toxicity.encoder import Encoder
from toxicity.features import STATIC_FEATURES, feature_matrix
from toxicity.heads import head_features

logger = logging.getLogger(__name__)

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    # The last metric decides early stopping: ranking quality on HateXplain dev.
    "eval_metric": ["logloss", "auc"],
    "tree_method": "hist",
    "max_depth": 6,
    "eta": 0.08,
    "subsample": 0.8,
    "colsample_bytree": 0.5,
    "min_child_weight": 2.0,
    "lambda": 2.0,
    "max_bin": 128,
}


@dataclass
class TrainConfig:
    cache_dir: Path
    out: Path
    seed: int = 0
    sample: int | None = None
    encoder: str | None = None
    quantize: str = "int8"
    max_length: int = 64
    embed_batch_size: int = 32
    hatexplain_weight: float = 3.0
    num_boost_round: int = 1500
    early_stopping_rounds: int = 100
    calibration: str = "auto"
    params: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_PARAMS))
    heads: tuple[str, ...] = ("tfidf", "emb_all", "emb_hx")
    threads: int = 2
    pool_csv: Path | None = None
    hatexplain_dir: Path | None = None


@dataclass
class Part:
    """One split's texts and per-text inputs (heads and context are added later)."""

    texts: list[str]
    embeddings: np.ndarray
    static: np.ndarray
    y: np.ndarray
    is_hatexplain: np.ndarray


def build_part(
    examples: Sequence[Example],
    encoder: Encoder,
    embeddings: EmbeddingCache,
    features: EmbeddingCache,
    progress: Callable[[str], None] | None = None,
) -> Part:
    texts = [example.text for example in examples]

    def report(what: str) -> Callable[[int, int, float], None]:
        def call(done: int, total: int, seconds: float) -> None:
            if progress is not None:
                progress(f"  {what} {done}/{total} new texts in {seconds:.0f}s")

        return call

    vectors = embeddings.embed(texts, encoder, progress=report("embedded"))
    static = features.get(
        texts, lambda part: feature_matrix(part)[0], chunk=16384, progress=report("features for")
    )
    return Part(
        texts=texts,
        embeddings=vectors,
        static=static.reshape(len(texts), len(STATIC_FEATURES)),
        y=np.array([example.label for example in examples], dtype=np.float32),
        is_hatexplain=np.array([example.source != "pool" for example in examples], dtype=bool),
    )


def design_matrix(part: Part, heads: np.ndarray) -> np.ndarray:
    """[embedding, static, heads, context (all NaN)]."""
    context = np.full((len(part.texts), len(CONTEXT_FEATURES)), np.nan, dtype=np.float32)
    return np.hstack([part.embeddings, part.static, heads, context]).astype(np.float32)


def data_hashes(config: TrainConfig) -> dict[str, str]:
    """sha256 of every file the training read (the pinned ones, or the fixtures given)."""
    from retrain.sources import sha256_file

    if config.pool_csv is not None or config.hatexplain_dir is not None:
        files = [path for path in (config.pool_csv,) if path is not None]
        if config.hatexplain_dir is not None:
            files += sorted(config.hatexplain_dir.glob("hatexplain_*.csv"))
        return {path.name: sha256_file(path) for path in files}
    return {
        f"{source.name}/{inner}": digest
        for source in SOURCES
        if source.name in TRAINING_SOURCES
        for inner, digest in source.files.items()
    }


def train(config: TrainConfig, echo: Callable[[str], None] = logger.info) -> Path:
    """Train, calibrate and save a model; returns its directory (``<out>/<version>``)."""
    import torch
    import xgboost as xgb

    torch.set_num_threads(config.threads)
    started = time.monotonic()
    splits: Splits = load_splits(
        config.cache_dir,
        sample=config.sample,
        seed=config.seed,
        pool_csv=config.pool_csv,
        hatexplain_dir=config.hatexplain_dir,
    )
    echo(
        f"data: train {len(splits.train)}, hx_dev {len(splits.hx_dev)}, "
        f"pool_dev {len(splits.pool_dev)} (HateXplain test held out: {len(splits.hx_test)})"
    )
    encoder = Encoder.load(
        config.encoder,
        quantize="int8" if config.quantize == "int8" else "none",
        cache_dir=config.cache_dir,
        batch_size=config.embed_batch_size,
        max_length=config.max_length,
    )
    cache = EmbeddingCache(cache_folder(config.cache_dir, encoder))
    cached_at_start = len(cache)
    echo(f"encoder {encoder.encoder_id} ({encoder.backend}); {cached_at_start} embeddings cached")
    features = EmbeddingCache(features_folder(config.cache_dir))
    t0 = time.monotonic()
    train_p = build_part(splits.train, encoder, cache, features, progress=echo)
    hx_p = build_part(splits.hx_dev, encoder, cache, features, progress=echo)
    pool_p = build_part(splits.pool_dev, encoder, cache, features, progress=echo)
    features_s = time.monotonic() - t0
    echo(f"embeddings and static features ready in {features_s:.0f}s")

    t0 = time.monotonic()
    heads, train_heads = fit_heads(
        train_p.texts,
        train_p.embeddings,
        train_p.y,
        train_p.is_hatexplain,
        kinds=config.heads,
        seed=config.seed,
        echo=echo,
    )
    heads_s = time.monotonic() - t0
    echo(f"{len(heads)} linear heads fitted in {heads_s:.0f}s")
    dim = train_p.embeddings.shape[1]
    names = (
        [f"emb_{i}" for i in range(dim)]
        + list(STATIC_FEATURES)
        + [head.name for head in heads]
        + list(CONTEXT_FEATURES)
    )
    weight = np.where(train_p.is_hatexplain, config.hatexplain_weight, 1.0).astype(np.float32)
    params = dict(config.params)
    params.update({"seed": config.seed, "nthread": config.threads})
    dtrain = xgb.DMatrix(
        design_matrix(train_p, train_heads), label=train_p.y, weight=weight, feature_names=names
    )
    pool_x = design_matrix(pool_p, head_features(heads, pool_p.texts, pool_p.embeddings))
    hx_x = design_matrix(hx_p, head_features(heads, hx_p.texts, hx_p.embeddings))
    dpool = xgb.DMatrix(pool_x, label=pool_p.y, feature_names=names)
    dhx = xgb.DMatrix(hx_x, label=hx_p.y, feature_names=names)
    t0 = time.monotonic()
    history: dict[str, Any] = {}
    # A --sample model is for tests and smoke runs: a few dozen trees are plenty.
    small = config.sample is not None
    rounds = min(config.num_boost_round, 60) if small else config.num_boost_round
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=rounds,
        evals=[(dpool, "pool_dev"), (dhx, "hx_dev")],
        early_stopping_rounds=min(config.early_stopping_rounds, 20)
        if small
        else (config.early_stopping_rounds),
        evals_result=history,
        verbose_eval=False,
    )
    best = int(booster.best_iteration)
    booster = booster[: best + 1]
    boost_s = time.monotonic() - t0
    echo(f"booster: {best + 1} trees in {boost_s:.0f}s")

    raw_hx = booster.predict(dhx)
    raw_pool = booster.predict(dpool)
    method = config.calibration
    if method == "auto" and len(set(hx_p.y.tolist())) == 2 and len(hx_p.y) >= 50:
        method = choose_method(raw_hx, hx_p.y, seed=config.seed)
    elif method == "auto":
        method = "platt"
    calibrator = (
        fit_calibrator(raw_hx, hx_p.y, method=method)  # type: ignore[arg-type]
        if len(set(hx_p.y.tolist())) == 2
        else Calibrator()
    )
    echo(f"calibration: {calibrator.method}")
    p_hx, p_pool = calibrator(raw_hx), calibrator(raw_pool)
    thresholds, decision = pick_thresholds(p_hx, hx_p.y)
    metrics = {
        "hatexplain_dev": binary_metrics(hx_p.y, p_hx, decision),
        "pool_dev": binary_metrics(pool_p.y, p_pool, decision),
    }
    metrics["hatexplain_dev"]["ece"] = expected_calibration_error(p_hx, hx_p.y)
    metrics["pool_dev"]["ece"] = expected_calibration_error(p_pool, pool_p.y)
    metrics["hatexplain_dev"]["auc_uncalibrated"] = binary_metrics(hx_p.y, raw_hx, 0.5)["roc_auc"]
    metrics["pool_dev"]["auc_uncalibrated"] = binary_metrics(pool_p.y, raw_pool, 0.5)["roc_auc"]

    booster_bytes = bytes(booster.save_raw(raw_format="ubj"))
    meta = ModelMeta(
        version="pending",
        encoder_id=encoder.encoder_id,
        encoder_sha256=encoder.weights_hash,
        encoder_backend=encoder.backend,
        max_length=encoder.max_length,
        embedding_dim=dim,
        static_features=list(STATIC_FEATURES),
        context_features=list(CONTEXT_FEATURES),
        thresholds=thresholds,
        calibrator=calibrator,
        decision_threshold=decision,
        heads=heads,
    )
    meta.version = model_version(booster_bytes, meta)
    total_s = time.monotonic() - started
    importance = booster.get_score(importance_type="gain")
    static_gain = {name: round(float(importance.get(name, 0.0)), 3) for name in STATIC_FEATURES}  # type: ignore[arg-type]
    meta.training = {
        "seed": config.seed,
        "sample": config.sample,
        "rows": {
            "train": len(splits.train),
            "train_pool": sum(1 for e in splits.train if e.source == "pool"),
            "train_hatexplain": sum(1 for e in splits.train if e.source != "pool"),
            "hatexplain_dev": len(splits.hx_dev),
            "pool_dev": len(splits.pool_dev),
        },
        "positive_rate": {
            "train": float(train_p.y.mean()),
            "hatexplain_dev": float(hx_p.y.mean()),
            "pool_dev": float(pool_p.y.mean()),
        },
        "data_sha256": data_hashes(config),
        "hatexplain_weight": config.hatexplain_weight,
        "params": params,
        "trees": best + 1,
        "calibration": calibrator.method,
        "static_feature_gain": static_gain,
        "heads": [head.name for head in heads],
        "threads": config.threads,
        "embedding_recipe": encoder.cache_tag,
        "embeddings_cached_at_start": cached_at_start,
        "seconds": {
            "features": round(features_s, 1),
            "heads": round(heads_s, 1),
            "boost": round(boost_s, 1),
            "total": round(total_s, 1),
        },
    }
    meta.metrics = metrics
    folder = config.out / meta.version
    from retrain.card import model_card

    save_model(folder, meta, booster_bytes, card=model_card(meta))
    echo(f"model {meta.version} written to {folder} in {total_s:.0f}s")
    echo(json.dumps(metrics, indent=2))
    return folder
