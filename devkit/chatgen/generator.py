"""The simulated stream behind the chat generator: population, chat state, episodes, clock.

See :mod:`devkit.chatgen` for what is modelled. Every draw comes from one seeded
:class:`random.Random`, in a fixed order: the same seed gives byte-identical output, and so any
change here (or to the order of the phrase lists) changes the bundled sample.
"""

from __future__ import annotations

import random
import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from devkit.chatgen import phrases
from devkit.chatgen.evasion import resolve_keys

DEFAULT_COMMUNITY = "stream-demo"
DEFAULT_CHANNEL = "#main"
DEFAULT_START = datetime(2024, 6, 15, 18, 0, 0, tzinfo=UTC)
PLATFORM = "replay"

# Mean gap between two ordinary chat lines (ms): with bursts, raids and lulls the whole
# stream averages about 80 messages a minute.
NORMAL_GAP_MS = 900.0
NATURAL_RATE_PER_S = 80 / 60


_SLOT = re.compile(r"\{(\w+)\}")
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
        streamer_name, self.pronoun = rng.choice(phrases.STREAMERS)
        self._names.add(streamer_name.lower())
        self.streamer = User(self._new_id(), streamer_name, ("broadcaster",), 0.0)
        self.game = rng.choice(sorted(phrases.GAMES))
        self.vocab = phrases.GAMES[self.game]
        prefix = streamer_name[:4].lower()
        self.emotes = phrases.GLOBAL_EMOTES + tuple(
            prefix + s for s in phrases.CHANNEL_EMOTE_SUFFIXES
        )
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
        self.pastas = [self._fill(p) for p in phrases.COPYPASTAS]

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
            adj, noun, first = (
                rng.choice(phrases.NAME_ADJ),
                rng.choice(phrases.NAME_NOUN),
                rng.choice(phrases.NAME_FIRST),
            )
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
                return rng.choice(
                    phrases.OTHER_GAMES + tuple(g for g in sorted(phrases.GAMES) if g != self.game)
                )
            case "boss" | "item" | "place":
                return rng.choice(self.vocab[name])
            case "n":
                return str(
                    rng.choice(phrases.NUMBERS) if rng.random() < 0.5 else rng.randrange(2, 60)
                )
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
                return rng.choice(phrases.COUNTRIES)
            case "city":
                return rng.choice(phrases.CITIES)
            case "rank":
                return rng.choice(phrases.RANKS)
            case "pr":
                return pr
            case "prs":
                return f"{pr}'s"
            case "pronoun_obj":
                return "him" if pr == "he" else "her"
            case "slur":
                return f"[{rng.choice(phrases.SLURS)}]"
            case "slug":
                words = "".join(
                    w.capitalize() for w in rng.sample(phrases.NAME_ADJ + phrases.NAME_NOUN, 3)
                )
                return f"{words}-{self._token(16)}"
            case "ytid":
                return self._token(11)
            case "imgid":
                return self._token(7)
            case "spamdomain":
                return rng.choice(phrases.SPAM_DOMAINS)
            case "raider":
                return rng.choice(phrases.RAIDERS)
            case "RAIDER":
                return rng.choice(phrases.RAIDERS).upper()
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
            category = rng.choices(
                list(phrases.TOXIC_WEIGHTS), weights=list(phrases.TOXIC_WEIGHTS.values())
            )[0]
        template = rng.choice(phrases.TOXIC[category])
        reply_to = None
        fixed: dict[str, str] = {}
        if "{user}" in template:
            rec = self._recent_other(user)
            if rec is not None:
                fixed["user"] = rec.user.name
                if rng.random() < 0.5:
                    reply_to = rec.message_id
        text = self._style(self._fill(template, **fixed))
        text, evaded = resolve_keys(self.rng, text, 0.5 if category == "slur" else 0.22)
        kind = f"toxic.{category}" + (".evasion" if evaded else "")
        return _Line(text, kind, True, reply_to)

    def _mention_line(self, user: User, templates: Sequence[str], kind: str) -> _Line:
        """A line aimed at a recent chatter (@name, and half the time a reply to them)."""
        template = self.rng.choice(templates)
        if "{user}" not in template:
            return _Line(self._fill(template), kind)
        rec = self._recent_other(user)
        if rec is None:
            return _Line(self._style(self._fill(self.rng.choice(phrases.CHATTER))), "chatter")
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
            return self._mention_line(user, phrases.BANTER, "banter")
        if kind == "question":
            text = self._fill(rng.choice(phrases.QUESTIONS))
            if rng.random() < 0.3:
                text = f"@{self.streamer.name} {text}"
            return _Line(self._style(text), "question")
        if kind == "link":
            return _Line(self._fill(rng.choice(phrases.LINKS)), "link")
        if kind == "command":
            return _Line(self._fill(rng.choice(phrases.COMMANDS)), "command")
        if kind == "attachment":
            ext, ctype = rng.choice(phrases.ATTACHMENT_TYPES)
            name = f"{rng.choice(phrases.NAME_NOUN)}_{rng.randrange(1000, 10_000)}.{ext}"
            url = f"https://cdn.example.com/chat-media/{self._token(16)}/{name}"
            caption = self._fill(rng.choice(phrases.ATTACHMENT_CAPTIONS))
            attachment = {"url": url, "content_type": ctype, "filename": name}
            return _Line(caption, "attachment", attachments=[attachment])
        pool = {
            "reaction": phrases.REACTIONS,
            "chatter": phrases.CHATTER,
            "backseat": phrases.BACKSEAT,
            "greeting": phrases.GREETINGS,
            "borderline": phrases.BORDERLINE,
        }[kind]
        text = self._fill(rng.choice(pool))
        return _Line(text if kind == "borderline" else self._style(text), kind)

    def _mod_line(self, user: User) -> _Line:
        rng = self.rng
        toxic = [r for r in self._recent if r.toxic and r.user.id not in self._handled]
        if toxic and rng.random() < 0.8:
            rec = toxic[-1]
            self._handled.add(rec.user.id)
            text = self._fill(rng.choice(phrases.MOD_ACTIONS), user=rec.user.name)
            return _Line(text, "mod", reply_to=rec.message_id if rng.random() < 0.5 else None)
        seats = [r for r in self._recent if r.kind == "backseat"]
        if seats and rng.random() < 0.4:
            rec = seats[-1]
            return _Line(self._fill(rng.choice(phrases.MOD_BACKSEAT), user=rec.user.name), "mod")
        return self._mention_line(user, phrases.MOD_LINES, "mod")

    def _broadcaster_line(self) -> _Line:
        rng = self.rng
        if self._questions and rng.random() < 0.6:
            rec = self._questions.popleft()
            text = self._fill(rng.choice(phrases.BROADCASTER_ANSWERS), user=rec.user.name)
            return _Line(text, "broadcaster", reply_to=rec.message_id)
        return _Line(self._fill(rng.choice(phrases.BROADCASTER_LINES)), "broadcaster")

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
            line = _Line(self._style(self._fill(rng.choice(phrases.GREETINGS))), "greeting")
        else:
            line = self._viewer_line(user)
        return self._emit(user, line, self._gap(NORMAL_GAP_MS if gap_ms is None else gap_ms))

    # ---------------------------------------------------------------- episodes

    def _hype(self) -> Iterator[Generated]:
        """A gameplay moment and the burst of reactions after it."""
        rng = self.rng
        event = rng.choice(sorted(phrases.EVENTS))
        if rng.random() < 0.35:
            text = rng.choice(phrases.BROADCASTER_EVENT_LINES[event])
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
                line = _Line(self._style(self._fill(rng.choice(phrases.EVENTS[event]))), "hype")
            elif r < 0.9:
                line = _Line(self._emote_spam(rng.choice(phrases.EVENT_EMOTES[event])), "emote")
            else:
                line = _Line(self._style(self._fill(rng.choice(phrases.REACTIONS))), "reaction")
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
                text = self._fill(rng.choice(phrases.CHAT_ON_TROLL), user=troll.name)
                yield self._emit(user, _Line(text, "chatter"), self._gap(700))
            if rng.random() < 0.5:
                yield self._normal()
        mods = [u for u in self.users if "moderator" in u.roles]
        mod = rng.choice(mods)
        yield self._emit(mod, self._mod_line(mod), self._gap(1500))

    def _spam_bot(self) -> Iterator[Generated]:
        bot = self._newcomer(toxicity=0.0)
        yield self._emit(
            bot, _Line(self._fill(self.rng.choice(phrases.SPAM)), "spam"), self._gap(NORMAL_GAP_MS)
        )

    def _gift_subs(self) -> Iterator[Generated]:
        rng = self.rng
        gifter = self._regular()
        n = rng.choice((5, 5, 10, 10, 20, 50))
        text = f"@{gifter.name} thank you for the {n} gifted subs!!"
        yield self._emit(self.streamer, _Line(text, "broadcaster"), self._gap(1500))
        for _ in range(rng.randrange(5, 16)):
            text = self._style(self._fill(rng.choice(phrases.GIFT_HYPE), user=gifter.name))
            yield self._emit(self._regular(), _Line(text, "hype"), self._gap(300))

    def _raid(self) -> Iterator[Generated]:
        """Another channel raids: many new users post the same raid message within seconds."""
        rng = self.rng
        raider = rng.choice(phrases.RAIDERS)
        raid_text = self._fill(
            rng.choice(phrases.RAID_TEMPLATES), raider=raider, RAIDER=raider.upper()
        )
        raiders = [self._newcomer(toxicity=0.02) for _ in range(rng.randrange(18, 61))]
        for i, user in enumerate(raiders):
            r = rng.random()
            if r < 0.8:
                text = raid_text
            elif r < 0.9:
                text = f"{raid_text} {rng.choice(self.emotes)}"
            else:
                text = self._fill(rng.choice(phrases.GREETINGS))
            yield self._emit(user, _Line(text, "raid"), self._gap(90 if i else 1500))
        thanks = self._fill(rng.choice(phrases.RAID_THANKS), raider=raider)
        yield self._emit(self.streamer, _Line(thanks, "broadcaster"), self._gap(400))
        for _ in range(rng.randrange(3, 9)):
            text = self._fill(rng.choice(phrases.RAID_WELCOMES), raider=raider)
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
