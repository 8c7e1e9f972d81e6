"""The on-disk model directory written by ``warden train`` and read by the scorer.

    <dir>/model.json     metadata: version, encoder id + sha256 + truncation, feature names,
                         thresholds, calibrator, training data hashes, parameters, metrics
    <dir>/booster.ubj    the XGBoost booster (UBJSON)
    <dir>/heads.npz      weights of the TF-IDF head, when the model has one (float32, zipped)
    <dir>/MODEL_CARD.md  the model card (metrics table, data, limitations)
    <dir>/encoder_adapter.safetensors
                         the encoder's low-rank adapter, when training fine-tuned it
                         (``toxicity.adapter``; merged into the encoder on first use)

Everything is small plain files; the int8 encoder is never stored here (it is rebuilt from the
encoder's weights into the cache on first use).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError
from core.settings import env_name
from toxicity.adapter import ADAPTER_FILE
from toxicity.base import Thresholds
from toxicity.calibration import Calibrator
from toxicity.encoder import file_sha256
from toxicity.heads import EmbeddingHead, Head, TfidfHead

FORMAT = 1
METADATA_FILE = "model.json"
BOOSTER_FILE = "booster.ubj"
CARD_FILE = "MODEL_CARD.md"
HEADS_FILE = "heads.npz"
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


class ModelFormatError(ConfigError, ValueError):
    """A model directory is missing files or holds metadata this code cannot read.

    A configuration error (exit 2): the settings or ``--model`` point at the wrong directory.
    """


@contextmanager
def naming_model_source(option: Path | None, configured: Path | None) -> Iterator[None]:
    """Re-raise a :class:`ModelFormatError` saying where the directory came from (``--model``
    or ``WARDEN_MODEL__PATH``), so the operator knows what to change."""
    try:
        yield
    except ModelFormatError as exc:
        if option is not None:
            raise ModelFormatError(f"--model: {exc}") from exc
        if configured is not None:
            raise ModelFormatError(f"{env_name(('model', 'path'))}: {exc}") from exc
        raise


@dataclass
class ModelMeta:
    """Everything in ``model.json``."""

    version: str
    encoder_id: str
    encoder_sha256: str
    encoder_backend: str
    max_length: int
    embedding_dim: int
    static_features: list[str]
    context_features: list[str]
    thresholds: Thresholds
    calibrator: Calibrator
    decision_threshold: float
    heads: list[Head] = field(default_factory=list)
    # sha256 of ``encoder_adapter.safetensors`` when the encoder was fine-tuned (then
    # ``encoder_sha256`` names the merged encoder: ``toxicity.adapter.merged_id``).
    encoder_adapter: str | None = None
    # One logistic head per harm label (schemas.labels.HARM_LABELS) on the embedding: the
    # label's score; they explain a verdict and never feed the booster.
    label_heads: list[EmbeddingHead] = field(default_factory=list)
    # The int8 encoder file the booster learnt from: {"int8_sha256", "recipe", "toolchain":
    # {package: version}} (``toxicity.encoder.toolchain``); empty for other back ends and for
    # models trained before it was recorded.
    encoder_build: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        embedding = [f"emb_{i}" for i in range(self.embedding_dim)]
        return embedding + self.static_features + self.head_names + self.context_features

    @property
    def head_names(self) -> list[str]:
        return [head.name for head in self.heads]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "kind": "hybrid",
            "version": self.version,
            "encoder": {
                "id": self.encoder_id,
                "sha256": self.encoder_sha256,
                "backend": self.encoder_backend,
                "max_length": self.max_length,
                "dim": self.embedding_dim,
                **({"adapter": self.encoder_adapter} if self.encoder_adapter else {}),
                **({"build": self.encoder_build} if self.encoder_build else {}),
            },
            "features": {
                "static": self.static_features,
                "context": self.context_features,
                # The booster's columns, in order (emb_* are the embedding's dimensions).
                "names": self.feature_names,
            },
            "heads": [head.to_dict() for head in self.heads],
            "label_heads": [head.to_dict() for head in self.label_heads],
            "thresholds": {
                "low": self.thresholds.low,
                "medium": self.thresholds.medium,
                "high": self.thresholds.high,
            },
            "decision_threshold": self.decision_threshold,
            "calibrator": self.calibrator.to_dict(),
            "training": self.training,
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], folder: Path | None = None) -> ModelMeta:
        if data.get("format") != FORMAT or data.get("kind") != "hybrid":
            raise ModelFormatError(
                f"unsupported model format {data.get('format')!r} / kind {data.get('kind')!r}"
            )
        try:
            encoder = data["encoder"]
            thresholds = data["thresholds"]
            return cls(
                version=str(data["version"]),
                encoder_id=str(encoder["id"]),
                encoder_sha256=str(encoder["sha256"]),
                encoder_backend=str(encoder["backend"]),
                max_length=int(encoder["max_length"]),
                embedding_dim=int(encoder["dim"]),
                encoder_adapter=str(encoder["adapter"]) if encoder.get("adapter") else None,
                encoder_build=dict(encoder.get("build") or {}),
                static_features=list(data["features"]["static"]),
                context_features=list(data["features"]["context"]),
                thresholds=Thresholds(
                    float(thresholds["low"]), float(thresholds["medium"]), float(thresholds["high"])
                ),
                calibrator=Calibrator.from_dict(data["calibrator"]),
                decision_threshold=float(data["decision_threshold"]),
                heads=[_load_head(item, folder) for item in data.get("heads", [])],
                label_heads=[_embedding_head(item) for item in data.get("label_heads", [])],
                training=dict(data.get("training", {})),
                metrics=dict(data.get("metrics", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFormatError(f"bad model metadata: {exc}") from exc


def _embedding_head(data: dict[str, Any]) -> EmbeddingHead:
    if data["kind"] != "embedding":
        raise ModelFormatError(f"label head {data.get('name')!r} is not an embedding head")
    return EmbeddingHead(
        name=str(data["name"]),
        coef=np.asarray(data["coef"], dtype=np.float32),
        intercept=float(data["intercept"]),
    )


def _load_head(data: dict[str, Any], folder: Path | None) -> Head:
    if data["kind"] == "embedding":
        return _embedding_head(data)
    if data["kind"] == "tfidf":
        if folder is None or not (folder / HEADS_FILE).is_file():
            raise ModelFormatError(f"model has a TF-IDF head but no {HEADS_FILE}")
        with np.load(folder / HEADS_FILE) as weights:
            return TfidfHead(
                name=str(data["name"]),
                idf=weights[f"{data['name']}.idf"],
                coef=weights[f"{data['name']}.coef"],
                intercept=float(data["intercept"]),
            )
    raise ModelFormatError(f"unknown head kind {data['kind']!r}")


def model_version(booster_bytes: bytes, meta: ModelMeta) -> str:
    """A version that names the exact booster + calibrator + thresholds (same seed, same name)."""
    digest = hashlib.sha256(booster_bytes)
    digest.update(json.dumps(meta.calibrator.to_dict(), sort_keys=True).encode())
    digest.update(repr(meta.thresholds).encode())
    for head in [*meta.heads, *meta.label_heads]:
        digest.update(np.ascontiguousarray(head.coef, dtype=np.float32).tobytes())
    if meta.encoder_adapter:
        digest.update(meta.encoder_adapter.encode())
    return f"hybrid-minilm-xgb-{digest.hexdigest()[:10]}"


def adapter_file(folder: Path, meta: ModelMeta) -> Path | None:
    """The model's encoder adapter (checked against ``model.json``), or None without one."""
    if not meta.encoder_adapter:
        return None
    path = folder / ADAPTER_FILE
    if not path.is_file():
        raise ModelFormatError(f"{folder} has no {ADAPTER_FILE} (model.json names one)")
    if file_sha256(path) != meta.encoder_adapter:
        raise ModelFormatError(f"{path}: sha256 differs from the one in model.json")
    return path


