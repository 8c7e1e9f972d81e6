"""The chat generator's phrase data, read once from ``devkit/data/chat_phrases.json``.

The phrases are data, not code: a new greeting or insult is a line in the JSON file. Lists come
back as tuples (the generator concatenates and samples them, and nothing may change them), in
file order: the generator draws from them with a seeded RNG, so reordering a list changes its
output for every seed.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, cast

PHRASES_FILE = "data/chat_phrases.json"


def _frozen(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    if isinstance(value, dict):
        return {key: _frozen(item) for key, item in value.items()}
    return value


def load_phrases() -> dict[str, Any]:
    """Every table of the phrase file by its name (``streamers``, ``toxic``, ...)."""
    raw = resources.files("devkit").joinpath(PHRASES_FILE).read_text(encoding="utf-8")
    tables = json.loads(raw)
    tables.pop("_about", None)
    return cast(dict[str, Any], _frozen(tables))


_TABLES = load_phrases()
Words = tuple[str, ...]

STREAMERS = cast(tuple[tuple[str, str], ...], _TABLES["streamers"])
RAIDERS = cast(Words, _TABLES["raiders"])
# Per game: its bosses, items and places.
GAMES = cast(dict[str, dict[str, Words]], _TABLES["games"])
OTHER_GAMES = cast(Words, _TABLES["other_games"])
COUNTRIES = cast(Words, _TABLES["countries"])
CITIES = cast(Words, _TABLES["cities"])
RANKS = cast(Words, _TABLES["ranks"])
NUMBERS = cast(tuple[int, ...], _TABLES["numbers"])
GLOBAL_EMOTES = cast(Words, _TABLES["global_emotes"])
CHANNEL_EMOTE_SUFFIXES = cast(Words, _TABLES["channel_emote_suffixes"])
# Name parts for generated user names (Twitch-like: letters, digits, underscores).
NAME_ADJ = cast(Words, _TABLES["name_adj"])
NAME_NOUN = cast(Words, _TABLES["name_noun"])
NAME_FIRST = cast(Words, _TABLES["name_first"])
GREETINGS = cast(Words, _TABLES["greetings"])
REACTIONS = cast(Words, _TABLES["reactions"])
# Event-specific reactions for hype bursts.
EVENTS = cast(dict[str, Words], _TABLES["events"])
EVENT_EMOTES = cast(dict[str, Words], _TABLES["event_emotes"])
BROADCASTER_EVENT_LINES = cast(dict[str, Words], _TABLES["broadcaster_event_lines"])
QUESTIONS = cast(Words, _TABLES["questions"])
BACKSEAT = cast(Words, _TABLES["backseat"])
BANTER = cast(Words, _TABLES["banter"])
CHATTER = cast(Words, _TABLES["chatter"])
COMMANDS = cast(Words, _TABLES["commands"])
# Hard negatives: rude-looking words, profanity in a positive sense, gameplay violence, the
# Scunthorpe problem, identity terms used neutrally, and chat talking about moderation.
BORDERLINE = cast(Words, _TABLES["borderline"])
MOD_LINES = cast(Words, _TABLES["mod_lines"])
MOD_ACTIONS = cast(Words, _TABLES["mod_actions"])
MOD_BACKSEAT = cast(Words, _TABLES["mod_backseat"])
BROADCASTER_LINES = cast(Words, _TABLES["broadcaster_lines"])
BROADCASTER_ANSWERS = cast(Words, _TABLES["broadcaster_answers"])
LINKS = cast(Words, _TABLES["links"])
SPAM = cast(Words, _TABLES["spam"])
SPAM_DOMAINS = cast(Words, _TABLES["spam_domains"])
ATTACHMENT_CAPTIONS = cast(Words, _TABLES["attachment_captions"])
# (file extension, content type)
ATTACHMENT_TYPES = cast(tuple[tuple[str, str], ...], _TABLES["attachment_types"])
# Copypasta, filled once per stream so that every wave repeats the exact same text.
COPYPASTAS = cast(Words, _TABLES["copypastas"])
RAID_TEMPLATES = cast(Words, _TABLES["raid_templates"])
RAID_WELCOMES = cast(Words, _TABLES["raid_welcomes"])
RAID_THANKS = cast(Words, _TABLES["raid_thanks"])
GIFT_HYPE = cast(Words, _TABLES["gift_hype"])
CHAT_ON_TROLL = cast(Words, _TABLES["chat_on_troll"])
# Toxic lines per category, and how often each category is drawn.
TOXIC = cast(dict[str, Words], _TABLES["toxic"])
TOXIC_WEIGHTS = cast(dict[str, float], _TABLES["toxic_weights"])
# Slurs are here because a moderation model must be shown them; they only appear in toxic lines.
SLURS = cast(Words, _TABLES["slurs"])
