"""Training the hybrid model: embed, add static features, fit XGBoost, calibrate, pick thresholds.

    train  = training pool (less a 5 % held-back slice) + HateXplain train + chat training data
             (``retrain.chat_training``: hand-written and templated chat lines, hard negatives)
    hx_dev = HateXplain dev: early stopping; with chat_dev, calibration and thresholds
    chat_dev = the chat evaluation set's dev split: calibration and thresholds, so that
             probabilities mean on chat what they say (HateXplain dev alone is ~60 % toxic)
    pool_dev = the held-back slice: a second dev set from another domain, reported
    HateXplain test and the chat set's test split are never read here (``warden evaluate``
    reports them).

Every text is read as the scorer reads it (``model_text``: mentions folded) and embedded as the
scorer embeds it (int8, one text per run), so the booster sees exactly the inputs it will get.
Harm-label heads (``schemas.labels``) are fitted on the training rows' labels after the booster.

Context features are all missing (NaN) in public data, so the booster never splits on them and a
message without context gets exactly the text-only answer; retraining on logged verdicts, where
they are present, learns their weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retrain.classification_metrics import binary_metrics, pick_thresholds
from retrain.datasets import Example, Splits, load_splits
from retrain.embeddings import EmbeddingCache, cache_folder, features_folder
from retrain.finetune import FinetuneConfig, finetune_adapter, training_rows
from retrain.head_fitting import fit_heads, fit_label_heads
from retrain.sources import SOURCES, TRAINING_SOURCES
from toxicity.adapter import merged_encoder
from toxicity.artifacts import ModelMeta, model_version, save_model
from toxicity.base import CONTEXT_FEATURES, Thresholds
from toxicity.calibration import (
    Calibrator,
    choose_method,
    expected_calibration_error,
    fit_calibrator,
)
from toxicity.encoder import (
    Encoder,
    encoder_build_of,
    encoder_hash,
    file_sha256,
    resolve_encoder,
)
from toxicity.features import STATIC_FEATURES, feature_matrix
from toxicity.heads import head_features
from toxicity.lexicon import Lexicon
from toxicity.normalize import model_text, normalize

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
    chat_weight: float = 4.0
    num_boost_round: int = 1500
    early_stopping_rounds: int = 100
    # Platt, not isotonic: the chat rows of the calibration set are a few hundred lines
    # repeated to HateXplain's count, and isotonic steps would fit those lines one by one.
    calibration: str = "platt"
    # MEDIUM (the flag severity) is raised until at most this share of the chat dev split's
    # benign lines is flagged: ordinary viewers must not be punished for ordinary chat.
    benign_chat_flag_rate: float = 0.05
    params: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_PARAMS))
    heads: tuple[str, ...] = ("tfidf", "tfidf_chat", "emb_all", "emb_hx", "emb_chat")
    # The encoder's low-rank adapter fine-tuned on chat first (``retrain.finetune``); None
    # embeds with the encoder as published.
    finetune: FinetuneConfig | None = field(default_factory=FinetuneConfig)
    threads: int = 2
    pool_csv: Path | None = None
    hatexplain_dir: Path | None = None
    # Reviewed feedback rows (``retrain.feedback``, source "feedback") and their base weight.
    feedback: tuple[Example, ...] = ()
    feedback_weight: float = 4.0
    # An adapter to keep as it is (a retrain keeps the active model's encoder) instead of
    # fine-tuning one.
    adapter: Path | None = None


@dataclass
class Part:
    """One split's texts and per-text inputs (heads and context are added later)."""

    texts: list[str]
    embeddings: np.ndarray
    static: np.ndarray
    y: np.ndarray
    is_hatexplain: np.ndarray
    sources: list[str]
    labels: list[tuple[str, ...]]
    # Context features per row (NaN = missing: every public row; reviewed feedback has them).
    context: np.ndarray | None = None
    weight: np.ndarray | None = None


