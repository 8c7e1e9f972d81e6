"""Stream detectors: spam, flood, caps, link, emote_flood, mention_flood, split_evasion, raid.

Each detector adds a label (``schemas.labels``) to a verdict and a one-line reason a moderator
can read in ``Verdict.reasons``. They run in the score stage after the model (so that a raid
knows which of its lines the model flagged), on the whole batch at once:

1. Per distinct text, once (and remembered across batches, like the model's de-dup cache),
   the cheap things the detectors read: the near-duplicate fingerprint, the raid fingerprint,
   the short form used by split evasion, caps counts, URL hosts, emote and mention counts.
2. The per-message detectors (caps, link, emote_flood, mention_flood) need nothing else.
3. The windowed ones (spam, flood, split_evasion, raid) need the stream's state: one Lua call
   per batch (``scorers.stream_state``), windowed on event time so that a replayed batch counts
   nothing twice and gets the same answers.

Thresholds come per community from ``schemas.detection.DetectorThresholds`` (mirrored to Redis
by the actioner, with the id of the policy version they belong to, which each verdict records in
``policy_version``). When Redis does not answer, the windowed detectors are skipped and their
verdicts say ``degraded``; scoring never waits for them.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import urlsplit

from redis.exceptions import RedisError

from core import metrics
from schemas import labels as L
from schemas.detection import DetectorThresholds
from schemas.events import ChatMessage, RaidEvent, Verdict, utcnow
from schemas.rules import HARD_SLUR
from scorers.stream_state import (
    AppliedPolicy,
    Entry,
    PolicyCache,
    RaidSeen,
    StreamState,
    Windows,
)
from toxicity.emotes import is_emoji_run, is_emote, is_reaction
from toxicity.lexicon import Lexicon
from toxicity.normalize import normalize, squeeze, tokens

logger = logging.getLogger(__name__)
SERVICE = "scorer"

# Lines this short (once normalised, letters and digits only) may be pieces of a split word.
SHORT_MAX = 10
# Chat's self-harm and harassment abbreviations, and the phrases split evasion spells out.
HARM_ABBREVIATIONS: frozenset[str] = frozenset(
    ("kys", "gkys", "kms", "diaf", "killyourself", "neckyourself", "hangyourself")
)
# Labels that make a raid harmful. profanity alone does not: "LETS F***ING GO" raids are hype.
RAID_HARM_LABELS: frozenset[str] = frozenset(
    (L.INSULT, L.THREAT, L.SELF_HARM, L.IDENTITY_ATTACK, L.SEXUAL_HARASSMENT, HARD_SLUR)
)
SAMPLE_CHARS = 300
# A community with no policy of its own: one object, so that its lines share cached labels.
DEFAULT_POLICY = AppliedPolicy()
NO_LABELS: dict[str, str] = {}  # shared: never changed
# Distinct (thresholds, text) pairs whose stateless labels are remembered (then forgotten at once).
STATELESS_CACHE = 50_000

_STRIP = ".,!?…~\"'()[]{}:;*"
_MENTION = re.compile(r"(?<![\w@])@\w{2,}|<@[!&]?\w+(?:\|[^>]*)?>")
_TLDS = (
    "com|net|org|io|gg|tv|ly|me|co|xyz|ru|info|link|app|dev|to|be|us|uk|de|fr|live|shop|site"
    "|online|store|click|top|cc|biz|ws|sh|fm|gl|tk|ml|ga|cf|su|cn|at|nl|eu|ca|in|pw|vip|lol|win"
)
_URL = re.compile(
    r"(?:https?://|www\.)[^\s<>\"']+"
    rf"|(?<![\w@.-])(?:[a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?\.)+(?:{_TLDS})(?![\w-])"
    r"(?::\d{1,5})?(?:/[^\s<>\"']*)?",
    re.IGNORECASE,
)
_NOT_ALNUM = re.compile(r"[^\w]|_")
_EMOJI_PARTS = frozenset(("\u200d", *map(chr, range(0xFE00, 0xFE10))))


@dataclass(frozen=True)
class Traits:
    """What the detectors read of one text, computed once per distinct text."""

    fingerprint: str  # near-duplicates share it (spam)
    raid_letters: int  # letters in the raid fingerprint's source
    raid_fingerprint: str  # near-duplicates share it, obfuscations folded ("" = none)
    short: str  # letters/digits of a short line, for split evasion ("" = not short)
    letters: int  # letters outside emotes, mentions and links (caps)
    upper: int
    hosts: tuple[str, ...]  # URL hosts, lower case, without "www."
    emotes: int
    mentions: int


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@lru_cache(maxsize=50_000)
def traits(text: str) -> Traits:
    """The detectors' view of ``text`` (cached: chat repeats itself)."""
    urls = _URL.findall(text)
    hosts = tuple(dict.fromkeys(h for h in map(url_host, urls) if h))
    bare = _URL.sub(" ", text) if urls else text
    mentions = len(_MENTION.findall(bare))
    if mentions:
        bare = _MENTION.sub(" ", bare)
    words: list[str] = []
    emotes: list[str] = []
    counted: list[str] = []  # the words whose letters count for caps
    emote_count = 0
    for token in bare.split():
        core = token.strip(_STRIP) or token
        if is_emoji_run(core):
            emote_count += sum(1 for char in core if char not in _EMOJI_PARTS)
            emotes.append(core)
        elif is_emote(core):
            emote_count += 1
            emotes.append(core)
        else:
            words.append(token)
            if not is_reaction(token):
                counted.append(token)
    caps_source = "".join(counted)
    letters = sum(map(str.isalpha, caps_source))
    upper = sum(map(str.isupper, caps_source))
    # Digits drop out (tokens() keeps letters only, after leetspeak is folded), repeated
    # letters are squeezed, emotes count as a set: "buy followers 123 KEKW" and
    # "buuuy followers 456 KEKW KEKW" are the same line. Words are joined by one space, which
    # no run of a repeated letter crosses, so the line is squeezed at once.
    line = " ".join(words)
    folded = squeeze(" ".join(tokens(normalize(line)))).split()
    fingerprint = _digest(" ".join(folded) + "|" + " ".join(sorted(set(emotes))))
    joined = "".join(folded)
    raid = _digest(joined) if joined else ""
    # A piece of a split word is a one-word line: "k", "Y!", "5".
    folded_line = normalize(text)
    compact = _NOT_ALNUM.sub("", folded_line)
    one_word = " " not in folded_line and not hosts
    short = compact if one_word and 0 < len(compact) <= SHORT_MAX else ""
    return Traits(
        fingerprint=fingerprint,
        raid_letters=len(joined),
        raid_fingerprint=raid,
        short=short,
        letters=letters,
        upper=upper,
        hosts=hosts,
        emotes=emote_count,
        mentions=mentions,
    )


