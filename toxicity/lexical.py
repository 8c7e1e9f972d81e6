"""A word-list scorer: the pipeline's fallback when no trained model is available.

It counts insults and profanity on whole words after light normalization and turns the count
into a score. It is fast and explainable, and it misses everything a word list misses (implicit
hate, sarcasm, new spellings); the hybrid model (``toxicity.hybrid``) is the real scorer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from toxicity.base import CONTEXT_FEATURES, Context, Score, Thresholds

VERSION = "lexical-1"

_WORDS = re.compile(r"[a-z0-9']+")
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)
_REPEATS = re.compile(r"(.)\1{2,}")

# Strong insults and profanity aimed at people; each hit weighs more than a mild word.
STRONG = frozenset(
    {
        "fuck",
        "fucking",
        "fucker",
        "motherfucker",
        "cunt",
        "bitch",
        "bastard",
        "whore",
        "slut",
        "dickhead",
        "asshole",
        "retard",
        "retarded",
        "faggot",
        "fag",
        "nigger",
        "nigga",
        "kys",
        "scumbag",
        "twat",
        "wanker",
        "prick",
    }
)
MILD = frozenset(
    {
        "idiot",
        "stupid",
        "moron",
        "dumb",
        "loser",
        "trash",
        "garbage",
        "pathetic",
        "ugly",
        "shit",
        "crap",
        "damn",
        "hell",
        "suck",
        "sucks",
        "clown",
        "dumbass",
        "shut",
        "stfu",
        "noob",
        "braindead",
        "cringe",
        "disgusting",
        "worthless",
    }
)
# Phrases that attack a person even without a swear word.
PHRASES = (
    "kill yourself",
    "go die",
    "nobody likes you",
    "you should die",
    "uninstall your life",
)


def normalize(text: str) -> list[str]:
    folded = _REPEATS.sub(r"\1\1", text.lower().translate(_LEET))
    return _WORDS.findall(folded)


class LexicalScorer:
    """Implements ``toxicity.base.TextScorer`` with word lists only."""

    def __init__(self, thresholds: Thresholds | None = None) -> None:
        self.thresholds = thresholds or Thresholds()

    @property
    def version(self) -> str:
        return VERSION

    def score(self, texts: Sequence[str], contexts: Sequence[Context] | None = None) -> list[Score]:
        scores = []
        for i, text in enumerate(texts):
            words = normalize(text)
            strong = sum(w in STRONG for w in words)
            mild = sum(w in MILD for w in words)
            joined = " ".join(words)
            phrases = sum(p in joined for p in PHRASES)
            weight = 1.4 * strong + 0.6 * mild + 1.6 * phrases
            p_toxic = round(1.0 - math.exp(-weight), 4)
            labels = tuple(
                label
                for label, hit in (("profanity", strong), ("insult", mild), ("threat", phrases))
                if hit
            )
            context = contexts[i] if contexts is not None else {}
            features: dict[str, float | None] = {
                "strong_words": float(strong),
                "mild_words": float(mild),
                "phrases": float(phrases),
            }
            features.update({name: context.get(name) for name in CONTEXT_FEATURES})
            scores.append(Score(p_toxic, self.thresholds.severity(p_toxic), labels, features))
        return scores
