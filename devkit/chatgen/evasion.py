"""How chatters dodge word filters: leetspeak, dots and spaces, Cyrillic homoglyphs, stretched
letters, asterisks, zero-width spaces, mixed case.

A toxic phrase marks its key word in [brackets]; :func:`resolve_keys` drops the brackets and may
obfuscate one key word. Every draw comes from the caller's RNG, in a fixed order, so that the
chat generator's output stays the same for a seed.
"""

from __future__ import annotations

import random
import re

__all__ = ["evade", "evade_with", "resolve_keys"]

# Evasion tables (escapes keep the source ASCII; the output carries the real characters).
LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7", "g": "9", "b": "8"}
LEET_ALT = {"a": "@", "i": "!", "s": "$", "o": "()"}
HOMOGLYPHS = {
    "a": "\u0430",
    "c": "\u0441",
    "e": "\u0435",
    "o": "\u043e",
    "p": "\u0440",
    "x": "\u0445",
    "y": "\u0443",
    "i": "\u0456",
    "s": "\u0455",
    "h": "\u04bb",
    "k": "\u043a",
    "A": "\u0410",
    "B": "\u0412",
    "C": "\u0421",
    "E": "\u0415",
    "H": "\u041d",
    "K": "\u041a",
    "M": "\u041c",
    "O": "\u041e",
    "P": "\u0420",
    "T": "\u0422",
    "X": "\u0425",
}
ZWSP = "\u200b"
VOWELS = "aeiouy"

_KEY = re.compile(r"\[([^\[\]]+)\]")


def evade(rng: random.Random, word: str) -> str:
    """Obfuscate one key word the way chatters dodge filters."""
    for _ in range(4):
        how = rng.choice(("leet", "leet", "dots", "spaces", "homoglyph", "homoglyph", "stretch"))
        how = rng.choice((how, "star", "zwsp", "mixed")) if rng.random() < 0.3 else how
        out = evade_with(rng, how, word)
        if out != word:
            return out
    return word[0] + "*" * (len(word) - 1) if len(word) > 1 else word


def evade_with(rng: random.Random, how: str, word: str) -> str:
    """Apply the evasion ``how`` to ``word``; the word comes back unchanged where it cannot."""
    letters = [c for c in word if c.isalpha()]
    if how == "leet":
        table = LEET_ALT if rng.random() < 0.25 else LEET
        out = "".join(
            table[c.lower()] if c.lower() in table and rng.random() < 0.75 else c for c in word
        )
        if out == word:
            out = "".join(table.get(c.lower(), c) for c in word)
        return out
    if how == "dots" and len(letters) > 2:
        return rng.choice((".", "-", "_", "*")).join(word)
    if how == "spaces" and len(letters) > 2:
        return " ".join(word)
    if how == "homoglyph":
        out = "".join(HOMOGLYPHS[c] if c in HOMOGLYPHS and rng.random() < 0.6 else c for c in word)
        if out == word:
            out = "".join(HOMOGLYPHS.get(c, c) for c in word)
        return out
    if how == "stretch":
        idx = [i for i, c in enumerate(word) if c.lower() in VOWELS]
        if idx:
            i = rng.choice(idx)
            return word[: i + 1] + word[i] * rng.randrange(2, 6) + word[i + 1 :]
    if how == "star":
        idx = [i for i, c in enumerate(word) if c.lower() in VOWELS and 0 < i < len(word) - 1]
        if idx:
            i = rng.choice(idx)
            return word[:i] + "*" + word[i + 1 :]
    if how == "zwsp" and len(word) > 2:
        return ZWSP.join(word)
    if how == "mixed":
        return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in word)
    return word


def resolve_keys(rng: random.Random, text: str, evade_p: float) -> tuple[str, bool]:
    """Drop the [brackets], obfuscating one key word with probability ``evade_p``."""
    keys = _KEY.findall(text)
    if not keys:
        return text, False
    target = rng.randrange(len(keys)) if rng.random() < evade_p else -1
    state = {"i": 0, "evaded": False}

    def repl(m: re.Match[str]) -> str:
        word = m.group(1)
        if state["i"] == target:
            out = evade(rng, word)
            state["evaded"] = out != word
        else:
            out = word
        state["i"] += 1
        return out

    out = _KEY.sub(repl, text)
    return out, bool(state["evaded"])
