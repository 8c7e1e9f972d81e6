"""Seeded generator of realistic livestream chat: the bundled sample, test data and load.

The model is one Twitch-like stream (one community, one channel) seen through a replay
adapter. Everything comes from one :class:`random.Random` seeded by the caller, so the same
seed (and the same arguments) gives byte-identical output; only the standard library is used.

What is modelled
----------------
* **Population.** A few hundred regulars with Zipf-like activity (a handful of chatters write a
  large share of the lines), generated names and numeric user ids, and roles: one
  ``broadcaster`` (the streamer), a few ``moderator`` and ``vip`` users, many ``subscriber``
  badges. Newcomers, spam bots, trolls on fresh accounts and raiders join as the stream runs.
* **Chat.** Greetings, reactions to gameplay, questions to the streamer (which the streamer or a
  mod sometimes answers with a reply), backseating, banter with @mentions and replies
  (``reply_to`` an earlier message id), chat commands, links, rare image attachments, emote
  spam, copypasta that many users repeat, hype bursts after gameplay moments, gift-sub trains,
  quiet lulls and raids (a burst of new users posting the same raid message within seconds).
* **Toxicity.** About 10% of the lines are toxic (the ground truth): insults aimed at the
  streamer or at chatters, aggressive profanity, harassment, identity hate, a small number of
  slurs, and evasions of the key word (leetspeak, ``f.u.c.k``, spaced letters, Cyrillic
  homoglyphs, stretched letters, asterisks, zero-width spaces). Hard negatives are mixed in:
  profanity used positively ("holy shit that was insane"), the Scunthorpe problem ("Scunthorpe",
  "assassin", "cockpit", "Sussex"), gameplay violence ("kill him!") and people talking *about*
  moderation. Spam links are not counted as toxic. All phrases were written for this project.
* **Time.** ``sent_at`` starts at a fixed instant and advances by exponential gaps: about 80
  messages a minute in ordinary chat, several per second in bursts and raids, slower in lulls.
  ``received_at`` is a few ms to 200 ms later. Timestamps are ISO-8601 with a zone.

Each message is a plain dict that validates as :class:`schemas.events.ChatMessage`; the ground
truth never goes into the payload but travels beside it (:class:`Generated`).

Library use
-----------
>>> pairs = generate(seed=7, count=100)            # [(message_dict, toxic), ...]
>>> items = list(iter_generated(seed=7, count=100))  # Generated(message, toxic, kind)
>>> load = load_messages(100_000, seed=1, repetition=0.3, raid_every=2_000, unique=False)

Command line
------------
``python -m ingest.chatgen --seed 7 --count 3000 --out ingest/samples/livestream.jsonl``
(add ``--labels FILE`` for a ``{message_id, toxic, kind}`` JSONL, ``--load`` with
``--repetition``/``--raid-every``/``--unique``/``--rate`` for a benchmark stream).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple, TextIO

__all__ = [
    "DEFAULT_CHANNEL",
    "DEFAULT_COMMUNITY",
    "DEFAULT_START",
    "ChatGenerator",
    "Generated",
    "User",
    "counter_word",
    "generate",
    "iter_generated",
    "iter_load",
    "load_messages",
    "main",
    "to_json_line",
]

DEFAULT_COMMUNITY = "stream-demo"
DEFAULT_CHANNEL = "#main"
DEFAULT_START = datetime(2024, 6, 15, 18, 0, 0, tzinfo=UTC)
PLATFORM = "replay"

# Mean gap between two ordinary chat lines (ms): with bursts, raids and lulls the whole
# stream averages about 80 messages a minute.
NORMAL_GAP_MS = 900.0
NATURAL_RATE_PER_S = 80 / 60

# --------------------------------------------------------------------------------------------
# Vocabulary. Slots in braces are filled at random ({emote} twice gives two draws); a word in
# [brackets] is a toxic line's key word, the one an evasion may obfuscate.
# --------------------------------------------------------------------------------------------

STREAMERS: tuple[tuple[str, str], ...] = (
    ("PixelPaladin", "he"),
    ("MossyMira", "she"),
    ("CaptainKettle", "he"),
    ("LunaByte", "she"),
    ("SirNoodles", "he"),
    ("VelvetVortex", "she"),
    ("TacoTactician", "he"),
    ("NimbusNika", "she"),
    ("QuietQuasar", "he"),
    ("RustyRonin", "he"),
)

RAIDERS = (
    "NightOwlNova",
    "CrumbCaptain",
    "LoopyLuna",
    "SnackalotSir",
    "PixieByteTV",
    "GrumpyGrizzly",
    "WaffleWizardry",
    "OrbitOtter",
    "StaticSunny",
    "DuskDrifter",
    "MapleMarauder",
    "HexHarbor",
)

GAMES: dict[str, dict[str, tuple[str, ...]]] = {
    "Elden Ring": {
        "boss": ("Malenia", "Margit", "Radahn", "Godrick", "Maliketh", "Rennala", "the Fire Giant"),
        "item": (
            "Rivers of Blood",
            "the Moonveil",
            "a Golden Seed",
            "the Bloodhound's Fang",
            "the flask",
            "the mimic tear",
        ),
        "place": ("Limgrave", "Caelid", "Liurnia", "the Haligtree", "Leyndell", "Stormveil"),
    },
    "Hollow Knight": {
        "boss": ("Hornet", "the Mantis Lords", "Nosk", "the Radiance", "Soul Master", "Grimm"),
        "item": (
            "Quick Slash",
            "the Mantis Claw",
            "Shaman Stone",
            "Unbreakable Strength",
            "the Dream Nail",
            "a mask shard",
        ),
        "place": ("Greenpath", "City of Tears", "Deepnest", "the Crossroads", "Crystal Peak"),
    },
    "Valorant": {
        "boss": ("the enemy Jett", "their Reyna", "the Chamber", "the last guy", "a 5-stack"),
        "item": (
            "the Vandal",
            "the Phantom",
            "the Operator",
            "a Sheriff",
            "the Spectre",
            "shields",
        ),
        "place": ("A site", "B main", "mid", "heaven", "their spawn", "C long"),
    },
    "Apex Legends": {
        "boss": ("the full squad", "that Wraith", "the third party", "the champion squad"),
        "item": (
            "the Peacekeeper",
            "a purple shield",
            "the Wingman",
            "the R-99",
            "a gold backpack",
            "the Mozambique",
        ),
        "place": ("the ring", "Fragment", "the high ground", "the zipline", "the storm"),
    },
    "Minecraft": {
        "boss": ("the Ender Dragon", "the Warden", "a creeper", "the Wither", "that skeleton"),
        "item": (
            "a diamond pickaxe",
            "the elytra",
            "an ender pearl",
            "a water bucket",
            "a totem",
            "the netherite sword",
        ),
        "place": ("the Nether", "the End", "the stronghold", "the village", "the base"),
    },
    "Celeste": {
        "boss": ("Badeline", "the wind section", "the Core", "Oshiro", "the seekers"),
        "item": ("the golden strawberry", "a crystal heart", "a cassette tape", "the dash crystal"),
        "place": ("Forsaken City", "the Summit", "Mirror Temple", "Golden Ridge", "Farewell"),
    },
    "Baldur's Gate 3": {
        "boss": ("Orin", "Ketheric", "the hag", "a mind flayer", "Raphael", "the Absolute"),
        "item": (
            "a scroll of revivify",
            "the Bloodthirst daggers",
            "a potion of speed",
            "Phalar Aluve",
            "the Nyrulna",
        ),
        "place": ("the Underdark", "Moonrise Towers", "the Grove", "Baldur's Gate", "the camp"),
    },
}

OTHER_GAMES = (
    "Hades II",
    "Balatro",
    "Dark Souls III",
    "Stardew Valley",
    "Rocket League",
    "Lethal Company",
    "Sekiro",
    "Factorio",
    "Fortnite",
    "League of Legends",
    "Zelda",
    "Terraria",
    "Outer Wilds",
    "Slay the Spire",
)

COUNTRIES = (
    "Brazil",
    "Germany",
    "Poland",
    "Canada",
    "the UK",
    "Sweden",
    "Mexico",
    "Japan",
    "the Philippines",
    "Australia",
    "Nigeria",
    "India",
    "France",
    "Chile",
    "Finland",
    "Spain",
    "Turkey",
    "Egypt",
    "Korea",
    "Argentina",
    "Norway",
    "Italy",
    "Vietnam",
    "Kenya",
)

CITIES = (
    "Berlin",
    "Toronto",
    "Manila",
    "Lagos",
    "Sao Paulo",
    "Warsaw",
    "Melbourne",
    "Austin",
    "Lyon",
    "Osaka",
    "Helsinki",
    "Leeds",
    "Denver",
    "Cairo",
    "Seoul",
    "Madrid",
)

RANKS = ("Gold 2", "Plat 1", "Diamond 3", "Immortal 1", "Ascendant 2", "Masters", "Silver 4")

NUMBERS = (2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 25, 30, 40, 50, 69, 100, 200, 300, 500, 1000)

GLOBAL_EMOTES = (
    "KEKW",
    "PogChamp",
    "LUL",
    "monkaS",
    "OMEGALUL",
    "Kappa",
    "PogU",
    "Pog",
    "PepeHands",
    "Sadge",
    "EZ",
    "Clap",
    "catJAM",
    "pepeLaugh",
    "LULW",
    "5Head",
    "HeyGuys",
    "VoHiYo",
    "BibleThump",
    "DansGame",
    "ResidentSleeper",
    "NotLikeThis",
    "WutFace",
    "SeemsGood",
    "Kreygasm",
    "Jebaited",
    "4Head",
    "FeelsGoodMan",
    "FeelsBadMan",
    "FeelsStrongMan",
    "widepeepoHappy",
    "peepoClap",
    "monkaW",
    "Aware",
    "Copium",
    "Clueless",
    "ICANT",
    "HUH",
    "GIGACHAD",
    "o7",
    "<3",
)
CHANNEL_EMOTE_SUFFIXES = ("Hype", "Love", "GG", "Rage", "Cozy", "Wave", "Lul", "Pog")

# Name parts for generated user names (Twitch-like: letters, digits, underscores).
NAME_ADJ = (
    "sleepy",
    "salty",
    "cosmic",
    "pixel",
    "lazy",
    "spicy",
    "frosty",
    "neon",
    "silent",
    "lucky",
    "grumpy",
    "fuzzy",
    "mighty",
    "tiny",
    "crispy",
    "shadow",
    "golden",
    "rusty",
    "wild",
    "quiet",
    "happy",
    "stormy",
    "velvet",
    "turbo",
    "moody",
    "sneaky",
    "chill",
    "brave",
    "hollow",
    "lunar",
)
NAME_NOUN = (
    "otter",
    "panda",
    "falcon",
    "noodle",
    "wizard",
    "goblin",
    "toast",
    "raccoon",
    "knight",
    "badger",
    "phoenix",
    "tofu",
    "moth",
    "gecko",
    "waffle",
    "ronin",
    "viper",
    "pancake",
    "sloth",
    "bard",
    "kraken",
    "yeti",
    "ferret",
    "comet",
    "biscuit",
    "golem",
    "llama",
    "specter",
    "mango",
    "pigeon",
)
NAME_FIRST = (
    "rin",
    "alex",
    "sam",
    "mika",
    "jo",
    "kai",
    "lena",
    "theo",
    "nova",
    "ash",
    "ivy",
    "leo",
    "mara",
    "finn",
    "zoe",
    "omar",
    "yuki",
    "ravi",
    "nina",
    "tomas",
    "ada",
    "bo",
    "cleo",
    "dev",
)

GREETINGS = (
    "hi {streamer}",
    "hello chat",
    "hey {streamer} {emote}",
    "yo",
    "hiii",
    "good evening everyone",
    "good morning from {country}",
    "hi from {country} {emote}",
    "first time here, love the vibes",
    "just got here what did I miss?",
    "back from work, what's happening",
    "evening chat",
    "HeyGuys",
    "VoHiYo",
    "o7 {streamer}",
    "hey hey hey",
    "wassup {streamer}",
    "hi {streamer} hope you're having a good day",
    "made it just in time",
    "early today {emote}",
    "late again as usual",
    "hello from the lurk zone",
    "greetings from {city}",
    "sup chat",
    "howdy",
    "hey everyone <3",
    "hey {streamer}, how's the {game} run going?",
    "finally home, time for stream",
    "missed yesterday, what happened?",
    "long time no see chat",
    "hi mods, hi chat",
    "who's ready for {game} today",
    "notification gang {emote}",
    "lunch break stream {emote}",
    "can't sleep so here i am",
    "hi {streamer} and hi chat {emote}",
)

REACTIONS = (
    "LMAO",
    "that was clean",
    "gg",
    "no way",
    "NO WAY",
    "CLIP IT",
    "clip that",
    "what a play",
    "{prs} cracked",
    "insane",
    "bro what",
    "how",
    "HOW",
    "that was so close",
    "ez",
    "EZ Clap",
    "nice",
    "niceee",
    "LETS GOOO",
    "W",
    "huge W",
    "L",
    "unlucky",
    "F",
    "rip",
    "oof",
    "that hurt to watch",
    "NOOOO",
    "yesss",
    "cleanest thing i've seen all week",
    "calculated",
    "100% planned",
    "{pr} planned that",
    "filthy",
    "the timing on that",
    "actual aimbot",
    "{n} IQ play",
    "big brain",
    "galaxy brain play",
    "I can't watch",
    "my heart can't take this",
    "lol",
    "lmaoo",
    "HAHAHA",
    "im crying",
    "i'm wheezing",
    "that was hilarious",
    "chat did you see that",
    "replay that",
    "wait what just happened",
    "???",
    "?",
    "BRO",
    "sheesh",
    "SHEESH",
    "yikes",
    "close one",
    "so scuffed {emote}",
    "{pr} got baited",
    "outplayed",
    "respect",
    "+1",
    "true",
    "REAL",
    "based",
    "W streamer",
    "W chat",
    "CONTENT",
    "peak content",
    "this is cinema",
    "actual movie",
    "{prs} him",
    "GOATED",
    "skill issue {emote}",
    "{prs} so bad at this {emote}",
    "classic {streamer}",
    "every single time",
    "it's the {item} for me",
    "{boss} diff",
    "{streamer} in {place} is peak",
)

# Event-specific reactions for hype bursts.
EVENTS: dict[str, tuple[str, ...]] = {
    "clutch": (
        "CLUTCH",
        "NO WAY {pr} CLUTCHED",
        "1v{team} LETS GO",
        "that was clean",
        "CLIP IT",
        "{emote} {emote} {emote}",
        "HOLY",
        "{prs} HIM",
        "the comeback",
        "absolutely cracked",
        "how did that work",
        "never doubted for a second",
        "i doubted, i'm sorry",
        "reflexes of a cat",
    ),
    "fail": (
        "KEKW",
        "LUL",
        "OMEGALUL",
        "F",
        "unlucky",
        "skill issue",
        "rip run",
        "nooooo",
        "that was so avoidable",
        "saw that coming",
        "classic",
        "every time {emote}",
        "the edge got {pronoun_obj}",
        "gravity wins again",
        "{boss} said no",
        "that's {n} deaths now",
        "F in the chat",
        "it's ok we go again",
    ),
    "jumpscare": (
        "monkaS",
        "monkaW",
        "WutFace",
        "{pr} jumped LMAO",
        "I jumped too",
        "HUH",
        "what was THAT",
        "nope nope nope",
        "chat im scared",
        "my headphones {emote}",
        "i spilled my drink",
    ),
    "win": (
        "GG",
        "gg",
        "GGs",
        "LETS GOOOO",
        "FINALLY",
        "took {n} tries",
        "PogU",
        "Clap",
        "EZ Clap",
        "{pr} did it",
        "deserved",
        "{boss} down {emote}",
        "first try (it was not first try)",
        "proud of you {streamer}",
    ),
    "funny": (
        "LMAO",
        "KEKW",
        "OMEGALUL",
        "im dead",
        "that physics",
        "the ragdoll {emote}",
        "bro flew",
        "LUL",
        "ICANT",
        "that npc is my favorite character now",
        "not the {item} {emote}",
        "the audacity",
    ),
}
EVENT_EMOTES: dict[str, tuple[str, ...]] = {
    "clutch": ("PogChamp", "PogU", "Pog", "GIGACHAD", "Clap"),
    "fail": ("KEKW", "LUL", "OMEGALUL", "PepeHands", "Sadge", "NotLikeThis"),
    "jumpscare": ("monkaS", "monkaW", "WutFace", "HUH"),
    "win": ("PogChamp", "Clap", "EZ", "peepoClap", "FeelsStrongMan"),
    "funny": ("KEKW", "LULW", "OMEGALUL", "ICANT", "pepeLaugh"),
}
BROADCASTER_EVENT_LINES: dict[str, tuple[str, ...]] = {
    "clutch": ("CHAT DID YOU SEE THAT", "no way that worked", "I'm actually cracked"),
    "fail": ("noooo", "how did I not see that", "chat why didn't you tell me", "we go again"),
    "jumpscare": ("NOPE", "I hate this game", "why would they do that"),
    "win": ("LETS GOOOO", "WE DID IT CHAT", "that took way too long"),
    "funny": ("what was that", "I'm crying", "chat stop laughing"),
}

QUESTIONS = (
    "what rank are you?",
    "what's your sens?",
    "what mouse is that?",
    "what keyboard do you use?",
    "how many hours do you have in {game}?",
    "are you playing {other_game} later?",
    "when's the next stream?",
    "is this your first playthrough?",
    "how long have you been streaming today?",
    "what's the song?",
    "song name?",
    "what build are you running?",
    "what's your favorite {game} boss so far?",
    "is the dog on stream today?",
    "how's the cat doing?",
    "do you have a discord?",
    "what time do you usually stream?",
    "did you beat {boss} yet?",
    "why not use {item}?",
    "is {item} good this patch?",
    "what settings are you on?",
    "what's your fps?",
    "what monitor is that?",
    "controller or mouse and keyboard?",
    "is {game} worth buying?",
    "would you recommend {game} for a new player?",
    "what did you have for dinner?",
    "are you going to the convention in {city}?",
    "thoughts on {other_game}?",
    "what's the goal for today?",
    "how many deaths so far?",
    "is chat allowed to backseat today?",
    "which difficulty is this?",
    "have you tried {other_game}?",
    "do you ever sleep?",
    "when is the sub goal?",
    "how did you get so good at {game}?",
    "are you doing a {hours} hour stream today?",
    "where are you from {streamer}?",
    "what's in the mug?",
    "is {place} the last area?",
)

BACKSEAT = (
    "go left",
    "go right",
    "behind you",
    "BEHIND YOU",
    "use your ult",
    "use {item}",
    "you missed the chest",
    "there was a chest back there",
    "check the map",
    "heal first",
    "heal up",
    "you should have bought {item}",
    "dodge roll",
    "roll!",
    "jump",
    "parry it",
    "wait for the opening",
    "don't go there",
    "reload",
    "swap weapons",
    "equip {item}",
    "level vigor",
    "you have {n} potions",
    "pick that up",
    "you forgot {item}",
    "talk to the npc again",
    "go back to {place}",
    "the lever is on the right",
    "aim for the head",
    "don't trust that guy",
    "save first",
    "turn around",
    "you're going the wrong way",
    "{boss} is weak to fire btw",
    "go to {place} first",
    "you can skip this part",
)

BANTER = (
    "@{user} true",
    "@{user} lol same",
    "@{user} welcome back",
    "@{user} fr",
    "@{user} hahaha",
    "@{user} no way you said that",
    "@{user} that's what I said",
    "@{user} facts",
    "@{user} how are you",
    "@{user} it's been a while!",
    "@{user} happy birthday!",
    "@{user} thanks!",
    "@{user} good question",
    "@{user} {pr} said like {hours} hours",
    "@{user} it's {item}",
    "@{user} check !commands",
    "@{user} {pr} answered that earlier",
    "@{user} nice name",
    "@{user} ty for the gift sub",
    "@{user} you're right",
    "@{user} {emote}",
    "@{user} LUL true",
    "@{user} lmao",
    "@{user} sleep well!",
    "@{user} gn!",
    "@{user} same timezone",
    "@{user} i'm from {country} too",
    "@{user} that clip was great",
    "@{user} you're cooking",
    "@{user} shhh no spoilers",
    "@{user} it's in {place}",
    "@{user} {pr} beat {boss} last stream",
    "@{user} agreed",
    "@{user} hi!! long time",
)

CHATTER = (
    "this song slaps",
    "just finished my homework",
    "anyone else watching from work?",
    "eating pizza rn",
    "my cat is watching too",
    "it's {hour} am here lol",
    "chat is so wholesome today",
    "I love this community",
    "lurking while I cook",
    "stream quality is great today",
    "audio is a bit low",
    "game audio is louder than the mic",
    "stream is lagging for me",
    "is it just me or is the stream buffering",
    "refresh fixed it",
    "the vibes today are immaculate",
    "need more coffee",
    "chat how do I get good at {game}",
    "bought {game} because of this stream",
    "i've been watching for {years} years now",
    "first stream I've caught live in weeks",
    "remember when {streamer} did the {hours} hour stream",
    "{item} is so underrated",
    "I keep dying to {boss} too",
    "my internet is so bad today",
    "the ending of {other_game} still hurts",
    "{other_game} was better honestly",
    "{game} soundtrack is elite",
    "it's raining here",
    "{deg} degrees outside today",
    "finally friday",
    "monday again Sadge",
    "work tomorrow Sadge",
    "should be sleeping",
    "chat what should I eat",
    "my dog just barked at the screen",
    "new emote when",
    "the overlay looks nice",
    "love the new camera",
    "hydrate chat",
    "posture check",
    "stretch break?",
    "{place} gives me anxiety",
    "can't wait for {other_game}",
    "watching on my phone in the bus",
    "this is my comfort stream",
    "chat, {game} or {other_game}?",
    "i got {rank} yesterday {emote}",
)

COMMANDS = (
    "!uptime",
    "!discord",
    "!sens",
    "!specs",
    "!lurk",
    "!socials",
    "!rank",
    "!deaths",
    "!song",
    "!commands",
    "!followage",
    "!points",
    "!hug @{user}",
    "!youtube",
    "!schedule",
    "!hydrate",
)

# Hard negatives: rude-looking words, profanity in a positive sense, gameplay violence, the
# Scunthorpe problem, identity terms used neutrally, and chat talking about moderation.
BORDERLINE = (
    "holy shit that was insane",
    "hell yeah",
    "HELL YEAH",
    "damn that was clean",
    "fuck yeah gg",
    "this game is fucking beautiful",
    "holy fuck {pr} did it",
    "what the hell was that lmao",
    "that boss is a bitch to fight",
    "I'm from Scunthorpe actually",
    "Scunthorpe United won today!",
    "Assassin's Creed next?",
    "the assassin build is so strong",
    "cockpit view is so immersive",
    "switch to the cockpit cam",
    "kill him!",
    "KILL HIM",
    "finish {pronoun_obj}",
    "{pr} murdered that boss",
    "you killed it today {streamer}",
    "i'm dead LMAO",
    "this is sick",
    "that's sick dude",
    "you're insane dude",
    "shoot him in the head",
    "blow it up",
    "the bass on this song",
    "I'm visiting Sussex next week",
    "anyone from Essex?",
    "Middlesex represent",
    "cocktail hour chat",
    "Dick's Sporting Goods had a sale",
    "{prs} a beast",
    "that was nasty",
    "stupidly good play",
    "damn son",
    "crap I missed it",
    "shit happens",
    "OH SHIT",
    "I hate this boss so much",
    "I hate mondays",
    "this boss deserves to die",
    "Penistone is a real town btw",
    "reading Emily Dickinson for class lol",
    "a titmouse is a bird chat, look it up",
    "spotted dick is a real dessert",
    "why did that guy call you trash? ignore {pronoun_obj}",
    "someone just said the f word in chat, mods?",
    "don't say kys chat, be nice",
    "calling people slurs isn't funny",
    "report the hate raiders chat",
    "I'm gay and this stream is my safe space <3",
    "as a woman gamer this run is inspiring",
    "happy pride month chat",
    "greetings from Niger!",
    "learning about the Niger river in geography rn",
    "my brother is autistic and loves your streams",
    "Black Ops next?",
    "white mage build when",
    "that enemy is a real pain in the ass",
    "my ass is glued to this chair, {n} hours",
    "bloody brilliant",
    "you absolute madman",
    "this run is criminal",
    "I'm literally shaking",
    "you're a menace {emote}",
    "I'd die for this streamer",
    "the grape soda is back",
)

MOD_LINES = (
    "please keep it civil chat",
    "@{user} no spoilers please",
    "@{user} no backseating unless asked",
    "@{user} keep it friendly",
    "reminder: be kind in chat",
    "chat, English only please",
    "no links without permission",
    "!rules",
    "welcome in everyone",
    "drink water chat",
    "@{user} please read the rules",
    "slow mode is on for a bit",
    "emote only mode is off",
    "subs only for 5 minutes",
    "@{user} thanks for reporting",
    "giveaway starts at the top of the hour",
    "clip of the week submissions are open",
    "don't feed the trolls chat",
)
MOD_ACTIONS = (
    "@{user} that's a timeout",
    "@{user} bye",
    "@{user} not okay, timed out",
    "@{user} keep it civil or you're out",
    "@{user} first and last warning",
    "@{user} banned, we don't do that here",
    "trolls handled, carry on chat",
)
MOD_BACKSEAT = (
    "@{user} no backseating unless asked please",
    "@{user} {pr} wants to figure it out alone",
    "@{user} hints only when asked pls",
)

BROADCASTER_LINES = (
    "thanks for the sub @{user}!",
    "@{user} thank you for the gift subs!!",
    "welcome in everyone",
    "ok chat one more try",
    "one more game then bed",
    "chat I'm locking in",
    "be right back, 2 minutes",
    "I'm back",
    "don't backseat pls I wanna figure it out",
    "I'm so bad at this lmao",
    "we go again",
    "that's a new PB chat!",
    "who's hyped for {other_game}?",
    "thanks for hanging out chat",
    "@{user} thank you so much <3",
    "ok that was lucky",
    "I'm not even mad",
    "hydrate everyone",
    "remember to follow if you're new",
    "{boss} is next chat, wish me luck",
    "I think {place} is the way",
)
BROADCASTER_ANSWERS = (
    "@{user} {hours} hours or so",
    "@{user} no idea honestly",
    "@{user} maybe tomorrow!",
    "@{user} it's in !specs",
    "@{user} yeah later tonight",
    "@{user} good question, I'll check",
    "@{user} first playthrough!",
    "@{user} not yet",
    "@{user} {rank} right now",
    "@{user} it's on the overlay",
    "@{user} {item}, always",
    "@{user} from {country}!",
)

LINKS = (
    "clip: https://clips.twitch.tv/{slug}",
    "check out this clip https://clips.twitch.tv/{slug}",
    "made a highlight https://youtu.be/{ytid}",
    "my fanart https://imgur.com/{imgid}",
    "the build I mentioned https://example.com/builds/{ytid}",
    "@{user} here https://clips.twitch.tv/{slug}",
    "the map for {place}: https://example.org/maps/{imgid}",
    "lol look https://imgur.com/{imgid}",
)
SPAM = (
    "Wanna become famous? Best viewers and followers on {spamdomain}",
    "cheap followers and primes at {spamdomain}",
    "hey i'm a small streamer, follow me back?",
    "free skins at {spamdomain} !!!",
    "Hello, I am a graphic designer, I can make emotes for your channel, DM me",
    "{streamer} check your DMs, brand deal for you {spamdomain}",
)
SPAM_DOMAINS = ("viewer-boost.example", "followz4u.example", "freeskinz.example")
ATTACHMENT_CAPTIONS = (
    "look at my setup",
    "my cat watching the stream",
    "fanart I made of {streamer}",
    "my score from last night",
    "this is {item} I meant",
    "screenshot of the bug",
    "",
    "drew this during the stream",
)
ATTACHMENT_TYPES = (("png", "image/png"), ("jpg", "image/jpeg"), ("gif", "image/gif"))

# Copypasta, filled once per stream so that every wave repeats the exact same text.
COPYPASTAS = (
    "{streamer} has played {game} for {n} hours and still walks into every single trap like "
    "it's the first time. This is not a bug. This is a lifestyle. Respect the lifestyle.",
    "Hello, I am the minimap. {streamer} has not looked at me in {n} days. I am lonely. If "
    "you see this, tell {streamer} I am still here, in the corner, waiting.",
    "Dear diary, today {streamer} said 'one more try' again. Attempt number {n}. I believed "
    "{pronoun_obj}. I always believe {pronoun_obj}. Chat, why do I keep believing?",
    "BREAKING NEWS: local streamer discovers the dodge button after {n} hours. Scientists "
    "are baffled. More at 11.",
    "I'm not backseating, I'm just strongly suggesting from the back seat with a map, a "
    "compass and {years} years of experience.",
    "If {streamer} beats {boss} today I will eat a spoon of mustard on camera. This is "
    "legally binding. Chat is my witness.",
    "Chat, stay calm. Do not type. Do not breathe. {streamer} is locked in. This is not a "
    "drill. {emote}",
    "This is a certified {streamer} moment. Please keep your arms and legs inside the stream "
    "at all times. Thank you for flying {streamer} Airlines.",
    "They said {streamer} could not do it. They said it was impossible. They were right, but "
    "it was fun to watch. {emote}",
    "Therapist: {streamer} dodging every attack isn't real, it can't hurt you. {streamer}: "
    "*dodges every attack*",
    "I've been here since the {n} viewer days and I have never been more proud of this "
    "community. Now everyone please type F for {item}.",
    "Step 1: open {game}. Step 2: die to the first enemy. Step 3: blame the controller. "
    "Step 4: repeat. The {streamer} speedrun strat.",
    "one more run, one more run, {streamer} said just one more run, now it's {hour} am and the "
    "sun is up, one more run {emote}",
)

RAID_TEMPLATES = (
    "{RAIDER} RAID {emote} {emote} {emote}",
    "{RAIDER} RAID PogChamp",
    "{RAIDER} ARMY HAS ARRIVED {emote}",
    "twitchRaid {raider} raid twitchRaid",
    "{raider} sent us, hello {streamer}! {emote}",
    "{RAIDER} RAID, leave a follow! <3",
    "the {raider} crew is here {emote}",
    "{RAIDER} RAID {RAIDER} RAID {RAIDER} RAID",
)
RAID_WELCOMES = (
    "welcome raiders!",
    "welcome in {raider} raiders {emote}",
    "hi raiders <3",
    "welcome raiders, grab a snack",
    "{emote} welcome raiders",
    "hello {raider} chat!",
)
RAID_THANKS = (
    "thank you so much for the raid @{raider}! how was your stream?",
    "welcome in raiders!! thanks @{raider} <3",
    "RAIDERS! welcome welcome, we're playing {game}",
)
GIFT_HYPE = (
    "W @{user}",
    "LETS GO {emote}",
    "thanks for the sub @{user}",
    "W gifter",
    "{emote} {emote}",
    "gifter W",
    "generous {emote}",
    "@{user} you're the best",
    "i got one! thanks @{user}",
)
CHAT_ON_TROLL = (
    "ignore the troll chat",
    "mods?",
    "@{user} yikes",
    "don't feed the troll",
    "reported",
    "bro who hurt you",
    "chat just ignore {pronoun_obj}",
    "why are people like this",
)

TOXIC: dict[str, tuple[str, ...]] = {
    "insult_streamer": (
        "{streamer} is [trash] at this game",
        "worst streamer on this site",
        "uninstall you [bot]",
        "you're so [dogshit] at {game} it's embarrassing",
        "[stupid] streamer can't even dodge",
        "why is this [idiot] so popular",
        "imagine being this [bad] and streaming it",
        "{streamer} you [clown] just quit",
        "[loser] streamer with a [loser] chat",
        "this [moron] can't read a map",
        "you are actually [braindead] {streamer}",
        "nobody likes you {streamer}",
        "your voice is [annoying] af shut up",
        "mute the mic [idiot]",
        "get a real job you [parasite]",
        "[pathetic] gameplay as always",
        "stfu and play you [clown]",
        "{streamer} is a [fucking] [joke]",
        "most [washed] streamer alive",
        "[cringe] [loser] lol",
        "how are you this [dumb]",
        "{streamer} has the IQ of a [rock]",
        "go cry about it [crybaby]",
        "[fat] [slob] can't even aim",
        "ugly [ass] streamer",
        "ur [garbage] and ur chat is [garbage]",
        "absolute [dogwater] player",
        "quit streaming nobody cares [loser]",
        "[dumbass] missed again",
        "you [suck] [ass] at {game}",
        "{streamer} is a [fraud] and everyone knows it",
        "this [idiot] died to {boss} again lmao [trash]",
    ),
    "insult_chatter": (
        "@{user} shut up you [idiot]",
        "@{user} nobody asked [loser]",
        "@{user} you're [braindead]",
        "@{user} go touch grass [nerd]",
        "@{user} stfu [clown]",
        "@{user} cry more [baby]",
        "@{user} imagine being this [stupid]",
        "@{user} you smell like a [dumpster]",
        "@{user} get out of this chat [freak]",
        "@{user} you're so [annoying] omg",
        "@{user} [dumbass] take",
        "@{user} you're [ugly] and [stupid]",
        "@{user} [moron]",
        "@{user} [worthless] opinion",
        "@{user} [pathetic] [simp]",
        "@{user} who let this [clown] in",
        "@{user} shut up nobody likes you [loser]",
        "@{user} [incel] behavior",
        "@{user} your takes are [garbage] like you",
        "chat is full of [idiots] today",
        "this chat is so [dumb]",
        "mods are [useless] [clowns]",
        "@{user} [kiss] my [ass]",
        "@{user} you're a [joke]",
        "@{user} go back to your [basement] [nerd]",
    ),
    "profanity": (
        "[fuck] this stream",
        "[fuck] you {streamer}",
        "shut the [fuck] up",
        "[fuck] off",
        "what the [fuck] is this [shit] gameplay",
        "this is [bullshit] you [suck]",
        "[fucking] [trash]",
        "[shit] streamer [shit] game",
        "[fuck] chat",
        "go [fuck] yourself",
        "[fuck] you and your [shitty] stream",
        "[asshole] streamer",
        "@{user} you [dickhead]",
        "@{user} [fuck] off",
        "[bitch] stop whining",
        "@{user} [cunt]",
        "{streamer} you [bitch]",
        "[piss] off",
        "[bastard] mods",
        "suck my [dick] {streamer}",
        "eat [shit]",
        "[motherfucker] can't play",
        "@{user} [screw] you",
        "[wtf] is wrong with you [dumbass]",
    ),
    "harassment": (
        "[kys]",
        "@{user} [kys]",
        "{streamer} [kys] [loser]",
        "just [kill] [yourself] already",
        "go [die] in a hole",
        "nobody would miss you {streamer}",
        "I know where you live {streamer}",
        "@{user} i'll find you",
        "I'm gonna keep making accounts until you quit",
        "@{user} enjoy getting [doxxed]",
        "show [feet] or leave",
        "nobody wants to see your [ugly] face, turn off the cam",
        "your family must be [ashamed] of you",
        "everyone in your life [hates] you",
        "@{user} delete your account [loser]",
        "@{user} [unalive] yourself",
        "{streamer} [die] already",
        "go [jump] off a bridge",
        "you should be [ashamed] to exist",
        "I'll [spam] this chat every stream until you cry",
        "hope you [crash] your car on the way home",
    ),
    "hate": (
        "women can't play games lol",
        "go back to the [kitchen]",
        "girls only stream for [simps]",
        "go back to your own country",
        "your people ruin every game",
        "[gay] [ass] streamer",
        "this stream is so [gay]",
        "[autistic] chat lmao",
        "typical {country} player, all [trash]",
        "no one wants your kind here",
    ),
    "slur": (
        "@{user} {slur}",
        "{streamer} is a {slur}",
        "shut up {slur}",
        "{slur} streamer",
        "only a {slur} would play like that",
        "lol {slur}",
        "get out of chat {slur}",
        "@{user} you {slur}",
    ),
}
TOXIC_WEIGHTS: dict[str, float] = {
    "insult_streamer": 30,
    "insult_chatter": 26,
    "profanity": 22,
    "harassment": 12,
    "hate": 5,
    "slur": 5,
}
# Slurs are here because a moderation model must be shown them; they only appear in toxic lines.
SLURS = ("faggot", "fag", "retard", "tranny", "nigger", "dyke")

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

_SLOT = re.compile(r"\{(\w+)\}")
_KEY = re.compile(r"\[([^\[\]]+)\]")
_SYLLABLES = ("ba", "ko", "mi", "du", "ne", "ra", "so", "ti", "lu", "fe", "go", "ha", "je", "pu")
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@dataclass(frozen=True)
class User:
    """One chatter: platform id, display name, badges and how prone to toxicity they are."""

    id: str
    name: str
    roles: tuple[str, ...] = ()
    toxicity: float = 0.02


class Generated(NamedTuple):
    """One message (a ``ChatMessage``-compatible dict) with its ground truth beside it."""

    message: dict[str, Any]
    toxic: bool
    kind: str


@dataclass
class _Line:
    text: str
    kind: str
    toxic: bool = False
    reply_to: str | None = None
    attachments: list[dict[str, str]] | None = None


@dataclass(frozen=True)
class _Recent:
    message_id: str
    user: User
    kind: str
    toxic: bool


def counter_word(n: int) -> str:
    """A pronounceable word that is different for every ``n >= 0`` (bijective base-14)."""
    n += 1
    parts: list[str] = []
    while n > 0:
        n -= 1
        n, r = divmod(n, len(_SYLLABLES))
        parts.append(_SYLLABLES[r])
    return "".join(reversed(parts))


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds")


class ChatGenerator:
    """A simulated stream: its population, its chat state and its clock.

    :meth:`stream` yields the natural chat forever; :meth:`load` yields a benchmark stream with
    knobs. Both draw on the same seeded RNG, so a generator must not be shared between them.
    """

    def __init__(
        self,
        seed: int = 7,
        *,
        community: str = DEFAULT_COMMUNITY,
        channel: str = DEFAULT_CHANNEL,
        start: datetime = DEFAULT_START,
        n_users: int = 450,
        toxic_share: float = 0.10,
        id_prefix: str = "m",
        unique: bool = False,
        time_scale: float = 1.0,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start must carry a time zone")
        if not 0.0 <= toxic_share < 1.0:
            raise ValueError("toxic_share must be in [0, 1)")
        if n_users < 20:
            raise ValueError("n_users must be at least 20")
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
        self.community = community
        self.channel = channel
        self.start = start
        self.target_toxic = toxic_share
        self.id_prefix = id_prefix
        self.unique = unique
        self.time_scale = time_scale

        rng = self.rng
        self._names: set[str] = set()
        self._ids: set[str] = set()
        streamer_name, self.pronoun = rng.choice(STREAMERS)
        self._names.add(streamer_name.lower())
        self.streamer = User(self._new_id(), streamer_name, ("broadcaster",), 0.0)
        self.game = rng.choice(sorted(GAMES))
        self.vocab = GAMES[self.game]
        prefix = streamer_name[:4].lower()
        self.emotes = GLOBAL_EMOTES + tuple(prefix + s for s in CHANNEL_EMOTE_SUFFIXES)
        self._emote_set = frozenset(self.emotes)
        self.users = self._population(n_users)
        self._cum: list[float] = []
        total = 0.0
        for rank in range(len(self.users)):
            total += 1.0 / (rank + 1) ** 1.05
            self._cum.append(total)
        mean_tox = (
            sum(
                u.toxicity * (c - (self._cum[i - 1] if i else 0.0))
                for i, (u, c) in enumerate(zip(self.users, self._cum, strict=True))
            )
            / total
        )
        self._base_scale = toxic_share / max(mean_tox, 1e-6)
        self.pastas = [self._fill(p) for p in COPYPASTAS]

        self._us = 0  # clock: microseconds since start
        self._n = 0  # messages emitted
        self._toxic = 0  # toxic messages emitted
        self._seen: set[str] = set()
        self._handled: set[str] = set()  # users a moderator has already acted on
        self._recent: deque[_Recent] = deque(maxlen=40)
        self._questions: deque[_Recent] = deque(maxlen=6)
        self._newcomers: list[User] = []
        self._raiders: list[User] = []
        self._afterglow = 0
        self.last_raw_text = ""  # the last text before the unique suffix

    # ---------------------------------------------------------------- population and names

    def _new_id(self) -> str:
        while True:
            uid = str(self.rng.randrange(10_000_000, 999_999_999))
            if uid not in self._ids:
                self._ids.add(uid)
                return uid

    def _new_name(self) -> str:
        rng = self.rng
        while True:
            adj, noun, first = rng.choice(NAME_ADJ), rng.choice(NAME_NOUN), rng.choice(NAME_FIRST)
            style = rng.randrange(9)
            if style == 0:
                name = f"{adj}{noun}{rng.randrange(1, 1000)}"
            elif style == 1:
                name = f"{adj}_{noun}"
            elif style == 2:
                name = f"{adj.capitalize()}{noun.capitalize()}"
            elif style == 3:
                name = f"xX{noun.capitalize()}{adj.capitalize()}Xx"
            elif style == 4:
                name = f"the{noun}{rng.randrange(10, 100)}"
            elif style == 5:
                name = f"{first}_{noun}"
            elif style == 6:
                name = f"{first.capitalize()}{rng.choice(('TV', 'Plays', 'GG', 'Live', ''))}"
                name += str(rng.randrange(1, 10_000)) if rng.random() < 0.6 else ""
            elif style == 7:
                name = f"{noun}{first}{rng.randrange(0, 100):02d}"
            else:
                name = f"{adj.capitalize()}{first.capitalize()}_"
            if len(name) >= 4 and name.lower() not in self._names:
                self._names.add(name.lower())
                return name

    def _population(self, n: int) -> list[User]:
        """Regulars in activity order (rank 0 writes most); regulars are rarely toxic."""
        rng = self.rng
        mods = set(rng.sample(range(40), 6))
        vips = set(rng.sample([i for i in range(80) if i not in mods], 4))
        users: list[User] = []
        for rank in range(n):
            roles: tuple[str, ...]
            if rank in mods:
                roles, tox = ("moderator", "subscriber"), 0.0
            elif rank in vips:
                roles, tox = ("vip", "subscriber"), 0.0
            else:
                sub = rng.random() < (0.7 if rank < 60 else 0.3)
                roles = ("subscriber",) if sub else ()
                r = rng.random()
                if rank < 25:
                    tox = rng.uniform(0.0, 0.03)
                elif r < 0.05:
                    tox = rng.uniform(0.35, 0.6)  # troll
                elif r < 0.22:
                    tox = rng.uniform(0.08, 0.18)  # edgy
                else:
                    tox = rng.uniform(0.0, 0.04)
                if sub:
                    tox *= 0.6
            users.append(User(self._new_id(), self._new_name(), roles, tox))
        return users

    def _newcomer(self, toxicity: float = 0.03) -> User:
        return User(self._new_id(), self._new_name(), (), toxicity)

    def _pick_user(self) -> User:
        rng = self.rng
        r = rng.random()
        if r < 0.012:
            return self.streamer
        if self._afterglow > 0 and self._raiders and r < 0.12:
            return rng.choice(self._raiders)
        if r > 0.988:
            user = self._newcomer()
            self._newcomers.append(user)
            if len(self._newcomers) > 60:
                self._newcomers.pop(0)
            return user
        if self._newcomers and r > 0.965:
            return rng.choice(self._newcomers)
        return rng.choices(self.users, cum_weights=self._cum)[0]

    def _regular(self) -> User:
        return self.rng.choices(self.users, cum_weights=self._cum)[0]

    # ---------------------------------------------------------------- text

    def _slot(self, name: str, fixed: dict[str, str]) -> str:
        if name in fixed:
            return fixed[name]
        rng = self.rng
        pr = self.pronoun
        match name:
            case "streamer":
                return self.streamer.name
            case "user":
                return self._some_name()
            case "game":
                return self.game
            case "other_game":
                return rng.choice(OTHER_GAMES + tuple(g for g in sorted(GAMES) if g != self.game))
            case "boss" | "item" | "place":
                return rng.choice(self.vocab[name])
            case "n":
                return str(rng.choice(NUMBERS) if rng.random() < 0.5 else rng.randrange(2, 60))
            case "hour":
                return str(rng.randrange(1, 6))
            case "hours":
                return str(rng.choice((2, 3, 4, 5, 6, 8, 10, 12, 24, 30, 48)))
            case "team":
                return str(rng.randrange(2, 6))
            case "deg":
                return str(rng.randrange(-12, 42))
            case "years":
                return str(rng.randrange(2, 8))
            case "emote":
                return rng.choice(self.emotes)
            case "country":
                return rng.choice(COUNTRIES)
            case "city":
                return rng.choice(CITIES)
            case "rank":
                return rng.choice(RANKS)
            case "pr":
                return pr
            case "prs":
                return f"{pr}'s"
            case "pronoun_obj":
                return "him" if pr == "he" else "her"
            case "slur":
                return f"[{rng.choice(SLURS)}]"
            case "slug":
                words = "".join(w.capitalize() for w in rng.sample(NAME_ADJ + NAME_NOUN, 3))
                return f"{words}-{self._token(16)}"
            case "ytid":
                return self._token(11)
            case "imgid":
                return self._token(7)
            case "spamdomain":
                return rng.choice(SPAM_DOMAINS)
            case "raider":
                return rng.choice(RAIDERS)
            case "RAIDER":
                return rng.choice(RAIDERS).upper()
        raise KeyError(f"unknown slot {{{name}}}")

    def _fill(self, template: str, **fixed: str) -> str:
        return _SLOT.sub(lambda m: self._slot(m.group(1), fixed), template)

    def _token(self, length: int) -> str:
        return "".join(self.rng.choice(_ALNUM) for _ in range(length))

    def _some_name(self) -> str:
        rec = self._recent_other(None)
        return rec.user.name if rec else self._regular().name

    def _recent_other(self, user: User | None) -> _Recent | None:
        """A recent message by someone else, or None."""
        if not self._recent:
            return None
        for _ in range(4):
            rec = self._recent[self.rng.randrange(len(self._recent))]
            if user is None or rec.user.id != user.id:
                return rec
        return None

    def _style(self, text: str) -> str:
        """Light typing noise: case, trailing words, an emote."""
        rng = self.rng
        r = rng.random()
        if r < 0.27 and not any(w in self._emote_set for w in text.split()):
            text = text.lower() if r < 0.22 else text.upper() if len(text) < 40 else text
        r = rng.random()
        if r < 0.05:
            text += rng.choice((" lol", " lmao", "!!", " fr", " tbh", " ngl", "..."))
        elif r < 0.10:
            text += " " + rng.choice(self.emotes)
        return text

    def _evade(self, word: str) -> str:
        """Obfuscate one key word the way chatters dodge filters."""
        rng = self.rng
        for _ in range(4):
            how = rng.choice(
                ("leet", "leet", "dots", "spaces", "homoglyph", "homoglyph", "stretch")
            )
            how = rng.choice((how, "star", "zwsp", "mixed")) if rng.random() < 0.3 else how
            out = self._evade_with(how, word)
            if out != word:
                return out
        return word[0] + "*" * (len(word) - 1) if len(word) > 1 else word

    def _evade_with(self, how: str, word: str) -> str:
        rng = self.rng
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
            out = "".join(
                HOMOGLYPHS[c] if c in HOMOGLYPHS and rng.random() < 0.6 else c for c in word
            )
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

    def _keys(self, text: str, evade_p: float) -> tuple[str, bool]:
        """Drop the [brackets], obfuscating one key word with probability ``evade_p``."""
        keys = _KEY.findall(text)
        if not keys:
            return text, False
        target = self.rng.randrange(len(keys)) if self.rng.random() < evade_p else -1
        state = {"i": 0, "evaded": False}

        def repl(m: re.Match[str]) -> str:
            word = m.group(1)
            if state["i"] == target:
                out = self._evade(word)
                state["evaded"] = out != word
            else:
                out = word
            state["i"] += 1
            return out

        out = _KEY.sub(repl, text)
        return out, bool(state["evaded"])

    def _emote_spam(self, emote: str | None = None) -> str:
        rng = self.rng
        emote = emote or rng.choice(self.emotes)
        r = rng.random()
        if r < 0.55:
            return " ".join([emote] * rng.randrange(1, 9))
        if r < 0.8:
            other = rng.choice(self.emotes)
            return " ".join(rng.choice((emote, emote, other)) for _ in range(rng.randrange(2, 7)))
        return f"{emote} {rng.choice(self.emotes)}"

    # ---------------------------------------------------------------- lines

    def _toxic_p(self, user: User, boost: float = 1.0) -> float:
        """Per-line toxic probability: the user's propensity, steered to the target share."""
        deficit = self.target_toxic * self._n - self._toxic
        steer = min(5.0, max(0.2, 1.0 + 0.1 * deficit))
        return min(0.95, user.toxicity * self._base_scale * steer * boost)

    def _toxic_line(self, user: User, category: str | None = None) -> _Line:
        rng = self.rng
        if category is None:
            category = rng.choices(list(TOXIC_WEIGHTS), weights=list(TOXIC_WEIGHTS.values()))[0]
        template = rng.choice(TOXIC[category])
        reply_to = None
        fixed: dict[str, str] = {}
        if "{user}" in template:
            rec = self._recent_other(user)
            if rec is not None:
                fixed["user"] = rec.user.name
                if rng.random() < 0.5:
                    reply_to = rec.message_id
        text = self._style(self._fill(template, **fixed))
        text, evaded = self._keys(text, 0.5 if category == "slur" else 0.22)
        kind = f"toxic.{category}" + (".evasion" if evaded else "")
        return _Line(text, kind, True, reply_to)

    def _mention_line(self, user: User, templates: Sequence[str], kind: str) -> _Line:
        """A line aimed at a recent chatter (@name, and half the time a reply to them)."""
        template = self.rng.choice(templates)
        if "{user}" not in template:
            return _Line(self._fill(template), kind)
        rec = self._recent_other(user)
        if rec is None:
            return _Line(self._style(self._fill(self.rng.choice(CHATTER))), "chatter")
        reply_to = rec.message_id if self.rng.random() < 0.5 else None
        return _Line(self._fill(template, user=rec.user.name), kind, False, reply_to)

    def _viewer_line(self, user: User) -> _Line:
        rng = self.rng
        early = self._n < 150
        kinds = (
            "reaction",
            "emote",
            "chatter",
            "banter",
            "question",
            "backseat",
            "greeting",
            "borderline",
            "command",
            "link",
            "attachment",
        )
        weights = (20, 14, 13, 10, 9, 6, 12 if early else 3, 6, 3, 0.8, 0.4)
        kind = rng.choices(kinds, weights=weights)[0]
        if kind == "emote":
            return _Line(self._emote_spam(), "emote")
        if kind == "banter":
            return self._mention_line(user, BANTER, "banter")
        if kind == "question":
            text = self._fill(rng.choice(QUESTIONS))
            if rng.random() < 0.3:
                text = f"@{self.streamer.name} {text}"
            return _Line(self._style(text), "question")
        if kind == "link":
            return _Line(self._fill(rng.choice(LINKS)), "link")
        if kind == "command":
            return _Line(self._fill(rng.choice(COMMANDS)), "command")
        if kind == "attachment":
            ext, ctype = rng.choice(ATTACHMENT_TYPES)
            name = f"{rng.choice(NAME_NOUN)}_{rng.randrange(1000, 10_000)}.{ext}"
            url = f"https://cdn.example.com/chat-media/{self._token(16)}/{name}"
            caption = self._fill(rng.choice(ATTACHMENT_CAPTIONS))
            attachment = {"url": url, "content_type": ctype, "filename": name}
            return _Line(caption, "attachment", attachments=[attachment])
        pool = {
            "reaction": REACTIONS,
            "chatter": CHATTER,
            "backseat": BACKSEAT,
            "greeting": GREETINGS,
            "borderline": BORDERLINE,
        }[kind]
        text = self._fill(rng.choice(pool))
        return _Line(text if kind == "borderline" else self._style(text), kind)

    def _mod_line(self, user: User) -> _Line:
        rng = self.rng
        toxic = [r for r in self._recent if r.toxic and r.user.id not in self._handled]
        if toxic and rng.random() < 0.8:
            rec = toxic[-1]
            self._handled.add(rec.user.id)
            text = self._fill(rng.choice(MOD_ACTIONS), user=rec.user.name)
            return _Line(text, "mod", reply_to=rec.message_id if rng.random() < 0.5 else None)
        seats = [r for r in self._recent if r.kind == "backseat"]
        if seats and rng.random() < 0.4:
            rec = seats[-1]
            return _Line(self._fill(rng.choice(MOD_BACKSEAT), user=rec.user.name), "mod")
        return self._mention_line(user, MOD_LINES, "mod")

    def _broadcaster_line(self) -> _Line:
        rng = self.rng
        if self._questions and rng.random() < 0.6:
            rec = self._questions.popleft()
            text = self._fill(rng.choice(BROADCASTER_ANSWERS), user=rec.user.name)
            return _Line(text, "broadcaster", reply_to=rec.message_id)
        return _Line(self._fill(rng.choice(BROADCASTER_LINES)), "broadcaster")

    # ---------------------------------------------------------------- emission

    def _gap(self, mean_ms: float) -> float:
        return self.rng.expovariate(1.0 / mean_ms)

    def _emit(self, user: User, line: _Line, gap_ms: float) -> Generated:
        rng = self.rng
        self._us += round(gap_ms * 1000 * self.time_scale)
        self._n += 1
        mid = f"{self.id_prefix}{self._n:06d}"
        text = self.last_raw_text = line.text
        if self.unique:
            word = counter_word(self._n)
            text = f"{text} {word}" if text else word
        sent = self.start + timedelta(microseconds=self._us)
        latency_ms = min(200.0, 3.0 + rng.lognormvariate(3.0, 0.7))
        received = sent + timedelta(microseconds=round(latency_ms * 1000))
        message: dict[str, Any] = {
            "message_id": mid,
            "platform": PLATFORM,
            "community": self.community,
            "channel": self.channel,
            "user": user.id,
            "user_name": user.name,
            "user_roles": list(user.roles),
            "text": text,
            "attachments": line.attachments or [],
            "reply_to": line.reply_to,
            "edited": False,
            "sent_at": _iso(sent),
            "received_at": _iso(received),
        }
        if line.toxic:
            self._toxic += 1
        rec = _Recent(mid, user, line.kind, line.toxic)
        self._recent.append(rec)
        if line.kind == "question" and user is not self.streamer:
            self._questions.append(rec)
        self._seen.add(user.id)
        return Generated(message, line.toxic, line.kind)

    def _normal(self, gap_ms: float | None = None) -> Generated:
        """One ordinary chat line from someone in the room."""
        rng = self.rng
        user = self._pick_user()
        if self._afterglow > 0:
            self._afterglow -= 1
        if user is self.streamer:
            line = self._broadcaster_line()
        elif "moderator" in user.roles and rng.random() < 0.3:
            line = self._mod_line(user)
        elif rng.random() < self._toxic_p(user):
            line = self._toxic_line(user)
        elif user.id not in self._seen and rng.random() < 0.45:
            line = _Line(self._style(self._fill(rng.choice(GREETINGS))), "greeting")
        else:
            line = self._viewer_line(user)
        return self._emit(user, line, self._gap(NORMAL_GAP_MS if gap_ms is None else gap_ms))

    # ---------------------------------------------------------------- episodes

    def _hype(self) -> Iterator[Generated]:
        """A gameplay moment and the burst of reactions after it."""
        rng = self.rng
        event = rng.choice(sorted(EVENTS))
        if rng.random() < 0.35:
            text = rng.choice(BROADCASTER_EVENT_LINES[event])
            yield self._emit(self.streamer, _Line(text, "broadcaster"), self._gap(800))
        for _ in range(rng.randrange(12, 46)):
            user = self._regular() if rng.random() < 0.85 else self._pick_user()
            if user is self.streamer:
                user = self._regular()
            r = rng.random()
            boost = 0.6 if event == "fail" else 0.2
            if user.toxicity and rng.random() < self._toxic_p(user, boost):
                line = self._toxic_line(user, rng.choice(("insult_streamer", "profanity")))
            elif r < 0.6:
                line = _Line(self._style(self._fill(rng.choice(EVENTS[event]))), "hype")
            elif r < 0.9:
                line = _Line(self._emote_spam(rng.choice(EVENT_EMOTES[event])), "emote")
            else:
                line = _Line(self._style(self._fill(rng.choice(REACTIONS))), "reaction")
            yield self._emit(user, line, self._gap(rng.choice((120.0, 180.0, 250.0))))

    def _emote_wave(self) -> Iterator[Generated]:
        """Chat spams one emote, most of them with the exact same line."""
        rng = self.rng
        emote = rng.choice(self.emotes)
        canonical = " ".join([emote] * rng.randrange(1, 5))
        for _ in range(rng.randrange(8, 31)):
            text = canonical if rng.random() < 0.6 else self._emote_spam(emote)
            yield self._emit(self._regular(), _Line(text, "emote"), self._gap(250))

    def _copypasta(self) -> Iterator[Generated]:
        """One user posts a copypasta and others repeat it, with ordinary chat in between."""
        rng = self.rng
        pasta = rng.choice(self.pastas)
        yield self._emit(self._regular(), _Line(pasta, "copypasta"), self._gap(NORMAL_GAP_MS))
        for _ in range(rng.randrange(4, 19)):
            if rng.random() < 0.25:
                yield self._normal(600)
                continue
            text = pasta if rng.random() < 0.85 else f"{pasta} {rng.choice(self.emotes)}"
            yield self._emit(self._regular(), _Line(text, "copypasta"), self._gap(600))

    def _lull(self) -> Iterator[Generated]:
        """A loading screen or a break: chat slows down."""
        rng = self.rng
        if rng.random() < 0.5:
            line = _Line(
                rng.choice(("be right back, 2 minutes", "brb chat", "loading...")), "broadcaster"
            )
            yield self._emit(self.streamer, line, self._gap(NORMAL_GAP_MS))
        for _ in range(rng.randrange(5, 16)):
            yield self._normal(2800)

    def _troll(self) -> Iterator[Generated]:
        """A fresh account posts a few toxic lines; chat reacts; a moderator removes it."""
        rng = self.rng
        troll = self._newcomer(toxicity=0.9)
        category = rng.choice(("insult_streamer", "insult_chatter", "profanity", "harassment"))
        for _ in range(rng.randrange(2, 5)):
            yield self._emit(troll, self._toxic_line(troll, category), self._gap(1200))
            if rng.random() < 0.6:
                user = self._regular()
                text = self._fill(rng.choice(CHAT_ON_TROLL), user=troll.name)
                yield self._emit(user, _Line(text, "chatter"), self._gap(700))
            if rng.random() < 0.5:
                yield self._normal()
        mods = [u for u in self.users if "moderator" in u.roles]
        mod = rng.choice(mods)
        yield self._emit(mod, self._mod_line(mod), self._gap(1500))

    def _spam_bot(self) -> Iterator[Generated]:
        bot = self._newcomer(toxicity=0.0)
        yield self._emit(
            bot, _Line(self._fill(self.rng.choice(SPAM)), "spam"), self._gap(NORMAL_GAP_MS)
        )

    def _gift_subs(self) -> Iterator[Generated]:
        rng = self.rng
        gifter = self._regular()
        n = rng.choice((5, 5, 10, 10, 20, 50))
        text = f"@{gifter.name} thank you for the {n} gifted subs!!"
        yield self._emit(self.streamer, _Line(text, "broadcaster"), self._gap(1500))
        for _ in range(rng.randrange(5, 16)):
            text = self._style(self._fill(rng.choice(GIFT_HYPE), user=gifter.name))
            yield self._emit(self._regular(), _Line(text, "hype"), self._gap(300))

    def _raid(self) -> Iterator[Generated]:
        """Another channel raids: many new users post the same raid message within seconds."""
        rng = self.rng
        raider = rng.choice(RAIDERS)
        raid_text = self._fill(rng.choice(RAID_TEMPLATES), raider=raider, RAIDER=raider.upper())
        raiders = [self._newcomer(toxicity=0.02) for _ in range(rng.randrange(18, 61))]
        for i, user in enumerate(raiders):
            r = rng.random()
            if r < 0.8:
                text = raid_text
            elif r < 0.9:
                text = f"{raid_text} {rng.choice(self.emotes)}"
            else:
                text = self._fill(rng.choice(GREETINGS))
            yield self._emit(user, _Line(text, "raid"), self._gap(90 if i else 1500))
        thanks = self._fill(rng.choice(RAID_THANKS), raider=raider)
        yield self._emit(self.streamer, _Line(thanks, "broadcaster"), self._gap(400))
        for _ in range(rng.randrange(3, 9)):
            text = self._fill(rng.choice(RAID_WELCOMES), raider=raider)
            yield self._emit(self._regular(), _Line(text, "raid_welcome"), self._gap(400))
        self._raiders = raiders
        self._afterglow = 250

    # ---------------------------------------------------------------- streams

    def stream(self) -> Iterator[Generated]:
        """The natural chat of the stream, forever (take what you need with ``islice``)."""
        rng = self.rng
        episodes: dict[str, Callable[[], Iterator[Generated]]] = {
            "hype": self._hype,
            "emote_wave": self._emote_wave,
            "copypasta": self._copypasta,
            "lull": self._lull,
            "troll": self._troll,
            "spam_bot": self._spam_bot,
            "gift_subs": self._gift_subs,
        }
        weights = (40, 17, 13, 9, 8, 5, 8)
        next_raid = rng.randrange(700, 1800)
        while True:
            for _ in range(rng.randrange(12, 56)):
                yield self._normal()
            if self._n >= next_raid:
                yield from self._raid()
                next_raid = self._n + rng.randrange(2000, 4000)
                continue
            yield from episodes[rng.choices(list(episodes), weights=weights)[0]]()

    def load(
        self, count: int, *, repetition: float = 0.25, raid_every: int | None = None
    ) -> Iterator[Generated]:
        """``count`` messages for benchmarks.

        ``repetition`` is the share of lines that deliberately repeat earlier text: canonical
        emote spam, the stream's copypasta or an exact earlier line (fresh lines may still
        coincide, e.g. two "gg"). ``raid_every`` injects a raid (18-60 same-text lines from
        new users) every that many messages; None for none. Set ``unique`` on the generator
        to make every text distinct.
        """
        if count < 0:
            raise ValueError("count must be >= 0")
        if not 0.0 <= repetition <= 1.0:
            raise ValueError("repetition must be in [0, 1]")
        if raid_every is not None and raid_every < 1:
            raise ValueError("raid_every must be >= 1 or None")
        rng = self.rng
        spam = [" ".join([e] * rng.randrange(1, 6)) for e in rng.sample(self.emotes, 12)]
        history: list[tuple[str, str, bool]] = []
        emitted = 0
        next_raid = raid_every
        while emitted < count:
            if next_raid is not None and raid_every is not None and emitted >= next_raid:
                for item in self._raid():
                    if emitted >= count:
                        return
                    yield item
                    emitted += 1
                next_raid += raid_every
                continue
            if history and rng.random() < repetition:
                r = rng.random()
                if r < 0.35:
                    line = _Line(rng.choice(spam), "emote")
                elif r < 0.55:
                    line = _Line(rng.choice(self.pastas), "copypasta")
                else:
                    text, kind, toxic = history[rng.randrange(len(history))]
                    line = _Line(text, kind, toxic)
                item = self._emit(self._regular(), line, self._gap(NORMAL_GAP_MS))
            else:
                item = self._normal()
                fresh = (self.last_raw_text, item.kind, item.toxic)
                if len(history) < 5000:
                    history.append(fresh)
                else:
                    history[rng.randrange(5000)] = fresh
            yield item
            emitted += 1


