"""Static text features: cheap signals the encoder does not see well (shouting, slurs behind
evasion, second-person address, spam-like repetition, and the emotes and one-word reactions of
livestream chat, which a comment-trained encoder reads as shouting or as the start of a swear)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from toxicity.emotes import emote_shape
from toxicity.lexicon import Hits, Lexicon
from toxicity.normalize import normalize, tokens

STATIC_FEATURES: tuple[str, ...] = (
    "length_chars",
    "word_count",
    "caps_ratio",
    "profanity_count",
    "hard_slur_count",
    "evasion_count",
    "pronoun_count",
    "question_count",
    "exclamation_count",
    "max_char_run",
    "repeated_char_runs",
    "mention_count",
    "url_count",
    "emoji_count",
    "non_ascii_ratio",
    "emote_count",
    "emote_ratio",
    "reaction_only",
    "private_detail_count",
)

PRONOUNS = frozenset(
    ["you", "your", "u", "ur", "yours", "yourself", "yourselves", "youre", "ya", "yall"]
)
_MENTION = re.compile(r"(?<!\w)@\w+|<@!?\d+>|<user>", re.IGNORECASE)
_URL = re.compile(r"https?://\S+|www\.\S+|<url>", re.IGNORECASE)
_RUN3 = re.compile(r"(.)\1{2,}")
_PLAIN_WORD = re.compile(r"[^\W\d_]+")
# What doxxing posts, seeks or hints at: a person's IP, phone number, street address, school,
# or their private details by name ("your ip", "her real name", "his workplace"), and the
# words for doing it ("dox", "swat"). A count the booster weighs against the chat data's
# contrast lines (the streamer's own public city, socials and events are benign there).
_OWNER = r"(?:your|ur|yo|his|her|their|ya)"
_PRIVATE = (
    r"(?:real |full |last |home |exact |street |email |e-mail |phone |cell |work |irl )?"
    r"(?:address|addy|ip|ip address|phone|phone number|number|street|school|workplace|job|"
    r"office|employer|landlord|neighbou?rs?|mailbox|doorbell|driveway|backyard|front door|"
    r"license plate|plates?|real name|full name|last name|surname|linkedin|location|coords|"
    r"coordinates|parents|wife|husband|kids?)"
)
_PRIVATE_NUMBERS = (
    r"(?<![\d.])\d{1,3}\.\d{1,3}\.(?:\d{1,3}|x+)\.(?:\d{1,3}|x+)(?![\d.])",  # an IPv4
    r"(?<!\d)(?:\+?\d{1,2}[\s.-]?)?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}(?!\d)",  # a phone
    r"(?<![\d.])\d{3}[\s.-]\d{4}(?!\d)",  # a local phone number
    r"\b\d{1,5}\s+(?:[a-z]+\s+){1,2}(?:st|street|ave|avenue|rd|road|ln|lane|dr|drive|"
    r"blvd|boulevard|ct|court|way|terrace|crescent)\b",  # a street address
)
_PRIVATE_WORDS = (
    r"\bon\s+[a-z]+\s+(?:street|avenue|road|lane|drive|boulevard|ave|st|rd)\b",
    r"\b(?:high|middle|elementary|primary|secondary)\s+school\b",
    rf"\b{_OWNER}\s+{_PRIVATE}\b",
    r"\b(?:dox+(?:ed|ing)?|swat(?:ted|ting)?)\b",
)
# On the lower-cased text (a case-blind expression took four times as long), and without the
# number patterns where there is no digit: they cannot match there, so the count is the same.
_PRIVATE_ALL = re.compile("|".join(_PRIVATE_NUMBERS + _PRIVATE_WORDS))
_PRIVATE_WORDS_ONLY = re.compile("|".join(_PRIVATE_WORDS))
_DIGIT = re.compile(r"\d")


def private_details(text: str) -> int:
    """How many private details ``text`` posts, seeks or hints at."""
    lower = text.lower()
    pattern = _PRIVATE_ALL if _DIGIT.search(lower) else _PRIVATE_WORDS_ONLY
    return len(pattern.findall(lower))


def _is_emoji(char: str) -> bool:
    code = ord(char)
    return (
        0x1F000 <= code <= 0x1FAFF
        or 0x2600 <= code <= 0x27BF
        or 0x2B00 <= code <= 0x2BFF
        or 0xFE00 <= code <= 0xFE0F
    )


@dataclass(frozen=True)
class TextFeatures:
    """The static features of one text, plus the lexicon hits behind its labels."""

    values: tuple[float, ...]
    hits: Hits

    def as_dict(self) -> dict[str, float]:
        return dict(zip(STATIC_FEATURES, self.values, strict=True))


def text_features(text: str, lexicon: Lexicon | None = None) -> TextFeatures:
    """Static features of one text (see :data:`STATIC_FEATURES`)."""
    lexicon = lexicon or Lexicon.default()
    normalized = normalize(text)
    hits = lexicon.scan(normalized)
    # What a plain lower-case match would have found; the rest was hidden by evasion.
    evasion = 0
    if hits.words:
        plain = lexicon.scan(" ".join(_PLAIN_WORD.findall(text.lower())))
        evasion = max(0, hits.profanity + hits.slurs - plain.profanity - plain.slurs)
    ascii_only = text.isascii()
    n_letters = sum(1 for char in text if char.isalpha())
    upper = sum(1 for char in text if char.isupper())
    runs = [len(match.group(0)) for match in _RUN3.finditer(text)]
    words = tokens(normalized)
    shape = emote_shape(text)
    values = (
        float(len(text)),
        float(len(words)),
        upper / n_letters if n_letters else 0.0,
        float(hits.profanity),
        float(hits.slurs),
        float(evasion),
        float(sum(1 for word in words if word in PRONOUNS)),
        float(text.count("?")),
        float(text.count("!")),
        float(max(runs, default=1 if text else 0)),
        float(len(runs)),
        float(len(_MENTION.findall(text))),
        float(len(_URL.findall(text))),
        0.0 if ascii_only else float(sum(1 for char in text if _is_emoji(char))),
        0.0 if ascii_only else sum(1 for char in text if ord(char) > 127) / len(text),
        float(shape.emotes),
        shape.emote_ratio,
        1.0 if shape.only_emotes_or_reactions else 0.0,
        float(private_details(text)),
    )
    return TextFeatures(values=values, hits=hits)


def feature_matrix(
    texts: Sequence[str], lexicon: Lexicon | None = None
) -> tuple[np.ndarray, list[Hits]]:
    """(n, len(STATIC_FEATURES)) float32 matrix and the lexicon hits of each text."""
    lexicon = lexicon or Lexicon.default()
    rows = [text_features(text, lexicon) for text in texts]
    matrix = np.array([row.values for row in rows], dtype=np.float32).reshape(
        len(rows), len(STATIC_FEATURES)
    )
    return matrix, [row.hits for row in rows]
