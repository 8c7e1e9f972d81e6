"""What counts as an emote or a one-word reaction: the tokens chat models misread."""

from __future__ import annotations

import pytest

from toxicity.emotes import emote_shape, is_emote, is_reaction


@pytest.mark.parametrize(
    "token",
    ["Kappa", "KEKW", "OMEGALUL", "pokiHype", "xqcL", "<:pepega:123456789>", ":pepehands:", "😂😂"],
)
def test_emotes_are_recognised(token: str) -> None:
    assert is_emote(token)


@pytest.mark.parametrize("token", ["iPhone", "hello", "idiot", "McDonalds", "YouTube", "kys"])
def test_words_are_not_emotes(token: str) -> None:
    assert not is_emote(token)


@pytest.mark.parametrize("token", ["F", "W", "L", "lol", "LMAOOOO", "hahahaha", "gg", "o7", "???"])
def test_reactions_are_recognised(token: str) -> None:
    assert is_reaction(token)


@pytest.mark.parametrize("token", ["kys", "trash", "idiot", "die", "kill"])
def test_harmful_words_are_not_reactions(token: str) -> None:
    assert not is_reaction(token)


@pytest.mark.parametrize(
    ("text", "only"),
    [
        ("KEKW KEKW KEKW", True),
        ("F", True),
        ("lol W", True),
        ("LUL LUL kys", False),
        ("kill the boss", False),
        ("", False),
    ],
)
def test_emote_shape_only_emotes_or_reactions(text: str, only: bool) -> None:
    assert emote_shape(text).only_emotes_or_reactions is only


def test_emote_shape_counts() -> None:
    shape = emote_shape("PogChamp PogChamp that was clean KEKW")
    assert (shape.tokens, shape.emotes, shape.distinct_emotes) == (6, 3, 2)
    assert shape.emote_ratio == pytest.approx(0.5)
