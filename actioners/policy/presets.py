"""The built-in presets (lenient, balanced, strict, livestream), first-day mode and the version
strings of policies.

What every preset shares (version 2):

- ``profanity`` alone is no harm: only ``strict`` acts on it (and never beyond a timeout).
- ``threat``, ``self_harm``, ``identity_attack`` and ``hard_slur`` strike harder than the
  severity rule; automatic bans are left to ``threat``, ``identity_attack``, ``hard_slur`` and
  raid accounts whose lines are harmful (``raid`` with ``with_harm: ban``); insults,
  harassment and detector labels stop at a kick or a timeout.
- Detector labels ``spam``, ``flood``, ``link``, ``mention_flood``, ``split_evasion``: delete
  and a light strike (lenient: delete only), never beyond a timeout. ``caps`` and
  ``emote_flood`` alone do nothing (strict: delete only). ``raid`` alone does nothing (strict:
  delete); a friendly raid gets no raid mode (``raid.act_on: harmful``).
- Moderators, VIPs and the broadcaster are exempt (role names as the platforms give them).
- Image labels (version 3): ``sexual_explicit`` strikes like a threat, up to a ban;
  ``sexual_suggestive`` is allowed (strict: deleted, no strike). In a channel the platform
  marks NSFW (Discord's age-restricted channels) both are allowed (``nsfw_channel_allows``);
  for platforms without the flag, a channel override's label rules do the same.

``livestream`` is the one for fast chat (Twitch and the like): strikes decay in 6 hours, the
ladder starts with short timeouts and has no kick (Twitch has none), borderline insults and
harassment (graded below HIGH) and flagged lines that name no harm are held for a moderator's
review instead of acted on, and a raid switches the channel to followers-only and slow mode
(Discord: slowmode and a higher verification level) for 10 minutes. ``balanced`` stays the
general default, label-aware as above, with the 30-day decay of community servers.
"""

from __future__ import annotations

from actioners.policy.model import (
    UNLABELLED,
    Graded,
    LabelRule,
    LadderAction,
    Policy,
    RaidAnswer,
    Rung,
    SeverityRule,
    Thresholds,
)
from schemas.detection import DetectorThresholds
from schemas.events import Platform, RaidMode

# Bumped whenever a preset changes, so decisions under the built-in presets stay explainable.
# 2: label rules, review holds, raid answers, exemptions, the livestream preset.
# 3: image labels (sexual_explicit, sexual_suggestive) and NSFW channels.
PRESET_VERSION = 3

_DEFAULT_LADDER = [
    Rung(strikes=1, action="warn"),
    Rung(strikes=2, action="timeout", duration_s=600),
    Rung(strikes=3, action="timeout", duration_s=3600),
    Rung(strikes=4, action="timeout", duration_s=86400),
    Rung(strikes=5, action="kick"),
    Rung(strikes=6, action="ban"),
]

_STAFF = ["broadcaster", "moderator", "vip"]

_STREAM_MODES = {
    Platform.TWITCH: [RaidMode.FOLLOWERS, RaidMode.SLOW],
    Platform.DISCORD: [RaidMode.SLOW, RaidMode.VERIFICATION],
}


def _labels(
    *,
    harm_strikes: int,
    slur_strikes: int,
    detector_strikes: int,
    insult_cap: LadderAction,
    profanity: LabelRule,
    shouting: LabelRule,
    raid: LabelRule,
    borderline: Graded | None = None,
    unlabelled: LabelRule | None = None,
    suggestive: LabelRule | None = None,
) -> dict[str, LabelRule]:
    """The label rules of a preset, from the few numbers presets differ in."""
    detector = LabelRule(delete=True, strikes=detector_strikes, max_action="timeout")
    rules = {
        "profanity": profanity,
        "insult": LabelRule(max_action=insult_cap, hold_below=borderline),
        "sexual_harassment": LabelRule(
            strikes=max(harm_strikes - 1, 1), max_action="kick", hold_below=borderline
        ),
        "threat": LabelRule(strikes=harm_strikes, max_action="ban"),
        "identity_attack": LabelRule(strikes=harm_strikes, max_action="ban"),
        "self_harm": LabelRule(strikes=harm_strikes, max_action="kick"),
        "hard_slur": LabelRule(strikes=slur_strikes, max_action="ban"),
        "sexual_explicit": LabelRule(strikes=harm_strikes, max_action="ban"),
        "sexual_suggestive": suggestive or LabelRule(act=False),
        "spam": detector,
        "flood": detector,
        "link": detector,
        "mention_flood": detector,
        "split_evasion": detector,
        "caps": shouting,
        "emote_flood": shouting,
        "raid": raid,
    }
    if unlabelled is not None:
        rules[UNLABELLED] = unlabelled
    return rules


