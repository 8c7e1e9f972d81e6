"""Word lists and whole-word matching on normalised text.

- Profanity: the word list of ``better-profanity`` (MIT), less words that name identities,
  religions, body parts or everyday things (``gay``, ``god``, ``kill``, ``pot``...), which are not
  profanity by themselves and would teach the model to flag identity mentions.
- Hard slurs: a short hand-kept list (below, ROT13 so that reading the source does not mean
  reading slurs) that always maps a message to HIGH with the label ``hard_slur``. Nothing
  learned from feedback can lower it: the scorer applies it after the model.

Matching is on whole words of :func:`toxicity.normalize.normalize` output, so evasions fold in
and ``Scunthorpe``/``assassin``/``cockpit`` never count.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from toxicity.normalize import tokens, word_variants

_HARD_SLURS_ROT13 = (
    "avttre avttref avttn avttnf avttnm avttnu snttbg snttbgf sntbg xvxr xvxrf jrgonpx jrgonpxf "
    "enturnq enturnqf gbjryurnq gbjryurnqf fnaqavttre fnaqavttref tbbx tbbxf"
)
HARD_SLURS: frozenset[str] = frozenset(codecs.decode(_HARD_SLURS_ROT13, "rot13").split())

# In better-profanity's list but not profanity on their own.
NOT_PROFANITY: frozenset[str] = frozenset(
    [
        "arian",
        "aryan",
        "drunk",
        "fat",
        "gay",
        "god",
        "kill",
        "murder",
        "naked",
        "nazi",
        "pot",
        "queer",
        "strip",
        "virgin",
        "weed",
        "lust",
        "urine",
        "breasts",
        "sex",
        "xxx",
        "homo",
        "hell",
        "damn",
        "crap",
        "ugly",
        "stupid",
    ]
)


@dataclass(frozen=True)
class Hits:
    """What the lexicon found in one text."""

    profanity: int = 0
    hard_slurs: int = 0
    words: tuple[str, ...] = ()


class Lexicon:
    """Counts listed words in normalised text (whole words, repeated letters squeezed)."""

    def __init__(self, profanity: frozenset[str], hard_slurs: frozenset[str] = HARD_SLURS):
        self.profanity = frozenset(word for word in profanity if " " not in word) - hard_slurs
        self.phrases = tuple(sorted(word for word in profanity if " " in word))
        self.hard_slurs = hard_slurs
        self._all = tuple(sorted(self.profanity | self.hard_slurs))
        # Words repeat a lot across messages; remembering each word's kind halves scan time.
        self._memo: dict[str, str | None] = {}

    @classmethod
    @lru_cache(maxsize=1)
    def default(cls) -> Lexicon:
        """better-profanity's list (less :data:`NOT_PROFANITY`) and :data:`HARD_SLURS`."""
        text = (
            resources.files("better_profanity")
            .joinpath("profanity_wordlist.txt")
            .read_text(encoding="utf-8")
        )
        words = {line.strip().lower() for line in text.splitlines() if line.strip()}
        return cls(frozenset(words - NOT_PROFANITY))

    def _kind(self, word: str) -> str | None:
        try:
            return self._memo[word]
        except KeyError:
            pass
        if len(self._memo) > 200_000:
            self._memo.clear()
        kind = self._memo[word] = self._lookup(word)
        return kind

    def _lookup(self, word: str) -> str | None:
        if "*" in word:
            return self._masked(word)
        for variant in word_variants(word):
            for form in (variant, variant[:-1] if variant.endswith("s") else ""):
                if form in self.hard_slurs:
                    return "hard_slur"
                if form in self.profanity:
                    return "profanity"
        return None

    def _masked(self, word: str) -> str | None:
        """``f*ck``, ``sh**``: a listed word of the same shape (``*`` hides one or more letters)."""
        if len(word.replace("*", "")) < 2:
            return None
        pattern = re.compile("".join("[a-z]+" if c == "*" else re.escape(c) for c in word) + "$")
        for listed in self._all:
            if pattern.match(listed):
                return "hard_slur" if listed in self.hard_slurs else "profanity"
        return None

    def scan(self, normalized: str) -> Hits:
        """Count listed words in text already passed through ``normalize``."""
        profanity = hard = 0
        found: list[str] = []
        words = tokens(normalized)
        for word in words:
            kind = self._kind(word)
            if kind == "hard_slur":
                hard += 1
                found.append(word)
            elif kind == "profanity":
                profanity += 1
                found.append(word)
        if self.phrases:
            joined = f" {' '.join(words)} "
            for phrase in self.phrases:
                if f" {phrase} " in joined:
                    profanity += 1
                    found.append(phrase)
        return Hits(profanity=profanity, hard_slurs=hard, words=tuple(found))
