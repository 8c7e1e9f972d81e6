"""The stream detectors' pure parts: fingerprints, caps, links, emote walls, mentions, split
evasion joins, thresholds, and how labels merge into a verdict."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.detection import DetectorThresholds, policy_key
from schemas.events import Platform, Severity, Verdict, utcnow
from schemas.labels import CAPS, EMOTE_FLOOD, LINK, MENTION_FLOOD, RAID, SPAM, SPLIT_EVASION
from scorers.detectors import (
    StreamDetectors,
    allowed_host,
    merge,
    raid_harm,
    split_word,
    stateless_labels,
    traits,
    url_host,
    windowed_labels,
)
from scorers.stream_state import Windows, raid_id

DEFAULTS = DetectorThresholds()


def verdict(text: str = "hi", flagged: bool = False, labels: list[str] | None = None) -> Verdict:
    now = utcnow()
    return Verdict(
        message_id="m1",
        platform=Platform.TWITCH,
        community="c",
        channel="#main",
        user="u",
        text=text,
        p_toxic=0.5,
        severity=Severity.MEDIUM if flagged else Severity.SAFE,
        flagged=flagged,
        labels=labels or [],
        model_version="v",
        sent_at=now,
        received_at=now,
        scored_at=now,
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("buy followers 123 cheap", "buy followers 456 cheap"),  # digits
        ("buy followers cheap", "buuuuy followers cheeeap"),  # repeats squeezed
        ("KEKW buy now LUL", "LUL buy now KEKW KEKW"),  # emote order and count
        ("Buy Now!!", "buy now"),  # case and punctuation
        ("@ana free skins here", "@bob free skins here"),  # whom it mentions
        ("fr33 sk1ns", "free skins"),  # leetspeak
    ],
)
def test_near_identical_lines_share_a_fingerprint(a: str, b: str) -> None:
    assert traits(a).fingerprint == traits(b).fingerprint


@pytest.mark.parametrize(
    ("a", "b"),
    [("buy followers", "sell followers"), ("gg", "gg KEKW"), ("nice play", "play nice")],
)
def test_different_lines_do_not(a: str, b: str) -> None:
    assert traits(a).fingerprint != traits(b).fingerprint


def test_the_raid_fingerprint_folds_obfuscation_and_emotes() -> None:
    base = traits("STREAMER RAID let's goooo")
    for variant in (
        "s t r e a m e r raid lets go PogChamp",
        "ЅTREAMER RAID lets go!!!",
        "streamer-raid lets go 2",
    ):
        assert traits(variant).raid_fingerprint == base.raid_fingerprint, variant
    assert traits("KEKW KEKW").raid_fingerprint == ""  # emotes alone are hype, not a raid line


def test_caps_needs_length_and_ratio_and_ignores_emotes() -> None:
    assert CAPS in stateless_labels(traits("WHY WOULD YOU DO THAT TO ME"), DEFAULTS)
    assert CAPS not in stateless_labels(traits("WHY NOT"), DEFAULTS)  # too short to shout
    assert CAPS not in stateless_labels(traits("Why would you do that to me"), DEFAULTS)
    assert CAPS not in stateless_labels(traits("KEKW OMEGALUL POGGERS LULW KEKW"), DEFAULTS)
    reason = stateless_labels(traits("THIS IS SO UNFAIR HONESTLY"), DEFAULTS)[CAPS]
    assert reason == "22 of 22 letters upper case"


def test_links_outside_the_allow_list() -> None:
    assert url_host("https://www.Twitch.tv/x") == "twitch.tv"
    assert url_host("bit.ly/abc") == "bit.ly"
    assert allowed_host("clips.twitch.tv", ["twitch.tv"])
    assert not allowed_host("nottwitch.tv", ["twitch.tv"])
    found = stateless_labels(
        traits("clip https://clips.twitch.tv/abc and free subs at bit.ly/x or discord.gg/raid"),
        DEFAULTS,
    )
    assert found[LINK] == "2 URLs outside the allow-list: bit.ly, discord.gg"
    assert LINK not in stateless_labels(traits("watch youtu.be/xyz"), DEFAULTS)
    assert LINK not in stateless_labels(traits("e.g. this... lol.lmao"), DEFAULTS)
    custom = DetectorThresholds(link_allow=("www.Bit.ly",))
    assert LINK not in stateless_labels(traits("bit.ly/x"), custom)


def test_emote_walls_and_mention_floods() -> None:
    wall = "KEKW " * 6 + "LUL OMEGALUL"
    assert stateless_labels(traits(wall), DEFAULTS)[EMOTE_FLOOD] == "8 emotes in one line"
    assert EMOTE_FLOOD in stateless_labels(traits("😂" * 9), DEFAULTS)
    assert EMOTE_FLOOD not in stateless_labels(traits("KEKW KEKW KEKW"), DEFAULTS)
    mentions = "@ana @bob @cid <@123456> @dee come look"
    assert stateless_labels(traits(mentions), DEFAULTS)[MENTION_FLOOD] == "5 mentions in one line"
    assert MENTION_FLOOD not in stateless_labels(traits("@ana @bob gg"), DEFAULTS)


def test_short_lines_for_split_evasion() -> None:
    assert traits("K").short == "k"
    assert traits("y!").short == "y"
    assert traits("what a play").short == ""


@pytest.mark.parametrize(
    ("parts", "word"),
    [
        (["k", "y", "s"], "kys"),
        (["go", "k", "y", "s"], "kys"),
        (["k", "y", "5"], "kys"),  # leetspeak folded once joined
        (["k", "m", "s"], "kms"),
        (["f", "a", "g"], "fag"),
    ],
)
def test_split_words_are_found(parts: list[str], word: str) -> None:
    assert split_word(parts) == word


@pytest.mark.parametrize("parts", [["l", "o", "l"], ["g", "g"], ["kys"], ["k", "y", "s", "lol"]])
def test_ordinary_short_lines_are_not(parts: list[str]) -> None:
    assert split_word(parts) is None


def test_windowed_labels_and_their_reasons() -> None:
    found = windowed_labels(
        Windows(lines=12, repeats=5, pieces=("k", "y", "s"), raid=True, raid_size=14), DEFAULTS
    )
    assert found == {
        SPAM: "5 near-identical lines in 60 s",
        "flood": "12 lines in 10 s",
        SPLIT_EVASION: "'kys' spelt across 3 short lines",
        RAID: "raid: 14 first-time chatters posting this line within 60 s",
    }
    assert windowed_labels(Windows(lines=9, repeats=4), DEFAULTS) == {}
    off = DetectorThresholds(enabled={"spam": False, "flood": False})
    assert windowed_labels(Windows(lines=50, repeats=50), off) == {}


def test_merge_flags_only_actionable_labels() -> None:
    wall = merge(verdict(), {EMOTE_FLOOD: "9 emotes in one line"}, DEFAULTS)
    assert wall.labels == [EMOTE_FLOOD] and not wall.flagged
    assert wall.reasons == {EMOTE_FLOOD: "9 emotes in one line"}
    raid = merge(verdict(), {RAID: "raid"}, DEFAULTS)
    assert not raid.flagged  # answered at channel level by the RaidEvent
    spam = merge(verdict(labels=["insult"]), {SPAM: "5 near-identical lines in 60 s"}, DEFAULTS)
    assert spam.flagged and spam.labels == ["insult", SPAM]
    strict = DetectorThresholds(flag_labels=(CAPS,))
    assert merge(verdict(), {CAPS: "x"}, strict).flagged
    unchanged = verdict()
    assert merge(unchanged, {}, DEFAULTS) is unchanged


def test_raid_harm_ignores_profanity_alone() -> None:
    assert raid_harm(verdict(labels=["profanity"])) == (False, [])
    assert raid_harm(verdict(labels=["identity_attack", "profanity"])) == (
        True,
        ["identity_attack"],
    )
    assert raid_harm(verdict(flagged=True)) == (True, [])


def test_thresholds_refuse_unknown_detectors_and_name_the_key() -> None:
    with pytest.raises(ValidationError, match="unknown detector"):
        DetectorThresholds(enabled={"spamm": False})
    with pytest.raises(ValidationError):
        DetectorThresholds(spam_repeats=1)
    assert policy_key("twitch", "chan") == "wd:policy:twitch:chan"
    assert DetectorThresholds.model_validate_json(DEFAULTS.model_dump_json()) == DEFAULTS


def test_raid_ids_are_deterministic_and_bounded() -> None:
    assert raid_id("twitch:c:#main", "m1") == "twitch:c:#main:m1"
    long = raid_id("twitch:" + "c" * 200 + ":#main", "m1")
    assert long == raid_id("twitch:" + "c" * 200 + ":#main", "m1") and len(long) <= 200


async def test_without_redis_only_the_per_line_detectors_run() -> None:
    from schemas.events import ChatMessage

    message = ChatMessage.model_validate(
        {
            "message_id": "m1",
            "platform": "twitch",
            "community": "c",
            "channel": "#main",
            "user": "u",
            "text": "free skins at bit.ly/x",
            "sent_at": "2026-11-21T10:00:00+00:00",
            "received_at": "2026-11-21T10:00:00+00:00",
        }
    )
    detected = await StreamDetectors(None, None).run([message], [verdict(message.text)])
    (out,) = detected.verdicts
    assert out.labels == [LINK] and out.flagged and not out.degraded and not detected.raids
