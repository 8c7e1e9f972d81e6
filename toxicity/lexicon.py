"""Word lists and whole-word matching on normalised text.

- Profanity: the word list of ``better-profanity`` (MIT), less words that name identities,
  religions, body parts or everyday things (``gay``, ``god``, ``kill``, ``pot``...), which are not
  profanity by themselves and would teach the model to flag identity mentions.
- Hard slurs: a short hand-kept list (below, ROT13 so that reading the source does not mean
  reading slurs) that always maps a message to HIGH with the label ``hard_slur``. Nothing
  learned from feedback can lower it: the scorer applies it after the model.
- Reclaimed slurs: the in-group spellings of one of them (:data:`RECLAIMED_SLURS`), counted with
  the hard slurs for the model's features but left to the model: most of their uses are not
  attacks. In HateXplain dev, 85 of the 134 posts that hold one are labelled normal (against 27
  of 344 for the ``-er`` spelling); the rule made all 134 HIGH, the model alone puts 35 of the 49
  toxic ones and 23 of the 85 normal ones at MEDIUM or above. Viewers who write the way their
  friends talk are not banned for it; a hateful use is still caught by the model, and every use
  carries the ``profanity`` label, which a community can act on.

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
    "avttre avttref snttbg snttbgf sntbg xvxr xvxrf jrgonpx jrgonpxf "
    "enturnq enturnqf gbjryurnq gbjryurnqf fnaqavttre fnaqavttref tbbx tbbxf"
)
HARD_SLURS: frozenset[str] = frozenset(codecs.decode(_HARD_SLURS_ROT13, "rot13").split())
_RECLAIMED_SLURS_ROT13 = "avttn avttnf avttnm avttnu"
RECLAIMED_SLURS: frozenset[str] = frozenset(codecs.decode(_RECLAIMED_SLURS_ROT13, "rot13").split())
LISTED_SLURS: frozenset[str] = HARD_SLURS | RECLAIMED_SLURS
"""Both lists: what the model's ``hard_slur_count`` feature counts."""

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
    reclaimed_slurs: int = 0

    @property
    def slurs(self) -> int:
        """Hard and reclaimed slurs: the model's ``hard_slur_count``."""
        return self.hard_slurs + self.reclaimed_slurs

    @property
    def listed(self) -> bool:
        """Whether any listed word or phrase was found."""
        return bool(self.profanity or self.hard_slurs or self.reclaimed_slurs)


class Lexicon:
    """Counts listed words in normalised text (whole words, repeated letters squeezed)."""

    def __init__(
        self,
        profanity: frozenset[str],
        hard_slurs: frozenset[str] = HARD_SLURS,
        reclaimed_slurs: frozenset[str] = RECLAIMED_SLURS,
    ):
        slurs = hard_slurs | reclaimed_slurs
        self.profanity = frozenset(word for word in profanity if " " not in word) - slurs
        self.phrases = tuple(sorted(word for word in profanity if " " in word))
        self.hard_slurs = hard_slurs - reclaimed_slurs
        self.reclaimed_slurs = reclaimed_slurs
        # Each listed word's kind (the three lists share no word).
        self._kinds = {
            **dict.fromkeys(self.profanity, "profanity"),
            **dict.fromkeys(self.reclaimed_slurs, "reclaimed_slur"),
            **dict.fromkeys(self.hard_slurs, "hard_slur"),
        }
        self._all = tuple(sorted(self._kinds))
        # Words repeat a lot across messages; remembering each word's kind halves scan time.
        self._memo: dict[str, str | None] = {}

    @classmethod
    @lru_cache(maxsize=1)
    def default(cls) -> Lexicon:
        """better-profanity's list (less :data:`NOT_PROFANITY`), :data:`HARD_SLURS` and
        :data:`RECLAIMED_SLURS`."""
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
                kind = self._kinds.get(form)
                if kind is not None:
                    return kind
        return None

    def _masked(self, word: str) -> str | None:
        """``f*ck``, ``sh**``: a listed word of the same shape (``*`` hides one or more letters)."""
        if len(word.replace("*", "")) < 2:
            return None
        pattern = re.compile("".join("[a-z]+" if c == "*" else re.escape(c) for c in word) + "$")
        for listed in self._all:
            if pattern.match(listed):
                return self._kinds[listed]
        return None

    def scan(self, normalized: str) -> Hits:
        """Count listed words in text already passed through ``normalize``."""
        counts = {"profanity": 0, "hard_slur": 0, "reclaimed_slur": 0}
        found: list[str] = []
        words = tokens(normalized)
        for word in words:
            kind = self._kind(word)
            if kind is not None:
                counts[kind] += 1
                found.append(word)
        if self.phrases:
            joined = f" {' '.join(words)} "
            for phrase in self.phrases:
                if f" {phrase} " in joined:
                    counts["profanity"] += 1
                    found.append(phrase)
        return Hits(
            profanity=counts["profanity"],
            hard_slurs=counts["hard_slur"],
            words=tuple(found),
            reclaimed_slurs=counts["reclaimed_slur"],
        )