# -------------------------------------------------------------------- module API


def iter_generated(
    seed: int = 7,
    count: int | None = 3000,
    *,
    community: str = DEFAULT_COMMUNITY,
    channel: str = DEFAULT_CHANNEL,
    start: datetime = DEFAULT_START,
    toxic_share: float = 0.10,
) -> Iterator[Generated]:
    """The natural chat of one stream: ``count`` items (None: forever)."""
    gen = ChatGenerator(
        seed, community=community, channel=channel, start=start, toxic_share=toxic_share
    )
    return gen.stream() if count is None else islice(gen.stream(), count)


def generate(
    seed: int = 7,
    count: int = 3000,
    *,
    community: str = DEFAULT_COMMUNITY,
    channel: str = DEFAULT_CHANNEL,
    start: datetime = DEFAULT_START,
    toxic_share: float = 0.10,
) -> list[tuple[dict[str, Any], bool]]:
    """``count`` messages of natural chat, each with its ground-truth toxic flag."""
    items = iter_generated(
        seed, count, community=community, channel=channel, start=start, toxic_share=toxic_share
    )
    return [(g.message, g.toxic) for g in items]


def iter_load(
    count: int,
    *,
    seed: int = 0,
    repetition: float = 0.25,
    raid_every: int | None = None,
    unique: bool = False,
    rate: float | None = None,
    community: str = DEFAULT_COMMUNITY,
    channel: str = DEFAULT_CHANNEL,
    start: datetime = DEFAULT_START,
    toxic_share: float = 0.10,
    id_prefix: str = "m",
) -> Iterator[Generated]:
    """A deterministic benchmark stream of ``count`` labelled messages.

    ``rate`` (messages per second, approximate) compresses or stretches the clock; the default
    is livestream speed (~80 a minute). See :meth:`ChatGenerator.load` for the other knobs.
    """
    if rate is not None and rate <= 0:
        raise ValueError("rate must be positive")
    scale = 1.0 if rate is None else NATURAL_RATE_PER_S / rate
    gen = ChatGenerator(
        seed,
        community=community,
        channel=channel,
        start=start,
        toxic_share=toxic_share,
        id_prefix=id_prefix,
        unique=unique,
        time_scale=scale,
    )
    return gen.load(count, repetition=repetition, raid_every=raid_every)


