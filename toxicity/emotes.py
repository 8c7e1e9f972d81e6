"""Emotes and short reactions: the words of livestream chat that carry no harm.

Chat on Twitch, YouTube and Discord is full of tokens that are not words: global and
third-party emote codes (``Kappa``, ``KEKW``, ``PogChamp``, ``monkaS``, ``LUL``), channel emotes
made of a prefix and a CamelCase name (``xqcL``, ``pokiHype``), Discord custom emotes
(``<:pepega:1234>``, ``:pepehands:``), Unicode emoji, and one-word reactions (``F``, ``W``,
``L``, ``lol``, ``lmao``, ``gg``, ``+2``). A text model trained on comments has never seen them
and reads ``LMAO`` as shouting or ``F`` as the first letter of a swear word. This module names
them, so that the model's features, the emote-wall detector and the chat training data agree on
what an emote is.

The lists are curated for recall on common emotes, not completeness: a channel's own emotes
follow the prefix + CamelCase pattern, which :func:`is_emote` recognises without a list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache


def _words(block: str) -> frozenset[str]:
    return frozenset(block.split())


# Global Twitch emotes and the most used BTTV / FFZ / 7TV ones (case as typed).
EMOTE_CODES: frozenset[str] = _words(
    """
    Kappa KappaPride Keepo PogChamp Pog POGGERS PogU Poggies PogO LUL LULW OMEGALUL KEKW KEK
    Kreygasm BibleThump ResidentSleeper NotLikeThis SeemsGood VoHiYo TriHard cmonBruh
    FailFish BabyRage DansGame SwiftRage WutFace 4Head 5Head 3Head EZ Clap HeyGuys
    CoolStoryBob MingLee PJSalt SMOrc TheIlluminati CoolCat DoritosChip Jebaited
    HSWP PunOko BloodTrail GivePLZ TakeNRG Squid1 Squid2 Squid3 Squid4 PopCorn PogBones
    monkaS monkaW monkaHmm monkaGun monkaOMEGA Pepega PepeHands PepeLaugh pepeLaugh PepeJAM
    peepoHappy peepoSad peepoClap peepoLeave peepoArrive peepoShy peepoGiggles FeelsBadMan
    FeelsGoodMan FeelsOkayMan FeelsStrongMan FeelsWeirdMan FeelsDankMan widepeepoHappy
    widepeepoSad Sadge Madge Bedge Okayge Clueless COPIUM Copium HOPIUM Aware Stare
    catJAM ratJAM pepeD PepePls pepeMeltdown forsenCD forsenE weSmart WeirdChamp weirdChamp
    Kippa KomodoHype LuvOops LUL OhMyDog PogChamp TwitchUnity TwitchVotes SourPls
    AYAYA Kapp KEKWait KEKL ICANT OMEGADANCE GIGACHAD Chad Chatting HUH Susge SUSSY
    Deadge Despairge Smoge Gladge Hmm HYPERS PauseChamp monkaTOS NOPERS NODDERS YEP NOPE
    YEPP Nerdge nerd modCheck Pepege PepoThink widepeepoBlanket ppL ppHop ppOverheat
    BOOBA sadCat Stonks Pepelaugh LETSGO LETSGOO GIGACHAD xdd xdding Classic ReallyMad
    BRUH OOOO TeaTime Wokege Shruge Listening Dentge Okayeg docnotL pepoG
    """
)

# One-token reactions: harmless on their own in chat, whatever a comment model thinks of them.
REACTIONS: frozenset[str] = _words(
    """
    f w l ww www ll lll ff fff o7 gg ggs ggwp gg wp ez lol lool loool lul lmao lmfao lmaoo
    rofl rofl kek kekw xd xdd xddd ha haha hahaha hehe heh hah ahah jaja kk ok okay k yes no
    yep nope yea yeah ye nah nahh pog poggers omg omfg wtf wow woah whoa damn dayum sheesh
    bruh bro brooo bro what true real based cringe ratio clutch clean nice nt ns gj wp ty tysm
    ily hi hello hey yo sup gn gm bye cya o/ \\o o\\ 7 +1 +2 -1 -2 1 2 w's l's dub
    """
)

# Discord custom emotes (<:name:id>, <a:name:id>) and shortcodes (:name:).
_DISCORD_EMOTE = re.compile(r"<a?:\w{2,32}:\d{5,25}>|:[a-z0-9_+\-]{2,32}:", re.IGNORECASE)
# Channel emotes: a short lower-case prefix and a capitalised name (pokiHype, xqcL, lirikGasm).
_CHANNEL_EMOTE = re.compile(r"^[a-z][a-z0-9]{1,9}[A-Z][A-Za-z0-9]{0,15}$")
_RUN = re.compile(r"(.)\1+")
_TOKEN = re.compile(r"<a?:\w+:\d+>|\S+")
_STRIP = ".,!?…~\"'()[]{}"


def _is_emoji(char: str) -> bool:
    code = ord(char)
    return (
        0x1F000 <= code <= 0x1FAFF
        or 0x2600 <= code <= 0x27BF
        or 0x2B00 <= code <= 0x2BFF
        or 0xFE00 <= code <= 0xFE0F
        or code == 0x200D
    )


# Chat repeats its tokens ("lol", "KEKW", "the"): the token tests below are remembered.
_TOKENS_REMEMBERED = 1 << 16


@lru_cache(maxsize=_TOKENS_REMEMBERED)
def is_emoji_run(token: str) -> bool:
    """A token made only of Unicode emoji (with their joiners and variation selectors)."""
    return bool(token) and all(_is_emoji(char) for char in token)


@lru_cache(maxsize=_TOKENS_REMEMBERED)
def is_emote(token: str) -> bool:
    """A single emote: a known code, a channel emote, a Discord emote, or emoji only."""
    if token in EMOTE_CODES or is_emoji_run(token):
        return True
    if _DISCORD_EMOTE.fullmatch(token):
        return True
    return bool(_CHANNEL_EMOTE.match(token))


@lru_cache(maxsize=_TOKENS_REMEMBERED)
def is_reaction(token: str) -> bool:
    """A one-word chat reaction (``F``, ``W``, ``lol``, ``gg``, ``LMAOOO``)."""
    word = token.strip(_STRIP).lower()
    if not word:
        return bool(token.strip())  # punctuation only ("?", "!!!") is a reaction too
    if word in REACTIONS:
        return True
    # Stretched forms: lmaooooo, hahahaha, loool, wwwww, xdddd.
    squeezed = _RUN.sub(r"\1", word)
    return squeezed in {"lmao", "lol", "ha", "w", "l", "f", "xd", "kek", "bruh", "gg", "omg"} or (
        set(word) <= set("ha") and len(word) >= 2
    )


@dataclass(frozen=True)
class EmoteShape:
    """How much of a text is emotes and reactions."""

    tokens: int
    emotes: int
    reactions: int
    distinct_emotes: int

    @property
    def only_emotes_or_reactions(self) -> bool:
        """Every token is an emote or a reaction (``KEKW KEKW``, ``F``, ``lol W``)."""
        return self.tokens > 0 and self.emotes + self.reactions == self.tokens

    @property
    def emote_ratio(self) -> float:
        return self.emotes / self.tokens if self.tokens else 0.0


def emote_shape(text: str) -> EmoteShape:
    """Count the emotes and reactions among the whitespace tokens of ``text`` (raw, not
    normalised: emote codes are case-sensitive, ``LUL`` is an emote where ``lul`` is a word)."""
    found = _TOKEN.findall(text)
    emotes = [token for token in found if is_emote(token.strip(_STRIP) or token)]
    reactions = sum(1 for token in found if not is_emote(token) and is_reaction(token))
    return EmoteShape(
        tokens=len(found),
        emotes=len(emotes),
        reactions=reactions,
        distinct_emotes=len(set(emotes)),
    )