_NOTHING = LabelRule(act=False)

PRESETS: dict[str, Policy] = {
    # Only clear abuse is removed; strikes build up slowly and fade in two weeks.
    "lenient": Policy(
        preset="lenient",
        thresholds=Thresholds(low=0.6, medium=0.8, high=0.92),
        actions={
            "LOW": SeverityRule(delete=False, strikes=0),
            "MEDIUM": SeverityRule(delete=True, strikes=1),
            "HIGH": SeverityRule(delete=True, strikes=1),
        },
        labels=_labels(
            harm_strikes=2,
            slur_strikes=2,
            detector_strikes=0,
            insult_cap="timeout",
            profanity=_NOTHING,
            shouting=_NOTHING,
            raid=LabelRule(act=False, with_harm="ban"),
            unlabelled=LabelRule(max_action="timeout"),
        ),
        ladder=[
            Rung(strikes=1, action="warn"),
            Rung(strikes=3, action="timeout", duration_s=600),
            Rung(strikes=5, action="timeout", duration_s=3600),
            Rung(strikes=7, action="timeout", duration_s=86400),
            Rung(strikes=10, action="kick"),
            Rung(strikes=15, action="ban"),
        ],
        strike_decay_days=14,
        raid=RaidAnswer(act_on="harmful", platform_modes=_STREAM_MODES, duration_s=300),
        detectors=DetectorThresholds(
            spam_repeats=8, flood_messages=15, mention_flood_min=8, raid_min_accounts=20
        ),
        exempt_roles=list(_STAFF),
    ),
    # The model's severity and flag as they are; the default ladder; strikes last 30 days.
    "balanced": Policy(
        preset="balanced",
        actions={
            "LOW": SeverityRule(delete=False, strikes=0),
            "MEDIUM": SeverityRule(delete=True, strikes=1),
            "HIGH": SeverityRule(delete=True, strikes=2),
        },
        labels=_labels(
            harm_strikes=3,
            slur_strikes=3,
            detector_strikes=1,
            insult_cap="kick",
            profanity=_NOTHING,
            shouting=_NOTHING,
            raid=LabelRule(act=False, with_harm="ban"),
            # Verdicts of scorers that name no label act as before labels existed.
            unlabelled=LabelRule(),
        ),
        ladder=list(_DEFAULT_LADDER),
        strike_decay_days=30,
        raid=RaidAnswer(act_on="harmful", platform_modes=_STREAM_MODES, duration_s=600),
        # The scorer's defaults are the balanced preset's.
        detectors=DetectorThresholds(),
        exempt_roles=list(_STAFF),
    ),
    # Low thresholds, borderline messages removed, a short ladder, strikes kept for 90 days.
    "strict": Policy(
        preset="strict",
        thresholds=Thresholds(low=0.25, medium=0.45, high=0.65),
        actions={
            "LOW": SeverityRule(delete=True, strikes=0),
            "MEDIUM": SeverityRule(delete=True, strikes=1),
            "HIGH": SeverityRule(delete=True, strikes=3),
        },
        labels=_labels(
            harm_strikes=3,
            slur_strikes=5,
            detector_strikes=1,
            insult_cap="kick",
            profanity=LabelRule(max_action="timeout"),
            shouting=LabelRule(delete=True, strikes=0),
            suggestive=LabelRule(delete=True, strikes=0),
            raid=LabelRule(delete=True, strikes=0, with_harm="ban"),
            unlabelled=LabelRule(),
        ),
        ladder=[
            Rung(strikes=1, action="warn"),
            Rung(strikes=2, action="timeout", duration_s=3600),
            Rung(strikes=3, action="timeout", duration_s=86400),
            Rung(strikes=4, action="kick"),
            Rung(strikes=5, action="ban"),
        ],
        strike_decay_days=90,
        raid=RaidAnswer(act_on="all", platform_modes=_STREAM_MODES, duration_s=900),
        detectors=DetectorThresholds(
            spam_repeats=3,
            flood_messages=6,
            caps_min_letters=8,
            emote_flood_min=6,
            mention_flood_min=3,
            raid_min_accounts=6,
        ),
        exempt_roles=["broadcaster", "moderator"],
    ),
    # Fast chat: strikes fade within a stream, short timeouts first, borderline lines held for
    # review, bans only for threats, identity attacks, hard slurs and harmful raid accounts.
    "livestream": Policy(
        preset="livestream",
        actions={
            "LOW": SeverityRule(delete=False, strikes=0),
            "MEDIUM": SeverityRule(delete=True, strikes=1),
            "HIGH": SeverityRule(delete=True, strikes=2),
        },
        labels=_labels(
            harm_strikes=3,
            slur_strikes=6,
            detector_strikes=1,
            insult_cap="timeout",
            profanity=_NOTHING,
            shouting=_NOTHING,
            raid=LabelRule(act=False, with_harm="ban"),
            borderline="HIGH",
            unlabelled=LabelRule(max_action="timeout", hold_below="HIGH"),
        ),
        ladder=[
            Rung(strikes=1, action="warn"),
            Rung(strikes=2, action="timeout", duration_s=60),
            Rung(strikes=3, action="timeout", duration_s=600),
            Rung(strikes=4, action="timeout", duration_s=3600),
            Rung(strikes=5, action="timeout", duration_s=86400),
            Rung(strikes=6, action="ban"),
        ],
        strike_decay_hours=6,
        raid=RaidAnswer(act_on="harmful", platform_modes=_STREAM_MODES, duration_s=600),
        # Chat repeats itself (copypasta, "W" trains, emote walls) and fills fast: repeats and
        # bursts need more before they count, and a raid more accounts.
        detectors=DetectorThresholds(
            spam_repeats=6,
            flood_messages=12,
            emote_flood_min=12,
            raid_min_accounts=15,
        ),
        exempt_roles=list(_STAFF),
    ),
}