def load_messages(
    count: int,
    *,
    seed: int = 0,
    repetition: float = 0.25,
    raid_every: int | None = None,
    unique: bool = False,
    rate: float | None = None,
    community: str = DEFAULT_COMMUNITY,
    channel: str = DEFAULT_CHANNEL,
    start: datetime = DEFAULT_START,
) -> Iterator[dict[str, Any]]:
    """Like :func:`iter_load`, messages only (``ChatMessage``-compatible dicts)."""
    for item in iter_load(
        count,
        seed=seed,
        repetition=repetition,
        raid_every=raid_every,
        unique=unique,
        rate=rate,
        community=community,
        channel=channel,
        start=start,
    ):
        yield item.message


def to_json_line(message: dict[str, Any]) -> str:
    """One JSONL line (no newline): compact, UTF-8 characters kept as they are."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def _write(items: Iterator[Generated], out: TextIO, labels: TextIO | None) -> tuple[int, int]:
    n = toxic = 0
    for item in items:
        out.write(to_json_line(item.message) + "\n")
        if labels is not None:
            row = {"message_id": item.message["message_id"], "toxic": item.toxic, "kind": item.kind}
            labels.write(json.dumps(row, separators=(",", ":")) + "\n")
        n += 1
        toxic += item.toxic
    return n, toxic


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ingest.chatgen",
        description="Write seeded, realistic livestream chat as ChatMessage JSONL.",
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--count", type=int, default=3000)
    p.add_argument("--out", type=Path, help="output JSONL (default: stdout)")
    p.add_argument("--labels", type=Path, help="also write {message_id, toxic, kind} JSONL here")
    p.add_argument("--community", default=DEFAULT_COMMUNITY)
    p.add_argument("--channel", default=DEFAULT_CHANNEL)
    p.add_argument(
        "--start",
        type=datetime.fromisoformat,
        default=DEFAULT_START,
        help="first timestamp, ISO-8601 with a zone",
    )
    p.add_argument("--toxic-share", type=float, default=0.10)
    load = p.add_argument_group("load generation (benchmarks)")
    load.add_argument("--load", action="store_true", help="benchmark stream instead of the demo")
    load.add_argument("--repetition", type=float, default=0.25)
    load.add_argument("--raid-every", type=int, default=None)
    load.add_argument("--unique", action="store_true", help="make every text distinct")
    load.add_argument("--rate", type=float, default=None, help="messages per second")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.start.tzinfo is None:
        sys.stderr.write("--start needs a time zone, e.g. 2024-06-15T18:00:00+00:00\n")
        return 2
    items: Iterator[Generated]
    if args.load:
        items = iter_load(
            args.count,
            seed=args.seed,
            repetition=args.repetition,
            raid_every=args.raid_every,
            unique=args.unique,
            rate=args.rate,
            community=args.community,
            channel=args.channel,
            start=args.start,
            toxic_share=args.toxic_share,
        )
    else:
        items = iter_generated(
            args.seed,
            args.count,
            community=args.community,
            channel=args.channel,
            start=args.start,
            toxic_share=args.toxic_share,
        )
    labels: TextIO | None = None
    try:
        if args.labels is not None:
            args.labels.parent.mkdir(parents=True, exist_ok=True)
            labels = args.labels.open("w", encoding="utf-8", newline="\n")
        if args.out is None:
            n, toxic = _write(items, sys.stdout, labels)
        else:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with args.out.open("w", encoding="utf-8", newline="\n") as out:
                n, toxic = _write(items, out, labels)
    finally:
        if labels is not None:
            labels.close()
    share = toxic / n if n else 0.0
    sys.stderr.write(f"wrote {n} messages, {toxic} toxic ({share:.1%})\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
