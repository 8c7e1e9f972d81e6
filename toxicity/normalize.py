"""Text normalisation against evasion, before any word-list lookup.

``normalize(text)`` folds the tricks people use to slip words past a filter:

- Unicode NFKC (full-width and mathematical letters), accents stripped, case folded;
- zero-width characters, soft hyphens and other invisible format characters removed;
- homoglyphs (Cyrillic/Greek look-alikes: ``fцck``, ``fսck``) mapped to Latin letters;
- leetspeak inside words (``sh1t``, ``@ss``, ``a$$``, ``b!tch``); numbers on their own stay;
- letters spelled out with separators (``f.u.c.k``, ``f u c k``, ``f-u-c-k``) joined.

Repeated letters (``fuuuuck``) are kept in the text and handled by :func:`word_variants`, which
the lexicon uses, so that ``ass`` and ``as`` stay different words. Words are always compared whole
(see :func:`tokens`), which is what keeps ``Scunthorpe``, ``assassin`` and ``cockpit`` clean.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache

# Invisible characters used to split words: zero-width space/joiners, word joiner, BOM, soft
# hyphen, Mongolian vowel separator, invisible times/separator/plus.
_INVISIBLE = dict.fromkeys(
    map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u2061\u2062\u2063\u2064\u034f"), None
)

_HOMOGLYPHS = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "с": "c", "ԁ": "d", "е": "e", "ё": "e", "һ": "h", "і": "i",
        "ї": "i", "ј": "j", "к": "k", "ӏ": "l", "м": "m", "н": "h", "о": "o", "р": "p",
        "ԛ": "q", "г": "r", "ѕ": "s", "т": "t", "ц": "u", "у": "y", "ү": "y", "х": "x",
        "ь": "b", "п": "n", "и": "u", "л": "n", "ш": "w", "щ": "w", "д": "d", "з": "3",
        "ч": "4", "я": "r", "ɡ": "g", "ո": "n", "ս": "u", "ց": "g", "ⅼ": "l",
        # Greek
        "α": "a", "β": "b", "γ": "y", "δ": "d", "ε": "e", "η": "n", "ι": "i", "κ": "k",
        "μ": "u", "ν": "v", "ο": "o", "ρ": "p", "σ": "o", "ς": "s", "τ": "t", "υ": "u",
        "χ": "x", "ω": "w",
        # Other Latin look-alikes NFKC leaves alone
        "ı": "i", "ł": "l", "ø": "o", "đ": "d", "ß": "ss", "æ": "ae", "œ": "oe",
    }
)  # fmt: skip

# Leetspeak, applied only to characters inside a word that also has letters.
_LEET = {
    "0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
    "@": "a", "$": "s", "!": "i", "|": "l", "+": "t", "€": "e", "¢": "c", "£": "e",
}  # fmt: skip
_LEET_CHARS = re.escape("".join(_LEET))
# A run of letters and leet characters holding at least one letter and one leet character.
_LEET_WORD = re.compile(rf"(?<![\w{_LEET_CHARS}])[\w{_LEET_CHARS}]+")
# Single letters joined by separators: f.u.c.k, f-u-c-k, f*u*c*k (3+ letters), or by spaces
# alone, f u c k (4+ letters, so that chat shorthand like "u r a" stays three words).
_SPELLED = re.compile(
    r"(?<![^\W\d_])(?:[^\W\d_]\s*[.\-_*~/\\|+]+\s*){2,}[^\W\d_](?![^\W\d_])"
    r"|(?<![^\W\d_])(?:[^\W\d_]\s+){3,}[^\W\d_](?![^\W\d_])"
)
_SEPARATORS = re.compile(r"[\s.\-_*~/\\|+]+")
# Cheap pre-check: a leet character touching a letter somewhere in the text.
_HAS_LEET = re.compile(rf"[{_LEET_CHARS}][^\W\d_]|[^\W\d_][0-9$@€¢£]")
_MARKS = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_FORMAT = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\u00ad\u180e\u034f]")
_WORD = re.compile(r"[^\W\d_]+(?:\*+[^\W\d_]+)*")
_RUN = re.compile(r"(.)\1+")
_SPACES = re.compile(r"\s+")
# @name (Twitch, plain text), <@123> / <@!123> (Discord), <@U123> / <@U123|name> (Slack)
_MENTION = re.compile(r"(?<![\w@])@\w{2,}|<@[!&]?\w+(?:\|[^>]*)?>")
MENTION = "@user"


def _fold_leet(match: re.Match[str]) -> str:
    word = match.group(0)
    if not any(char.isalpha() for char in word) or not any(char in _LEET for char in word):
        return word
    # Trailing "!"/"|"/"+"/"$"-free punctuation stays punctuation: "hi!" is not "hii".
    stripped = word.rstrip("!|+")
    tail = word[len(stripped) :]
    return "".join(_LEET.get(char, char) for char in stripped) + tail


@lru_cache(maxsize=1 << 15)
def normalize(text: str) -> str:
    """The folded, lower-case text that word lists are matched against (remembered for the
    latest texts: the model's features and the stream detectors both read a new line)."""
    if text.isascii():
        text = text.lower()
    else:
        text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
        text = _MARKS.sub("", _FORMAT.sub("", unicodedata.normalize("NFD", text)))
        text = unicodedata.normalize("NFC", text).casefold().translate(_HOMOGLYPHS)
    if _HAS_LEET.search(text):
        text = _LEET_WORD.sub(_fold_leet, text)
    text = _SPELLED.sub(lambda match: _SEPARATORS.sub("", match.group(0)), text)
    return _SPACES.sub(" ", text).strip()


def tokens(normalized: str) -> list[str]:
    """Whole words of a normalised text; ``*`` inside a word is kept as a mask (``f*ck``)."""
    return _WORD.findall(normalized)


def squeeze(word: str, keep: int = 1) -> str:
    """Runs of a repeated character cut to ``keep`` characters."""
    if keep == 1:
        return _RUN.sub(r"\1", word)
    return _RUN.sub(lambda match: match.group(1) * keep, word)


def word_variants(word: str) -> tuple[str, ...]:
    """The word, then with runs of a repeated letter cut to two and to one (``fuuuck``).

    Only ever shortens, so a clean word never turns into a listed one by gaining a letter
    (``as`` stays ``as``); the listed word itself always matches first (``ass``).
    """
    if not _RUN.search(word):
        return (word,)
    return (word, squeeze(word, 2), squeeze(word, 1))


def model_text(text: str, is_listed: Callable[[str], bool] | None = None) -> str:
    """The text as the model reads it: whitespace runs collapsed, mentions as ``@user``.

    Whom a line mentions says nothing of its tone, and keeping names out of the model keeps a
    user's name from moving the score of lines about them (HateXplain, part of the training
    data, has ``<user>`` in their place). It also makes ``@ana gg`` and ``@bob gg`` one line
    for the de-duplication cache. A mention that reads as a listed word once leetspeak is
    folded (``@ss``, ``@sshole``) is an evasion, not a name, and stays: ``is_listed`` decides.
    """

    def placeholder(match: re.Match[str]) -> str:
        mention = match.group(0)
        return mention if is_listed is not None and is_listed(mention) else MENTION

    return _MENTION.sub(placeholder, " ".join(text.split()))