def save_model(
    folder: Path,
    meta: ModelMeta,
    booster_bytes: bytes,
    card: str | None = None,
    adapter: Path | None = None,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if adapter is not None:
        shutil.copyfile(adapter, folder / ADAPTER_FILE)
    (folder / BOOSTER_FILE).write_bytes(booster_bytes)
    tfidf = {
        f"{head.name}.{part}": np.asarray(getattr(head, part), dtype=np.float32)
        for head in meta.heads
        if isinstance(head, TfidfHead)
        for part in ("idf", "coef")
    }
    if tfidf:
        np.savez_compressed(folder / HEADS_FILE, **tfidf)  # type: ignore[arg-type]
    (folder / METADATA_FILE).write_text(
        json.dumps(meta.to_dict(), indent=2, sort_keys=False) + "\n"
    )
    if card is not None:
        (folder / CARD_FILE).write_text(card)


def load_meta(folder: Path) -> ModelMeta:
    if not folder.is_dir():
        raise ModelFormatError(f"{folder}: no such directory")
    path = folder / METADATA_FILE
    if not path.is_file():
        raise ModelFormatError(f"{folder} is not a model directory (no {METADATA_FILE})")
    try:
        data = json.loads(path.read_bytes())
    except ValueError as exc:  # not JSON, or not UTF-8
        raise ModelFormatError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelFormatError(f"{path}: expected a JSON object")
    return ModelMeta.from_dict(data, folder)


def load_booster_bytes(folder: Path) -> bytes:
    path = folder / BOOSTER_FILE
    if not path.is_file():
        raise ModelFormatError(f"{folder} has no {BOOSTER_FILE}")
    return path.read_bytes()


def stored_path(folder: Path) -> str:
    """How the registry records a model directory: relative (``models/<name>``) when it is one
    of the repository's, so that every checkout finds its own copy; absolute otherwise."""
    folder = folder.resolve()
    if folder.parent == MODELS_DIR.resolve():
        return f"models/{folder.name}"
    return str(folder)


def resolve_stored(path: str) -> Path:
    """The directory a registry path names (see :func:`stored_path`)."""
    if path.startswith("models/"):
        return MODELS_DIR / path.removeprefix("models/")
    return Path(path)


def default_model_dir(models_dir: Path = MODELS_DIR) -> Path:
    """The shipped model: the newest directory under ``models/`` that holds a ``model.json``.

    ``models/DEFAULT`` (one line, a directory name) pins it when present.
    """
    pinned = models_dir / "DEFAULT"
    if pinned.is_file():
        return models_dir / pinned.read_text().strip()
    candidates = sorted(
        (path for path in models_dir.glob("*/") if (path / METADATA_FILE).is_file()),
        key=lambda path: path.stat().st_mtime,
    )
    if not candidates:
        raise ModelFormatError(f"no trained model under {models_dir}: run `warden train`")
    return candidates[-1]