def build_part(
    examples: Sequence[Example],
    encoder: Encoder,
    embeddings: EmbeddingCache,
    features: EmbeddingCache,
    progress: Callable[[str], None] | None = None,
) -> Part:
    # Exactly what scoring reads: the model text (mentions folded), embedded one text per run.
    texts = [scoring_text(example.text) for example in examples]

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
        is_hatexplain=np.array(
            [example.source.startswith("hatexplain") for example in examples], dtype=bool
        ),
        sources=[example.source for example in examples],
        labels=[example.labels for example in examples],
        context=np.array(
            [
                [np.nan if v is None else v for v in example.context]
                if example.context is not None
                else [np.nan] * len(CONTEXT_FEATURES)
                for example in examples
            ],
            dtype=np.float32,
        ).reshape(len(examples), len(CONTEXT_FEATURES)),
        weight=np.array([example.weight for example in examples], dtype=np.float32),
    )


def calibration_set(
    raw_hx: np.ndarray, y_hx: np.ndarray, raw_chat: np.ndarray, y_chat: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """HateXplain dev and chat dev with equal weight (chat rows repeated to HateXplain's count).

    HateXplain dev alone is ~60 % toxic and all long-form posts: calibrated on it, probabilities
    overstate the risk of short chat lines. Chat dev's own balance is closer to a moderated
    stream's, and equal weight keeps either from deciding alone.
    """
    if len(raw_chat) == 0:
        return raw_hx, y_hx
    repeat = max(1, round(len(raw_hx) / len(raw_chat)))
    return (
        np.concatenate([raw_hx, np.tile(raw_chat, repeat)]),
        np.concatenate([y_hx, np.tile(y_chat, repeat)]),
    )


def cap_benign_chat(
    thresholds: Thresholds, p_chat: np.ndarray, y_chat: np.ndarray, rate: float
) -> tuple[Thresholds, float]:
    """``thresholds`` with MEDIUM raised, if need be, to the lowest value that flags at most
    ``rate`` of the benign chat lines (``p_chat``, ``y_chat``: chat dev); HIGH follows it up."""
    benign = np.sort(np.asarray(p_chat, dtype=np.float64)[np.asarray(y_chat) == 0])
    if len(benign) == 0 or np.mean(benign >= thresholds.medium) <= rate:
        return thresholds, thresholds.medium
    allowed = int(np.floor(rate * len(benign)))  # benign lines that may stay at or above it
    # Just above the highest benign score that must not be flagged (4 decimals, rounded up).
    medium = float(np.ceil((float(benign[len(benign) - allowed - 1]) + 1e-6) * 10_000) / 10_000)
    out = Thresholds(
        low=float(min(thresholds.low, medium)),
        medium=medium,
        high=float(max(thresholds.high, medium)),
    )
    return out, medium


def _adapter(
    config: TrainConfig, splits: Splits, echo: Callable[[str], None]
) -> tuple[Path | None, str | None, dict[str, float]]:
    """(the encoder adapter fine-tuned on the training split, the encoder to embed with: the
    base with the adapter merged in, what fine-tuning reports); (None, ``config.encoder``, {})
    when ``finetune`` is off.

    The adapter is kept in ``<cache>/adapters`` under a hash of its rows, settings and base
    encoder, so a second training on the same data reuses it.
    """
    if config.finetune is None and config.adapter is None:
        return None, config.encoder, {}
    _, base = resolve_encoder(config.encoder)
    if not isinstance(base, Path):
        raise ValueError(f"fine-tuning needs a local encoder directory, not {base!r}")
    if config.adapter is not None:
        echo(f"encoder adapter {config.adapter} kept (no fine-tuning)")
        return config.adapter, str(merged_encoder(base, config.adapter, config.cache_dir)), {}
    assert config.finetune is not None
    texts = [scoring_text(e.text) for e in splits.train]
    rows = training_rows(
        texts,
        [e.label for e in splits.train],
        [e.source == "chat" for e in splits.train],
        config.finetune,
    )
    digest = hashlib.sha256(f"{encoder_hash(base)}|{asdict(config.finetune)}".encode())
    for text, label in rows:
        digest.update(f"{label}\t{text}\n".encode())
    path = config.cache_dir / "adapters" / f"adapter-{digest.hexdigest()[:16]}.safetensors"
    stats: dict[str, float] = {}
    if path.is_file():
        echo(f"encoder adapter reused from {path}")
    else:
        echo(f"fine-tuning the encoder's adapter on {len(rows)} rows")
        tmp = path.with_suffix(".tmp")
        stats = finetune_adapter(rows, base, tmp, config.finetune, echo=echo)
        tmp.replace(path)
    return path, str(merged_encoder(base, path, config.cache_dir)), stats


def scoring_text(text: str) -> str:
    """``text`` as the scorer reads it (``HybridScorer.model_text`` with the default lexicon)."""
    return model_text(text, _is_listed)


def _is_listed(word: str) -> bool:
    hits = Lexicon.default().scan(normalize(word))
    return hits.listed


def design_matrix(part: Part, heads: np.ndarray) -> np.ndarray:
    """[embedding, static, heads, context (NaN where missing: all public rows)]."""
    context = (
        part.context
        if part.context is not None
        else np.full((len(part.texts), len(CONTEXT_FEATURES)), np.nan, dtype=np.float32)
    )
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
        extra=config.feedback,
    )
    echo(
        f"data: train {len(splits.train)}, hx_dev {len(splits.hx_dev)}, "
        f"pool_dev {len(splits.pool_dev)}, chat_dev {len(splits.chat_dev)} "
        f"(HateXplain test held out: {len(splits.hx_test)}; chat test split never read)"
    )
    adapter, encoder_source, adapter_stats = _adapter(config, splits, echo)
    encoder = Encoder.load(
        encoder_source,
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
    chat_p = build_part(splits.chat_dev, encoder, cache, features, progress=echo)
    features_s = time.monotonic() - t0
    echo(f"embeddings and static features ready in {features_s:.0f}s")

    is_chat = np.array([source == "chat" for source in train_p.sources], dtype=bool)
    t0 = time.monotonic()
    heads, train_heads = fit_heads(
        train_p.texts,
        train_p.embeddings,
        train_p.y,
        train_p.is_hatexplain,
        kinds=config.heads,
        seed=config.seed,
        echo=echo,
        is_chat=is_chat,
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
    weight = np.where(train_p.is_hatexplain, config.hatexplain_weight, 1.0)
    weight = np.where(is_chat, config.chat_weight, weight).astype(np.float32)
    is_feedback = np.array([source == "feedback" for source in train_p.sources], dtype=bool)
    weight = np.where(is_feedback, config.feedback_weight, weight).astype(np.float32)
    if train_p.weight is not None:
        weight = weight * train_p.weight
    params = dict(config.params)
    params.update({"seed": config.seed, "nthread": config.threads})
    dtrain = xgb.DMatrix(
        design_matrix(train_p, train_heads), label=train_p.y, weight=weight, feature_names=names
    )
    pool_x = design_matrix(pool_p, head_features(heads, pool_p.texts, pool_p.embeddings))
    hx_x = design_matrix(hx_p, head_features(heads, hx_p.texts, hx_p.embeddings))
    chat_x = design_matrix(chat_p, head_features(heads, chat_p.texts, chat_p.embeddings))
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
    raw_chat = (
        booster.predict(xgb.DMatrix(chat_x, feature_names=names))
        if len(chat_p.texts)
        else np.zeros(0, dtype=np.float32)
    )
    raw_cal, y_cal = calibration_set(raw_hx, hx_p.y, raw_chat, chat_p.y)
    method = config.calibration
    if method == "auto" and len(set(y_cal.tolist())) == 2 and len(y_cal) >= 50:
        method = choose_method(raw_cal, y_cal, seed=config.seed)
    elif method == "auto":
        method = "platt"
    calibrator = (
        fit_calibrator(raw_cal, y_cal, method=method)  # type: ignore[arg-type]
        if len(set(y_cal.tolist())) == 2
        else Calibrator()
    )
    echo(f"calibration: {calibrator.method}, {len(hx_p.y)} HateXplain + {len(chat_p.y)} chat dev")
    p_hx, p_pool, p_chat = calibrator(raw_hx), calibrator(raw_pool), calibrator(raw_chat)
    thresholds, decision = pick_thresholds(calibrator(raw_cal), y_cal)
    if len(set(chat_p.y.tolist())) == 2:
        thresholds, decision = cap_benign_chat(
            thresholds, p_chat, chat_p.y, config.benign_chat_flag_rate
        )
    metrics = {
        "hatexplain_dev": binary_metrics(hx_p.y, p_hx, decision),
        "pool_dev": binary_metrics(pool_p.y, p_pool, decision),
    }
    if len(set(chat_p.y.tolist())) == 2:
        metrics["chat_dev"] = binary_metrics(chat_p.y, p_chat, decision)
        metrics["chat_dev"]["benign_flagged"] = float(np.mean(p_chat[chat_p.y == 0] >= decision))
        metrics["chat_dev"]["harmful_caught"] = float(np.mean(p_chat[chat_p.y == 1] >= decision))
    t0 = time.monotonic()
    label_heads = fit_label_heads(
        train_p.embeddings, train_p.labels, train_p.sources, seed=config.seed, echo=echo
    )
    echo(f"{len(label_heads)} label heads fitted in {time.monotonic() - t0:.0f}s")
    metrics["hatexplain_dev"]["ece"] = expected_calibration_error(p_hx, hx_p.y)
    metrics["pool_dev"]["ece"] = expected_calibration_error(p_pool, pool_p.y)
    metrics["hatexplain_dev"]["auc_uncalibrated"] = binary_metrics(hx_p.y, raw_hx, 0.5)["roc_auc"]
    metrics["pool_dev"]["auc_uncalibrated"] = binary_metrics(pool_p.y, raw_pool, 0.5)["roc_auc"]

    booster_bytes = bytes(booster.save_raw(raw_format="ubj"))
    meta = ModelMeta(
        version="pending",
        encoder_id=resolve_encoder(config.encoder)[0],
        encoder_sha256=encoder.weights_hash,
        encoder_adapter=file_sha256(adapter) if adapter is not None else None,
        encoder_backend=encoder.backend,
        encoder_build=encoder_build_of(encoder),
        max_length=encoder.max_length,
        embedding_dim=dim,
        static_features=list(STATIC_FEATURES),
        context_features=list(CONTEXT_FEATURES),
        thresholds=thresholds,
        calibrator=calibrator,
        decision_threshold=decision,
        heads=heads,
        label_heads=label_heads,
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
            "train_hatexplain": sum(1 for e in splits.train if e.source.startswith("hatexplain")),
            "hatexplain_dev": len(splits.hx_dev),
            "pool_dev": len(splits.pool_dev),
            "chat_dev": len(splits.chat_dev),
            "train_chat": int(is_chat.sum()),
            "train_feedback": int(is_feedback.sum()),
        },
        "positive_rate": {
            "train": float(train_p.y.mean()),
            "hatexplain_dev": float(hx_p.y.mean()),
            "pool_dev": float(pool_p.y.mean()),
        },
        "data_sha256": data_hashes(config),
        "hatexplain_weight": config.hatexplain_weight,
        "chat_weight": config.chat_weight,
        "benign_chat_flag_rate": config.benign_chat_flag_rate,
        "params": params,
        "trees": best + 1,
        "calibration": calibrator.method,
        "static_feature_gain": static_gain,
        "heads": [head.name for head in heads],
        "threads": config.threads,
        "embedding_recipe": encoder.cache_tag,
        "encoder_finetune": (
            {**asdict(config.finetune), **adapter_stats}
            if config.finetune is not None and config.adapter is None
            else None
        ),
        # Where the kept adapter came from: its model folder and file, not this machine's path
        # (the adapter itself is ``encoder_adapter.safetensors``, its sha256 in the meta).
        "encoder_adapter_kept": (
            f"{config.adapter.parent.name}/{config.adapter.name}"
            if config.adapter is not None
            else None
        ),
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

    save_model(folder, meta, booster_bytes, card=model_card(meta), adapter=adapter)
    echo(f"model {meta.version} written to {folder} in {total_s:.0f}s")
    echo(json.dumps(metrics, indent=2))
    return folder
