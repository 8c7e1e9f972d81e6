"""Word-level explanations of the hybrid model's score (LIME), and the reasons words do not show.

LIME (``lime.lime_text.LimeTextExplainer``) hides random subsets of a message's words, scores
every such perturbed text, and fits a weighted linear model on which words were present: a
word's weight is how much its presence moved P(toxic) (positive = towards toxic). The score it
explains is the one a verdict gave: the message's context features are held as the verdict
recorded them, and ``HybridScorer.combine`` applies the hard-slur rule and the reaction-only cap
exactly as the scorer did.

Perturbed texts go through the model's own batched text path: each is reduced to what the model
reads of it (``model_text``, the text side is a function of it alone), duplicates collapse
(a 5-word line has at most 32 distinct subsets, whatever the sample count), rows already in a
bounded LRU are reused, and only the rest are embedded, in one batch (``score_text_side``).
Explaining copypasta a second time costs no encoder time.

Words are whitespace-separated chunks as the user typed them (``f.u.c.k`` stays one word). Input
is bounded: only the first ``max_words`` words are perturbed, and at most :data:`MAX_TAIL_CHARS`
characters after them are held fixed behind every perturbed text (the encoder reads 64 tokens
anyway). A chat line is far inside both bounds, so its explanation explains exactly the score
it was given; a 40,000-character message is explained as its first part (every perturbed text
scored with the whole message would take ~0.2 s each), its ``p_toxic`` is that part's, and a
``truncated`` reason says so.

An :class:`Explainer` is used from one thread at a time (the service runs it in one worker
thread); its cache is not locked.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from schemas.events import Explanation, Severity, TokenWeight, Verdict, utcnow
from schemas.rules import HARD_SLUR
from toxicity.base import Context
from toxicity.hybrid import TextSide
from toxicity.lexicon import Hits

if TYPE_CHECKING:
    from toxicity.hybrid import HybridScorer

MAX_WORDS = 64
"""Words perturbed per message by default; the rest of a longer message is held fixed."""
MAX_TAIL_CHARS = 1_000
"""Characters after the perturbed words held fixed at most; beyond them a message is cut."""
DEFAULT_SAMPLES = 300
DEFAULT_CACHE_SIZE = 20_000
# Words as typed: LIME splits on this (a regex) and keeps the separators when it rebuilds text.
WORD_SPLIT = r"\s+"
_WORD = re.compile(r"\S+")
# LIME's text kernel: a sample's weight falls with its cosine distance (0-100) from the message.
# LIME's default width (25) gives the text with every word hidden a weight of e^-8, so the fit
# of a 1-2 word line never sees what the words do together ("go die": 0.00 for "die", since
# "go" alone scores as high). Twice as wide it counts (e^-2): short lines get weights that say
# what their words do, and longer lines' weights barely change (measured on the shipped model).
KERNEL_WIDTH = 50.0
REACTION_ONLY = "reaction_only"
TRUNCATED = "truncated"


@dataclass(frozen=True)
class _Row:
    """One model text's text-side result (a row of each TextSide array, and its hits)."""

    embedding: np.ndarray
    static: np.ndarray
    hits: Hits


@dataclass
class CacheStats:
    """Perturbed texts scored since the explainer was built, and how many needed the encoder."""

    samples: int = 0
    embedded: int = 0

    @property
    def hits(self) -> int:
        return self.samples - self.embedded

    @property
    def hit_rate(self) -> float:
        return self.hits / self.samples if self.samples else math.nan


@dataclass(frozen=True)
class Explained:
    """One explanation: LIME's word weights and the non-text reasons, for one message."""

    model_version: str
    p_toxic: float
    severity: Severity
    labels: tuple[str, ...]
    # (word, weight), largest |weight| first; positive pushed P(toxic) up.
    weights: list[tuple[str, float]]
    intercept: float | None
    fit: float | None
    samples: int
    cache_hits: int
    words: int
    truncated: bool
    reasons: dict[str, str] = field(default_factory=dict)

    def event(
        self,
        message_id: str,
        *,
        verdict: Verdict | None = None,
        on_demand: bool = False,
        created_at: datetime | None = None,
    ) -> Explanation:
        """The ``Explanation`` event, with the verdict's platform, community and timestamps."""
        return Explanation(
            message_id=message_id,
            model_version=self.model_version,
            p_toxic=min(max(self.p_toxic, 0.0), 1.0),
            weights=[TokenWeight(token=w, weight=round(v, 6)) for w, v in self.weights[:512]],
            created_at=created_at or utcnow(),
            severity=verdict.severity if verdict is not None else self.severity,
            platform=verdict.platform if verdict is not None else None,
            community=verdict.community if verdict is not None else None,
            intercept=self.intercept,
            fit=self.fit,
            samples=self.samples,
            reasons=dict(list(self.reasons.items())[:64]),
            on_demand=on_demand,
            verdict_scored_at=verdict.scored_at if verdict is not None else None,
        )