def preset(name: str) -> Policy:
    """The built-in preset ``name``; ValueError naming the presets if there is none."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; one of {', '.join(PRESETS)}") from None


def first_day(name: str) -> Policy:
    """Preset ``name`` in first-day mode: what a community with no stored policy runs on.

    A new community's first day decides and records everything (decisions, shadow strikes,
    skipped actions, holds) and acts on nothing, so its moderators can read what the policy
    would have done (``warden explain``, the action results) before ``warden policy go-live``.
    """
    return preset(name).model_copy(update={"first_day": True})


def preset_version(name: str) -> str:
    """The policy version of a community that has no policy stored: the preset's."""
    return f"preset:{name}@{PRESET_VERSION}"


def first_day_version(name: str) -> str:
    """The policy version of a community in first-day mode with no policy stored."""
    return f"first-day:{name}@{PRESET_VERSION}"


def stored_version(platform: str, community: str, version: int) -> str:
    """The policy version of a community's stored policy, version ``version``."""
    return f"{platform}:{community}@v{version}"


def builtin(version_id: str) -> Policy | None:
    """The built-in policy a version id names (``preset:NAME@N``, ``first-day:NAME@N``), None
    for a stored version's id (``platform:community@vN``: in the ``policies`` table).

    ValueError when the id names a preset this code does not have, or another generation of
    the presets (``@N`` is not :data:`PRESET_VERSION`): that policy cannot be rebuilt here.
    """
    for prefix, build in (("preset:", preset), ("first-day:", first_day)):
        if not version_id.startswith(prefix):
            continue
        name, _, number = version_id.removeprefix(prefix).rpartition("@")
        if not name or number != str(PRESET_VERSION):
            raise ValueError(
                f"policy version {version_id!r}: this code has the presets of version "
                f"{PRESET_VERSION} ({prefix}NAME@{PRESET_VERSION})"
            )
        return build(name)
    return None


def stored_number(version_id: str) -> tuple[str, str, int] | None:
    """(platform, community, version) of a stored version's id (:func:`stored_version`), None
    for anything else."""
    head, at, number = version_id.rpartition("@v")
    platform, colon, community = head.partition(":")
    if not at or not colon or not community or not number.isdigit():
        return None
    return platform, community, int(number)