def url_host(url: str) -> str:
    """The host of a URL as chat writes it (with or without a scheme), lower case."""
    if not url.lower().startswith(("http://", "https://")):
        url = "http://" + url
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:  # a malformed port or bracket: still a link, host unknown
        return "?"
    return host.lower().rstrip(".").removeprefix("www.")


def allowed_host(host: str, allow: Sequence[str]) -> bool:
    """``host`` is an allowed host or one of its subdomains (``clips.twitch.tv``)."""
    return any(host == a or host.endswith("." + a) for a in allow)


def is_caps(t: Traits, thresholds: DetectorThresholds) -> bool:
    return t.letters >= thresholds.caps_min_letters and t.upper >= thresholds.caps_ratio * (
        t.letters
    )


def split_word(parts: Sequence[str], lexicon: Lexicon | None = None) -> str | None:
    """The listed word that ``parts`` (consecutive short lines, oldest first) end by spelling.

    Only words spelt over two lines or more, ending at the last one, of three letters or more:
    the last line is the one that completes the word. Listed: chat harm abbreviations (kys) and
    the lexicon's profanity and hard slurs.
    """
    lexicon = lexicon or Lexicon.default()
    for start in range(len(parts) - 2, -1, -1):
        joined = normalize("".join(parts[start:]))
        if len(joined) < 3:
            continue
        if joined in HARM_ABBREVIATIONS or squeeze(joined) in HARM_ABBREVIATIONS:
            return joined
        hits = lexicon.scan(joined)
        if hits.listed:
            return joined
    return None


def entry(t: Traits) -> Entry:
    """What the stream state stores of a text."""
    return Entry(t.fingerprint, t.raid_fingerprint, t.raid_letters, t.short)


@dataclass
class Detected:
    """What the detectors made of a batch."""

    verdicts: list[Verdict]
    raids: list[RaidSeen]
    degraded: bool  # the windowed detectors were skipped (Redis did not answer)