def split_words(text: str, max_words: int) -> tuple[str, str]:
    """``text`` cut after its ``max_words``-th word: (the part LIME perturbs, the rest)."""
    for count, match in enumerate(_WORD.finditer(text), start=1):
        if count == max_words:
            return text[: match.end()], text[match.end() :]
    return text, ""


def context_of(features: Mapping[str, float | None], names: Sequence[str]) -> dict[str, float]:
    """The context features a verdict recorded (only those present and finite)."""
    out = {}
    for name in names:
        value = features.get(name)
        if value is not None and math.isfinite(float(value)):
            out[name] = float(value)
    return out


def describe_context(name: str, value: float) -> str:
    """A plain-language line for one context feature's value."""
    if name == "user_bad_ratio_7d":
        return f"{value:.0%} of this user's messages in the last 7 days were flagged"
    if name == "violation_count_7d":
        return f"{value:g} violation(s) by this user in the last 7 days"
    if name == "channel_toxicity_ratio":
        return f"{value:.0%} of recent messages in this channel were flagged"
    if name == "hours_since_last_msg":
        return f"this user's previous message was {value:.1f} hours earlier"
    if name == "is_new_to_channel":
        return (
            "among this user's first messages in this channel"
            if value >= 0.5
            else "this user has posted in this channel before"
        )
    return f"{name} = {value:g}"


