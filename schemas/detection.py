"""Thresholds of the scorer's stream detectors, shared by the scorer and the actioner.

The actioner keeps each community's policy (with its ``detectors`` section) in PostgreSQL and
mirrors that section to Redis, where the scorer reads it (cached for a short while per
community; a community with nothing there gets the defaults, which are the ``balanced`` preset):

    wd:policy:<platform:community>   hash, field "detectors" = DetectorThresholds as JSON,
                                     field "version" = the policy version they belong to

The scorer writes the version it applied into ``Verdict.policy_version``: the actioner's id of
the policy version (``platform:community@vN``, ``preset:NAME@N``, ``first-day:NAME@N``),
:data:`DEFAULT_VERSION` when nothing is mirrored (or the mirror is malformed) and
:data:`UNVERSIONED` for thresholds mirrored without a version (by an older actioner).

A malformed value is logged by the scorer and the defaults are used: a policy typo must never
stop scoring.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.labels import FLOOD, LINK, MENTION_FLOOD, SPAM, SPLIT_EVASION, STREAM_LABELS

DETECTORS_FIELD = "detectors"
VERSION_FIELD = "version"
# ``Verdict.policy_version`` of a community scored with the built-in defaults (nothing mirrored).
DEFAULT_VERSION = "defaults"
# ... and of one whose mirrored thresholds carry no version.
UNVERSIONED = "unversioned"

# The platforms' own hosts: a clip, a VOD or a channel link is what chat shares all day.
# discord.gg (server invites) is left out on purpose: invite spam is the commonest link spam.
DEFAULT_LINK_ALLOW: tuple[str, ...] = (
    "twitch.tv",
    "youtube.com",
    "youtu.be",
    "discord.com",
    "kick.com",
)

# Labels that make a verdict ``flagged`` on their own. caps and emote_flood are chat style, not
# harm; raid lines are answered at channel level through the RaidEvent (a raid line is flagged
# when the model flags it, and then it also carries its harm labels).
DEFAULT_FLAG_LABELS: tuple[str, ...] = (SPAM, FLOOD, LINK, MENTION_FLOOD, SPLIT_EVASION)


def policy_key(platform: str, community: str) -> str:
    """The Redis hash holding a community's mirrored policy sections."""
    return f"wd:policy:{platform}:{community}"


class DetectorThresholds(BaseModel):
    """When each stream detector fires; the defaults are the ``balanced`` preset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Per detector label (schemas.labels.STREAM_LABELS): False turns it off; missing means on.
    enabled: dict[str, bool] = Field(default_factory=dict)
    # Labels that set ``Verdict.flagged`` by themselves.
    flag_labels: tuple[str, ...] = DEFAULT_FLAG_LABELS
    # spam: this many near-identical lines from one user within the window (the line that
    # reaches the count and every later one is labelled).
    spam_repeats: int = Field(default=5, ge=2, le=200)
    spam_window_s: int = Field(default=60, ge=1, le=3600)
    # flood: this many lines from one user within the window.
    flood_messages: int = Field(default=10, ge=2, le=10_000)
    flood_window_s: int = Field(default=10, ge=1, le=3600)
    # caps: at least this many letters outside emotes, and this share of them upper case.
    caps_min_letters: int = Field(default=12, ge=1, le=10_000)
    caps_ratio: float = Field(default=0.8, gt=0.0, le=1.0)
    # link: hosts allowed (a host matches itself and its subdomains; "www." is ignored).
    link_allow: tuple[str, ...] = DEFAULT_LINK_ALLOW
    # emote_flood: this many emotes in one line.
    emote_flood_min: int = Field(default=8, ge=2, le=10_000)
    # mention_flood: this many mentions in one line.
    mention_flood_min: int = Field(default=5, ge=2, le=1000)
    # split_evasion: lines of at most this many characters, each within the window of the next.
    split_max_chars: int = Field(default=3, ge=1, le=10)
    split_window_s: int = Field(default=15, ge=1, le=600)
    # raid: this many first-time chatters posting a near-duplicate line in one channel within
    # the window; lines shorter than raid_min_chars ("hi", "LUL") never count.
    raid_min_accounts: int = Field(default=10, ge=2, le=100_000)
    raid_window_s: int = Field(default=60, ge=5, le=3600)
    raid_min_chars: int = Field(default=6, ge=1, le=200)

    @field_validator("enabled")
    @classmethod
    def _known_detectors(cls, value: dict[str, bool]) -> dict[str, bool]:
        unknown = sorted(set(value) - set(STREAM_LABELS))
        if unknown:
            raise ValueError(f"unknown detector(s) {unknown}; known: {list(STREAM_LABELS)}")
        return value

    @field_validator("link_allow")
    @classmethod
    def _hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(host.strip().lower().removeprefix("www.") for host in value if host.strip())

    def is_on(self, label: str) -> bool:
        """Whether the detector that writes ``label`` runs."""
        return self.enabled.get(label, True)
