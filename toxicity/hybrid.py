"""The hybrid toxicity model: sentence embedding + static text features + context features,
an XGBoost classifier, a calibrator and severity thresholds.

Scoring splits in two so that a cache of text-side results can be reused across messages:
``score_text_side(texts)`` does the expensive per-text work (embedding, normalisation, lexicon)
and ``combine(text_side, contexts)`` adds the per-message context and runs the booster.
Hard slurs are applied last and always give HIGH with the label ``hard_slur``; the reclaimed
spellings of one (``toxicity.lexicon.RECLAIMED_SLURS``) are left to the model and labelled
``profanity``.

A line made only of emotes and one-word reactions (``toxicity.emotes``: ``F``, ``LMAO``,
``KEKW KEKW``, ``W``) is SAFE unless it holds a hard slur: its probability is capped at half the
LOW threshold. Such lines are a large share of livestream chat, carry no harm on their own, and
are where a comment-trained model errs most (it read ``F`` as the start of a swear word); a
wall of them is the ``emote_flood`` detector's business, not the model's.

Labels say what the harm is (``schemas.labels``): each harm label has a logistic head on the
embedding whose probability is the label's score (``Score.label_scores``). A message at LOW or
above carries every harm label scoring at least :data:`LABEL_THRESHOLD` and within
:data:`LABEL_RELATIVE` of its best one, and a message at MEDIUM or above always carries at least
its best-scoring harm label, so a flagged verdict says why.
``profanity`` is the word list's finding (swearing is a fact about the words, not a judgement),
reclaimed slurs included.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from schemas.events import Severity
from schemas.labels import PROFANITY
from schemas.rules import HARD_SLUR
from toxicity.adapter import merged_encoder
from toxicity.artifacts import (
    ModelFormatError,
    ModelMeta,
    adapter_file,
    load_booster_bytes,
    load_meta,
)
from toxicity.base import CONTEXT_FEATURES, Context, Score, ThreadCosts, Thresholds
from toxicity.encoder import (
    DEFAULT_CACHE_DIR,
    DEFAULT_ID_CACHE_SIZE,
    Encoder,
    build_difference,
    resolve_encoder,
)
from toxicity.features import STATIC_FEATURES, feature_matrix
from toxicity.forest import MAX_ROWS as FOREST_MAX_ROWS
from toxicity.forest import Forest
from toxicity.heads import EmbeddingHead, TfidfHead, head_features
from toxicity.lexicon import Hits, Lexicon
from toxicity.normalize import model_text, normalize

if TYPE_CHECKING:
    from core.settings import ModelSettings

logger = logging.getLogger(__name__)

LABEL_THRESHOLD = 0.5
# ... and within this share of the best label's score: the heads are one-vs-rest and fire
# together on strong abuse ("kys" scoring insult and identity_attack too). On the chat set's
# dev split (harmful lines, their hand-given labels), 0.9 took label precision from 0.46 to 0.67
# at recall 0.81 -> 0.68 for the shipped model; test: 0.41 -> 0.62, wrong labels per harmful
# line 1.24 -> 0.47 (the model before it: 0.61 precision, 0.53 wrong per line, without it).
LABEL_RELATIVE = 0.9
LABEL_PREFIX = "label_"


@dataclass(frozen=True)
class TextSide:
    """Per-text results that do not depend on context: reusable for repeated texts."""

    embeddings: np.ndarray  # (n, dim) float32
    # (n, len(STATIC_FEATURES) + text heads) float32: the static features, then the logits of
    # the heads that read the text itself (TF-IDF); heads on the embedding run in combine().
    static: np.ndarray
    hits: list[Hits]

    def __len__(self) -> int:
        return len(self.hits)


def context_matrix(contexts: Sequence[Context] | None, n: int, names: Sequence[str]) -> np.ndarray:
    """(n, len(names)) float32 with NaN where a context value is missing."""
    out = np.full((n, len(names)), np.nan, dtype=np.float32)
    if contexts is None:
        return out
    if len(contexts) != n:
        raise ValueError(f"{len(contexts)} contexts for {n} texts")
    for i, context in enumerate(contexts):
        for j, name in enumerate(names):
            value = context.get(name)
            if value is not None and math.isfinite(float(value)):
                out[i, j] = float(value)
    return out


def hard_slur_probability(p_toxic: float, high: float) -> float:
    """P(toxic) for a message with a hard slur: at least ``high``, so always HIGH severity.

    Scores already at or above ``high`` stay; lower ones land just above it (within 0.001),
    keeping the model's order among them without ranking them over other HIGH messages.
    """
    if p_toxic >= high:
        return p_toxic
    return min(1.0, high + 0.001 * p_toxic)


def harm_labels(scores: dict[str, float], severity: Severity, *, profane: bool) -> list[str]:
    """The harm labels of a message from its label scores and severity (see the module doc)."""
    if severity is Severity.SAFE:
        return [PROFANITY] if profane else []
    harms = {name: score for name, score in scores.items() if name != PROFANITY}
    top = max(harms.values(), default=0.0)
    labels = [
        name
        for name, score in sorted(harms.items(), key=lambda item: -item[1])
        if score >= LABEL_THRESHOLD and score >= LABEL_RELATIVE * top
    ]
    if not labels and severity.rank >= Severity.MEDIUM.rank:
        best = max(
            ((score, name) for name, score in scores.items() if name != PROFANITY), default=None
        )
        if best is not None:
            labels = [best[1]]
    if profane:
        labels.append(PROFANITY)
    return labels


def override_thresholds(stored: Thresholds, model: ModelSettings | None) -> Thresholds:
    """The stored thresholds, with each one the settings set replacing it."""
    if model is None:
        return stored
    return Thresholds(
        low=stored.low if model.low_threshold is None else model.low_threshold,
        medium=stored.medium if model.medium_threshold is None else model.medium_threshold,
        high=stored.high if model.high_threshold is None else model.high_threshold,
    )


class HybridScorer:
    """A ``TextScorer``: load once with :meth:`load`, call :meth:`score` from one worker thread."""

    def __init__(
        self,
        meta: ModelMeta,
        booster: Any,
        encoder: Encoder,
        *,
        thresholds: Thresholds | None = None,
        batch_size: int = 64,
        lexicon: Lexicon | None = None,
    ) -> None:
        self.meta = meta
        self.thresholds = thresholds or meta.thresholds
        self.batch_size = batch_size
        self.encoder = encoder
        self.lexicon = lexicon or Lexicon.default()
        self._booster = booster
        # The same trees in numpy for small batches (XGBoost's per-call set-up costs more than
        # scoring one or two rows; toxicity.forest), when they score exactly as the booster.
        self._forest = Forest.from_booster(booster)
        self._lock = threading.Lock()
        # CPU time of the scoring thread per part (ns), for the scorer's stage accounting.
        self._costs = ThreadCosts()
        # Heads on the text are part of the text side; heads on the embedding run in combine().
        self._text_heads = [h for h in meta.heads if isinstance(h, TfidfHead)]
        self._embedding_heads = [h for h in meta.heads if isinstance(h, EmbeddingHead)]
        if [h.name for h in meta.heads] != [
            h.name for h in self._text_heads + self._embedding_heads
        ]:
            raise ValueError(f"model {meta.version}: text heads must come before embedding heads")
        unknown = [name for name in meta.static_features if name not in STATIC_FEATURES]
        if unknown:
            raise ValueError(
                f"model {meta.version} was trained on static features this code does not "
                f"compute: {unknown} (it computes {list(STATIC_FEATURES)})"
            )
        # A model trained before a feature was added reads the columns it knows, by name.
        self._static_columns: list[int] | None = (
            None
            if list(meta.static_features) == list(STATIC_FEATURES)
            else [STATIC_FEATURES.index(name) for name in meta.static_features]
        )
        self._text_names = list(meta.static_features) + [h.name for h in self._text_heads]

    @classmethod
    def load(
        cls,
        model_dir: Path,
        model_settings: ModelSettings | None = None,
        *,
        cache_dir: Path | None = None,
    ) -> HybridScorer:
        """Read a model directory; the encoder and quantization come from the settings."""
        import xgboost as xgb

        meta = load_meta(model_dir)
        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(load_booster_bytes(model_dir)))
        except xgb.core.XGBoostError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ModelFormatError(f"{model_dir}: not an XGBoost booster ({first})") from exc
        # One thread: the scorer's batches are small (128 rows), and a second OpenMP thread
        # spun more than it helped. Measured on the replay (2 cores, 349 trees, 128-row batches):
        # 91-177 us of CPU a row with two threads, 17 us with one; predictions are identical.
        booster.set_param({"nthread": 1})
        quantize = model_settings.quantize if model_settings else "int8"
        device = model_settings.device if model_settings else "cpu"
        batch_size = model_settings.batch_size if model_settings else 64
        name = model_settings.encoder if model_settings and model_settings.encoder else None
        adapter = adapter_file(model_dir, meta)
        if name is None and adapter is not None:
            # The fine-tuned encoder: the base with the model's adapter merged in (cached).
            base = resolve_encoder(meta.encoder_id)[1]
            if not isinstance(base, Path):
                raise ModelFormatError(f"{model_dir}: the adapter's base encoder is not local")
            name = str(merged_encoder(base, adapter, cache_dir or DEFAULT_CACHE_DIR))
        encoder = Encoder.load(
            name or meta.encoder_id,
            quantize=quantize,
            device=device,
            cache_dir=cache_dir,
            batch_size=batch_size,
            max_length=meta.max_length,
            workers=model_settings.encoder_workers if model_settings else None,
            process=bool(model_settings and model_settings.encoder_process),
            id_cache_size=(
                model_settings.encoder_id_cache if model_settings else DEFAULT_ID_CACHE_SIZE
            ),
        )
        if encoder.weights_hash != meta.encoder_sha256:
            logger.warning(
                "encoder %s (sha256 %s) differs from the one model %s was trained with (%s)",
                encoder.encoder_id,
                encoder.weights_hash[:12],
                meta.version,
                meta.encoder_sha256[:12],
            )
        difference = build_difference(meta.encoder_build, encoder)
        if difference is not None:
            logger.warning("model %s: %s", meta.version, difference)
        return cls(
            meta,
            booster,
            encoder,
            thresholds=override_thresholds(meta.thresholds, model_settings),
            batch_size=batch_size,
        )

    @property
    def version(self) -> str:
        return self.meta.version

    def model_text(self, text: str) -> str:
        """What the model reads of a text (``toxicity.normalize.model_text``); the text side
        is a function of this alone, so it is also the de-duplication cache's key."""
        return model_text(text, self._is_listed)

    def _is_listed(self, word: str) -> bool:
        hits = self.lexicon.scan(normalize(word))
        return hits.listed

    def take_costs(self) -> dict[str, int]:
        """CPU time of the calling thread per part since the last call, in ns: ``encoder``
        (its share of the embedding; other sessions run on threads of their own), ``features``
        (model text, static features, text heads), ``booster`` and ``assemble`` (calibration,
        label heads, the scores)."""
        return self._costs.take()

    def _charge(self, part: str, started: int) -> int:
        now = time.thread_time_ns()
        self._costs.add(part, now - started)
        return now

    def score_text_side(self, texts: Sequence[str]) -> TextSide:
        started = time.thread_time_ns()
        read = [self.model_text(t) for t in texts]
        started = self._charge("features", started)
        embeddings = self.encoder.embed(read, batch_size=self.batch_size)
        self._charge("encoder", started)
        return self._text_side(read, embeddings)

    def text_side(self, texts: Sequence[str], embeddings: np.ndarray) -> TextSide:
        """Text-side results from embeddings computed elsewhere (a cache, an evaluation)."""
        return self._text_side([self.model_text(t) for t in texts], embeddings)

    def _text_side(self, texts: list[str], embeddings: np.ndarray) -> TextSide:
        """``texts`` already as the model reads them (:meth:`model_text`)."""
        started = time.thread_time_ns()
        static, hits = feature_matrix(texts, self.lexicon)
        if self._static_columns is not None:
            static = static[:, self._static_columns]
        if self._text_heads:
            text_heads = head_features(self._text_heads, texts, embeddings)
            static = np.hstack([static, text_heads]).astype(np.float32)
        self._charge("features", started)
        return TextSide(embeddings=embeddings, static=static, hits=hits)

    def raw_probability(
        self,
        text_side: TextSide,
        contexts: Sequence[Context] | None,
        context: np.ndarray | None = None,
    ) -> np.ndarray:
        """The booster's uncalibrated P(toxic); ``context`` is ``contexts`` already as the
        :func:`context_matrix` (the caller needs it too)."""
        n = len(text_side)
        if context is None:
            context = context_matrix(contexts, n, self.meta.context_features)
        if text_side.static.shape[1] != len(self._text_names):
            raise ValueError(
                f"text side has {text_side.static.shape[1]} text features, model {self.version} "
                f"expects {len(self._text_names)} ({', '.join(self._text_names)})"
            )
        embedding_heads = head_features(self._embedding_heads, [""] * n, text_side.embeddings)
        matrix = np.hstack(
            [text_side.embeddings, text_side.static, embedding_heads, context]
        ).astype(np.float32)
        out = np.empty(n, dtype=np.float64)
        with self._lock:
            if self._forest is not None and n <= FOREST_MAX_ROWS:
                out[:] = self._forest.predict(matrix)
                return out
            for start in range(0, n, max(self.batch_size, 1024)):
                part = matrix[start : start + max(self.batch_size, 1024)]
                out[start : start + len(part)] = self._booster.inplace_predict(part)
        return out

    def combine(
        self, text_side: TextSide, contexts: Sequence[Context] | None = None
    ) -> list[Score]:
        """Scores from text-side results and each message's context."""
        n = len(text_side)
        if n == 0:
            return []
        started = time.thread_time_ns()
        context = context_matrix(contexts, n, self.meta.context_features)
        started = self._charge("assemble", started)
        raw = self.raw_probability(text_side, contexts, context)
        started = self._charge("booster", started)
        p = self.meta.calibrator(raw)
        label_probs = self.label_probabilities(text_side.embeddings)
        # Whole arrays to Python floats at once (the same values as float() of each element).
        statics = text_side.static.tolist()
        context_rows = context.tolist()
        label_rows = {name: v.tolist() for name, v in label_probs.items()}
        probabilities = np.asarray(p, dtype=np.float64).tolist()
        text_names = self._text_names
        context_names = self.meta.context_features
        scores = []
        for i in range(n):
            features: dict[str, float | None] = dict(zip(text_names, statics[i], strict=True))
            for name, value in zip(context_names, context_rows[i], strict=True):
                features[name] = None if math.isnan(value) else value
            hits = text_side.hits[i]
            p_toxic = min(max(probabilities[i], 0.0), 1.0)
            labels: list[str] = []
            if hits.hard_slurs:
                labels.append(HARD_SLUR)
                # Lifted into [high, 1], keeping the model's order among such messages.
                p_toxic = hard_slur_probability(p_toxic, self.thresholds.high)
            elif features.get("reaction_only") == 1.0:
                p_toxic = min(p_toxic, self.thresholds.low / 2)
            severity = self.thresholds.severity(p_toxic)
            label_scores = {name: round(v[i], 4) for name, v in label_rows.items()}
            profane = bool(hits.profanity or hits.reclaimed_slurs)
            labels += harm_labels(label_scores, severity, profane=profane)
            scores.append(
                Score(
                    p_toxic=p_toxic,
                    severity=severity,
                    labels=tuple(labels),
                    features=features,
                    label_scores=label_scores,
                )
            )
        self._charge("assemble", started)
        return scores

    def label_probabilities(self, embeddings: np.ndarray) -> dict[str, np.ndarray]:
        """Each harm label's probability per row (empty for a model without label heads)."""
        out = {}
        for head in self.meta.label_heads:
            logit = head.apply(embeddings).astype(np.float64)
            out[head.name.removeprefix(LABEL_PREFIX)] = 1.0 / (1.0 + np.exp(-logit))
        return out

    def score(self, texts: Sequence[str], contexts: Sequence[Context] | None = None) -> list[Score]:
        if contexts is not None and len(contexts) != len(texts):
            raise ValueError(f"{len(contexts)} contexts for {len(texts)} texts")
        return self.combine(self.score_text_side(texts), contexts)


__all__ = ["CONTEXT_FEATURES", "HybridScorer", "TextSide", "context_matrix"]