class Explainer:
    """LIME explanations of a :class:`HybridScorer`'s scores, with a text-side LRU cache."""

    def __init__(
        self,
        scorer: HybridScorer,
        *,
        samples: int = DEFAULT_SAMPLES,
        max_words: int = MAX_WORDS,
        cache_size: int = DEFAULT_CACHE_SIZE,
        seed: int = 0,
    ) -> None:
        if samples < 2:
            raise ValueError("LIME needs at least 2 samples")
        if max_words < 1:
            raise ValueError("max_words must be at least 1")
        self.scorer = scorer
        self.samples = samples
        self.max_words = max_words
        self.cache_size = cache_size
        self.seed = seed
        self.stats = CacheStats()
        self._rows: OrderedDict[str, _Row] = OrderedDict()

    @property
    def version(self) -> str:
        return self.scorer.version

    # --- the classifier function LIME calls --------------------------------------------

    def text_side(self, texts: Sequence[str]) -> TextSide:
        """Text-side results of ``texts``: de-duplicated by model text, cached rows reused,
        only the misses embedded, in one batch."""
        keys = [self.scorer.model_text(t) for t in texts]
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in self._rows and key not in missing:
                missing[key] = text
        fresh: dict[str, _Row] = {}
        if missing:
            side = self.scorer.score_text_side(list(missing.values()))
            for i, key in enumerate(missing):
                fresh[key] = _Row(side.embeddings[i], side.static[i], side.hits[i])
        self.stats.samples += len(texts)
        self.stats.embedded += len(missing)
        # Every row resolved before any is remembered: remembering may evict a cached one.
        rows = [fresh[key] if key in fresh else self._rows[key] for key in keys]
        for key, row in zip(keys, rows, strict=True):
            self._remember(key, row)
        return TextSide(
            embeddings=np.stack([r.embedding for r in rows]),
            static=np.stack([r.static for r in rows]),
            hits=[r.hits for r in rows],
        )

    def _remember(self, key: str, row: _Row) -> None:
        if self.cache_size <= 0:
            return
        self._rows[key] = row
        self._rows.move_to_end(key)
        while len(self._rows) > self.cache_size:
            self._rows.popitem(last=False)

    def probabilities(self, texts: Sequence[str], context: Context | None) -> np.ndarray:
        """(n, 2) [P(safe), P(toxic)] of ``texts``, each with the same ``context``."""
        if not texts:
            return np.empty((0, 2))
        scores = self.scorer.combine(self.text_side(texts), [context or {}] * len(texts))
        p = np.array([s.p_toxic for s in scores], dtype=np.float64)
        return np.column_stack([1.0 - p, p])

    # --- explanations -------------------------------------------------------------------

    def explain(
        self,
        text: str,
        context: Context | None = None,
        *,
        samples: int | None = None,
        detector_reasons: Mapping[str, str] | None = None,
        labels: Sequence[str] = (),
    ) -> Explained:
        """Explain the score of ``text`` with ``context`` held fixed.

        ``detector_reasons`` (a verdict's ``reasons``) and ``labels`` (its labels) add the
        non-text reasons a verdict carries besides the model's.
        """
        from lime.lime_text import LimeTextExplainer

        samples = samples or self.samples
        head, tail = split_words(text, self.max_words)
        cut = max(0, len(tail) - MAX_TAIL_CHARS)
        if cut:
            tail = tail[:MAX_TAIL_CHARS]
            text = head + tail
        base_side = self.text_side([text])
        (score,) = self.scorer.combine(base_side, [context or {}])
        # Counted from here: the samples LIME scores (its first is the message itself, a hit).
        before = CacheStats(self.stats.samples, self.stats.embedded)
        words = len(set(_WORD.findall(head)))
        weights: list[tuple[str, float]] = []
        intercept: float | None = None
        fit: float | None = None
        if words:
            lime = LimeTextExplainer(
                class_names=["safe", "toxic"],
                split_expression=WORD_SPLIT,
                bow=True,
                feature_selection="none",
                kernel_width=KERNEL_WIDTH,
                random_state=self.seed,
            )
            result = lime.explain_instance(
                head,
                lambda perturbed: self.probabilities([p + tail for p in perturbed], context),
                labels=(1,),
                num_features=words,
                num_samples=samples,
            )
            weights = sorted(
                ((str(w), float(v)) for w, v in result.as_list(label=1)),
                key=lambda item: (-abs(item[1]), item[0]),
            )
            intercept = float(result.intercept[1])
            fit = float(result.score) if math.isfinite(float(result.score)) else None
        reasons = self.reasons(base_side, score.features, context, score.labels)
        for label, reason in (detector_reasons or {}).items():
            reasons.setdefault(label, reason)
        if HARD_SLUR in labels and HARD_SLUR not in reasons:
            reasons[HARD_SLUR] = _HARD_SLUR_REASON
        if cut:
            reasons[TRUNCATED] = (
                f"explained as its first {len(text)} characters (the first {self.max_words} "
                f"words varied); P(toxic) {score.p_toxic:.2f} is theirs, {cut} characters after "
                "them were left out"
            )
        return Explained(
            model_version=self.scorer.version,
            p_toxic=score.p_toxic,
            severity=score.severity,
            labels=score.labels,
            weights=weights,
            intercept=intercept,
            fit=fit,
            samples=self.stats.samples - before.samples,
            cache_hits=self.stats.hits - before.hits,
            words=words,
            truncated=bool(tail.strip()),
            reasons=reasons,
        )

    def explain_verdict(self, verdict: Verdict, *, samples: int | None = None) -> Explained:
        """Explain the score ``verdict`` gave: its text with its recorded context features."""
        context = context_of(verdict.features, self.scorer.meta.context_features)
        explained = self.explain(
            verdict.text,
            context,
            samples=samples,
            detector_reasons=verdict.reasons,
            labels=verdict.labels,
        )
        if verdict.model_version != explained.model_version:
            explained.reasons.setdefault(
                "model_version",
                f"explained with model {explained.model_version}; the verdict was scored by "
                f"{verdict.model_version}",
            )
        return explained

    def reasons(
        self,
        side: TextSide,
        features: Mapping[str, float | None],
        context: Context | None,
        labels: Sequence[str],
    ) -> dict[str, str]:
        """Non-text reasons of one message: each context feature present (with what the score
        would be without it), the hard-slur rule, the reaction-only cap."""
        reasons: dict[str, str] = {}
        present = context_of(context or {}, self.scorer.meta.context_features)
        if present:
            without = [{k: v for k, v in present.items() if k != name} for name in present]
            full = self.scorer.combine(side, [present])[0].p_toxic
            rows = TextSide(
                embeddings=np.repeat(side.embeddings[:1], len(without), axis=0),
                static=np.repeat(side.static[:1], len(without), axis=0),
                hits=[side.hits[0]] * len(without),
            )
            for name, scored in zip(present, self.scorer.combine(rows, without), strict=True):
                reasons[name] = (
                    f"{describe_context(name, present[name])}: P(toxic) {full:.2f} with it, "
                    f"{scored.p_toxic:.2f} without"
                )
        if HARD_SLUR in labels:
            reasons[HARD_SLUR] = _HARD_SLUR_REASON
        elif features.get(REACTION_ONLY) == 1.0:
            reasons[REACTION_ONLY] = (
                "only emotes and one-word reactions: the score is capped below LOW"
            )
        return reasons


_HARD_SLUR_REASON = "a word on the hard-slur list: graded HIGH whatever the model's score"


__all__ = [
    "DEFAULT_SAMPLES",
    "MAX_TAIL_CHARS",
    "MAX_WORDS",
    "CacheStats",
    "Explained",
    "Explainer",
    "context_of",
    "describe_context",
    "split_words",
]