def stateless_labels(t: Traits, thresholds: DetectorThresholds) -> dict[str, str]:
    """caps, link, emote_flood and mention_flood for one text: label -> reason."""
    found: dict[str, str] = {}
    if thresholds.is_on(L.CAPS) and is_caps(t, thresholds):
        found[L.CAPS] = f"{t.upper} of {t.letters} letters upper case"
    if thresholds.is_on(L.LINK):
        outside = [h for h in t.hosts if not allowed_host(h, thresholds.link_allow)]
        if outside:
            s = "" if len(outside) == 1 else "s"
            found[L.LINK] = f"{len(outside)} URL{s} outside the allow-list: {', '.join(outside)}"
    if thresholds.is_on(L.EMOTE_FLOOD) and t.emotes >= thresholds.emote_flood_min:
        found[L.EMOTE_FLOOD] = f"{t.emotes} emotes in one line"
    if thresholds.is_on(L.MENTION_FLOOD) and t.mentions >= thresholds.mention_flood_min:
        found[L.MENTION_FLOOD] = f"{t.mentions} mentions in one line"
    return found


def windowed_labels(w: Windows, thresholds: DetectorThresholds) -> dict[str, str]:
    """spam, flood, split_evasion and raid from one message's window counts."""
    found: dict[str, str] = {}
    if thresholds.is_on(L.SPAM) and w.repeats >= thresholds.spam_repeats:
        found[L.SPAM] = f"{w.repeats} near-identical lines in {thresholds.spam_window_s} s"
    if thresholds.is_on(L.FLOOD) and w.lines >= thresholds.flood_messages:
        found[L.FLOOD] = f"{w.lines} lines in {thresholds.flood_window_s} s"
    if thresholds.is_on(L.SPLIT_EVASION) and len(w.pieces) >= 2:
        word = split_word(w.pieces)
        if word is not None:
            found[L.SPLIT_EVASION] = f"'{word}' spelt across {len(w.pieces)} short lines"
    if w.raid:
        found[L.RAID] = (
            f"raid: {w.raid_size} first-time chatters posting this line "
            f"within {thresholds.raid_window_s} s"
        )
    return found


def merge(verdict: Verdict, found: dict[str, str], thresholds: DetectorThresholds) -> Verdict:
    """The verdict with the detectors' labels and reasons, flagged when a label says so."""
    update = merged_fields(verdict, found, thresholds)
    return verdict.model_copy(update=update) if update else verdict


def merged_fields(
    verdict: Verdict, found: dict[str, str], thresholds: DetectorThresholds
) -> dict[str, object]:
    """What :func:`merge` changes in ``verdict`` (nothing when the detectors found nothing)."""
    if not found:
        return {}
    labels = list(dict.fromkeys([*verdict.labels, *found]))
    flagged = verdict.flagged or any(label in thresholds.flag_labels for label in found)
    return {"labels": labels, "reasons": {**verdict.reasons, **found}, "flagged": flagged}


def raid_harm(verdict: Verdict) -> tuple[bool, list[str]]:
    """(harmful, harm labels) of a raid line, from the model's verdict."""
    harm = sorted(set(verdict.labels) & RAID_HARM_LABELS)
    return verdict.flagged or bool(harm), harm


def raid_event(seen: RaidSeen, message: ChatMessage) -> RaidEvent:
    """The RaidEvent for a raid the stream state says is to be published."""
    lines = sorted(seen.lines, key=lambda line: line.sent_ms)
    sample = list(dict.fromkeys(line.text[:SAMPLE_CHARS] for line in lines))[:5]
    return RaidEvent(
        raid_id=seen.raid_id,
        platform=message.platform,
        community=message.community,
        channel=message.channel,
        started_at=datetime.fromtimestamp(seen.started_ms / 1000, UTC),
        ended_at=datetime.fromtimestamp(seen.ended_ms / 1000, UTC),
        size=max(1, seen.size),
        messages=max(1, seen.messages),
        sample=sample,
        harmful=any(line.harmful for line in lines),
        labels=sorted({label for line in lines for label in line.labels}),
        accounts=seen.accounts[:1000],
        detected_at=utcnow(),
    )


