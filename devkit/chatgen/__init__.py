"""Seeded generator of realistic livestream chat: the bundled sample, test data and load.

The model is one Twitch-like stream (one community, one channel) seen through a replay
adapter. Everything comes from one :class:`random.Random` seeded by the caller, so the same
seed (and the same arguments) gives byte-identical output; only the standard library is used.
The phrases are data (``devkit/data/chat_phrases.json``, read by :mod:`devkit.chatgen.phrases`);
the simulation is :mod:`devkit.chatgen.generator`, key-word obfuscation
:mod:`devkit.chatgen.evasion`.

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
``python -m devkit.chatgen --seed 7 --count 3000 --out ingest/samples/livestream.jsonl``
(add ``--labels FILE`` for a ``{message_id, toxic, kind}`` JSONL, ``--load`` with
``--repetition``/``--raid-every``/``--unique``/``--rate`` for a benchmark stream).
"""

from devkit.chatgen.cli import main
from devkit.chatgen.generator import (
    DEFAULT_CHANNEL,
    DEFAULT_COMMUNITY,
    DEFAULT_START,
    ChatGenerator,
    Generated,
    User,
    counter_word,
)
from devkit.chatgen.phrases import GLOBAL_EMOTES
from devkit.chatgen.streams import generate, iter_generated, iter_load, load_messages, to_json_line

__all__ = [
    "DEFAULT_CHANNEL",
    "DEFAULT_COMMUNITY",
    "DEFAULT_START",
    "GLOBAL_EMOTES",
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
