"""Normalisation against evasion, and whole-word matching that leaves innocent words alone."""

from __future__ import annotations

import pytest

from toxicity.lexicon import Lexicon
from toxicity.normalize import normalize, tokens, word_variants


@pytest.mark.parametrize(
    ("evasion", "folded"),
    [
        ("f.u.c.k", "fuck"),
        ("f-u-c-k you", "fuck you"),
        ("f u c k off", "fuck off"),
        ("f*u*c*k", "fuck"),
        ("fцck", "fuck"),  # Cyrillic tse
        ("fսck", "fuck"),  # Armenian vo
        ("ｆｕｃｋ", "fuck"),  # full-width
        ("𝐟𝐮𝐜𝐤", "fuck"),  # mathematical bold
        ("fu\u200bck", "fuck"),  # zero-width space
        ("f\u00adu\u200dck", "fuck"),  # soft hyphen, zero-width joiner
        ("fúçk", "fuck"),  # accents
        ("sh1t", "shit"),
        ("@ss", "ass"),
        ("a$$hole", "asshole"),
        ("b!tch", "bitch"),
        ("SHIT", "shit"),
    ],
)
def test_evasions_fold_to_the_plain_word(evasion: str, folded: str) -> None:
    assert normalize(evasion) == folded


@pytest.mark.parametrize(
    "text", ["I am 25 years old", "hi! how are you?", "u r a star", "route 66"]
)
def test_ordinary_text_keeps_its_words(text: str) -> None:
    assert normalize(text) == text.lower()


def test_word_variants_only_shorten() -> None:
    assert word_variants("fuuuuck")[-1] == "fuck"
    assert word_variants("as") == ("as",)
    assert "ass" in word_variants("asssss")


@pytest.mark.parametrize(
    "text",
    [
        "Scunthorpe United won on Saturday",
        "the assassin escaped",
        "we toured the cockpit",
        "a classic bass line",
        "Penistone and Cockermouth are towns",
        "as far as I know",
        "shitake mushrooms",  # not a listed word as a whole
    ],
)
def test_innocent_words_do_not_count(text: str) -> None:
    hits = Lexicon.default().scan(normalize(text))
    assert hits.profanity == 0, hits
    assert hits.hard_slurs == 0


@pytest.mark.parametrize(
    "text", ["f.u.c.k you", "fцck you", "f u c k you", "fuuuuuck you", "f*ck you", "sh1t", "a$$"]
)
def test_evasive_profanity_counts(text: str) -> None:
    assert Lexicon.default().scan(normalize(text)).profanity == 1


def test_hard_slurs_are_their_own_kind() -> None:
    lexicon = Lexicon.default()
    slur = sorted(lexicon.hard_slurs)[0]
    evaded = ".".join(slur)  # s.l.u.r
    hits = lexicon.scan(normalize(f"you {evaded}"))
    assert hits.hard_slurs == 1
    assert hits.profanity == 0


def test_reclaimed_slurs_count_for_the_model_but_not_as_hard_slurs() -> None:
    lexicon = Lexicon.default()
    word = sorted(lexicon.reclaimed_slurs)[0]
    hard = sorted(lexicon.hard_slurs)[0]
    masked = word[0] + "*" * (len(word) - 2) + word[-1]  # n***a
    for text in (f"yo {word}", f"yo {'.'.join(word)}", f"yo {word}s", f"yo {masked}"):
        hits = lexicon.scan(normalize(text))
        assert (hits.hard_slurs, hits.reclaimed_slurs, hits.profanity) == (0, 1, 0), text
        assert hits.slurs == 1 and hits.listed
    both = lexicon.scan(normalize(f"{word} {hard}"))
    assert (both.hard_slurs, both.reclaimed_slurs, both.slurs) == (1, 1, 2)
    assert not lexicon.hard_slurs & lexicon.reclaimed_slurs


def test_identity_words_are_not_profanity() -> None:
    hits = Lexicon.default().scan(normalize("gay people and god and my pot plant"))
    assert hits.profanity == 0


def test_tokens_keep_masks_whole() -> None:
    assert tokens("what the f*ck") == ["what", "the", "f*ck"]