class StreamDetectors:
    """Runs every detector on a batch; degrades instead of failing when Redis is away."""

    def __init__(
        self,
        state: StreamState | None,
        policies: PolicyCache | None,
        retry_after_s: float = 1.0,
    ) -> None:
        self.state = state
        self.policies = policies
        self.retry_after_s = retry_after_s
        self._down_until = 0.0
        # (id of the thresholds, text) -> their stateless labels: chat repeats itself, and a
        # community's thresholds stay one object until the policy cache reads them again.
        self._stateless: dict[tuple[int, str], dict[str, str]] = {}
        self._thresholds: dict[int, DetectorThresholds] = {}

    @property
    def available(self) -> bool:
        return self.state is not None and time.monotonic() >= self._down_until

    def prepare(self, messages: Sequence[ChatMessage]) -> None:
        """Compute the batch's text traits ahead (cached): :meth:`run` then finds them."""
        for text in {m.text for m in messages}:
            traits(text)

    async def _applied(self, messages: Sequence[ChatMessage]) -> list[AppliedPolicy]:
        """Each message's community policy (the defaults where none is known or Redis is away)."""
        communities = {(m.platform.value, m.community) for m in messages}
        policies = (
            await self.policies.applied(communities)
            if self.policies is not None and self.available
            else {}
        )
        default = DEFAULT_POLICY
        # Per message, once: a dict lookup on an enum's value is not free at 1,000 lines a second.
        return [policies.get((m.platform.value, m.community), default) for m in messages]

    async def versions(self, messages: Sequence[ChatMessage]) -> list[str]:
        """The policy version each message's verdict is to carry, asked before the verdicts are
        built: :meth:`run` then copies a verdict only for what the detectors find (a copy for
        the version alone cost 6 us a message). A version that changes in between is set by
        :meth:`run` (policies are cached for ``PolicyCache.ttl_s``)."""
        return [policy.version for policy in await self._applied(messages)]

    async def run(self, messages: Sequence[ChatMessage], verdicts: Sequence[Verdict]) -> Detected:
        """Every detector on ``messages`` and their model ``verdicts`` (same order)."""
        started = time.perf_counter()
        if not messages:
            return Detected(list(verdicts), [], False)
        texts = {m.text: traits(m.text) for m in messages}
        applied = await self._applied(messages)

        windows: list[Windows] | None = None
        raids: list[RaidSeen] = []
        degraded = False
        if self.state is not None and self.available:
            try:
                windows, raids = await self.state.apply(
                    messages,
                    [entry(texts[m.text]) for m in messages],
                    [policy.thresholds for policy in applied],
                    [raid_harm(v) for v in verdicts],
                )
            except (RedisError, OSError, TimeoutError) as exc:
                if self._down_until == 0.0:
                    logger.warning("Redis detector update failed (%s); detectors skipped", exc)
                self._down_until = time.monotonic() + self.retry_after_s
            else:
                self._down_until = 0.0
        if windows is None:
            degraded = self.state is not None
        for raid in raids:
            raid.event = raid_event(raid, messages[raid.index])
        out: list[Verdict] = []
        counted: dict[str, int] = {}
        known, held = self._stateless, self._thresholds
        if len(known) > STATELESS_CACHE or len(held) > 1_000:
            known.clear()
            held.clear()
        for i, (message, verdict) in enumerate(zip(messages, verdicts, strict=True)):
            policy = applied[i]
            limit = policy.thresholds
            # Never changed in place: shared by every line with this text and thresholds.
            key = (id(limit), message.text)
            found = known.get(key)
            if found is None:
                # Most lines have none: one shared empty dict, so that the cache holds (almost)
                # no objects for the garbage collector to walk.
                found = known[key] = stateless_labels(texts[message.text], limit) or NO_LABELS
                held[key[0]] = limit  # held, so that its id names no other object meanwhile
            if windows is not None:
                windowed = windowed_labels(windows[i], limit)
                if windowed:
                    found = {**found, **windowed}
            for label in found:
                counted[label] = counted.get(label, 0) + 1
            # One copy of the verdict for everything the detectors change in it.
            update = merged_fields(verdict, found, limit)
            if degraded and not verdict.degraded:
                update["degraded"] = True
            if verdict.policy_version != policy.version:
                update["policy_version"] = policy.version
            out.append(verdict.model_copy(update=update) if update else verdict)
        for label, n in counted.items():
            metrics.DETECTOR_LABELS.labels(SERVICE, label).inc(n)
        metrics.DETECTOR_SECONDS.labels(SERVICE).observe(time.perf_counter() - started)
        return Detected(out, raids, degraded)

    async def published(self, raids: Sequence[RaidSeen]) -> None:
        """Remember that these raids' events are on the broker (a replay will not resend them)."""
        if not raids or self.state is None:
            return
        try:
            await self.state.mark_published(raids)
        except (RedisError, OSError, TimeoutError) as exc:
            # A replay may publish the event again: consumers de-duplicate by raid_id.
            logger.warning("could not mark %d raid event(s) published: %s", len(raids), exc)
