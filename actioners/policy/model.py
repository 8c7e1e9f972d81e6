"""The policy model: a community's thresholds, per-severity rules, per-label rules, strike ladder,
review holds, raid answers, exemptions, channel overrides and notice templates, validated on load
and on every change. How the parts combine is told in the package docstring
(``actioners.policy``)."""

from __future__ import annotations

import string
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.detection import DetectorThresholds
from schemas.events import ActionKind, Platform, RaidMode, Severity
from schemas.rules import severity_for

# Discord's longest timeout is 28 days.
MAX_TIMEOUT_S = 28 * 24 * 3600

Graded = Literal["LOW", "MEDIUM", "HIGH"]
GRADED: dict[Severity, Graded] = {
    Severity.LOW: "LOW",
    Severity.MEDIUM: "MEDIUM",
    Severity.HIGH: "HIGH",
}


def human_duration(seconds: int) -> str:
    """``seconds`` in the largest whole unit: "10 min", "24 h", "2 d", else "90 s"."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


LadderAction = Literal["warn", "timeout", "kick", "ban"]
# How strong a ladder action is, for ``LabelRule.max_action`` caps.
ACTION_RANK: dict[str, int] = {"warn": 1, "timeout": 2, "kick": 3, "ban": 4}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Thresholds(_Model):
    """``p_toxic`` cut-offs of a community that grades verdicts itself."""

    low: float = Field(ge=0, le=1)
    medium: float = Field(ge=0, le=1)
    high: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _ascending(self) -> Thresholds:
        if not self.low <= self.medium <= self.high:
            raise ValueError("thresholds must satisfy low <= medium <= high")
        return self

    def severity(self, p_toxic: float) -> Severity:
        return severity_for(p_toxic, self.low, self.medium, self.high)

    def cut(self, severity: Severity) -> float:
        return {"LOW": self.low, "MEDIUM": self.medium, "HIGH": self.high}[severity.value]


class SeverityRule(_Model):
    """What a message of one severity gets: deleted or not, and how many strikes."""

    delete: bool = True
    strikes: int = Field(default=1, ge=0, le=100)

    @property
    def acts(self) -> bool:
        return self.delete or self.strikes > 0


class Rung(_Model):
    """From ``strikes`` active strikes on, a new strike brings ``action``."""

    strikes: int = Field(ge=1, le=1000)
    action: Literal["warn", "timeout", "kick", "ban"]
    duration_s: int | None = Field(default=None, ge=1, le=MAX_TIMEOUT_S)

    @model_validator(mode="after")
    def _timeout_has_duration(self) -> Rung:
        if (self.action == "timeout") != (self.duration_s is not None):
            raise ValueError("a timeout rung needs duration_s, and only a timeout rung has one")
        return self

    @property
    def kind(self) -> ActionKind:
        return ActionKind(self.action)

    def describe(self) -> str:
        if self.duration_s is None:
            return self.action
        return f"{self.action} {human_duration(self.duration_s)}"


class LabelRule(_Model):
    """How one verdict label acts (``Policy.labels``).

    Model labels (``insult``, ``threat``, ... with a score in ``Verdict.label_scores``) and
    ``hard_slur`` act through the severity rules: ``delete``/``strikes`` left unset take those of
    the verdict's severity rule, a number replaces them. Other labels (the scorer's stream
    detectors: ``spam``, ``flood``, ``link``, ...) act on their own, whatever ``p_toxic`` says:
    unset ``delete`` means delete, unset ``strikes`` means none.
    """

    act: bool = Field(default=True, description="False: this label never acts.")
    delete: bool | None = None
    strikes: int | None = Field(default=None, ge=0, le=100)
    max_action: LadderAction | None = Field(
        default="ban",
        description="The strongest ladder step this label may bring (None: strikes, no step).",
    )
    min_score: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Model labels: count only with a label score at least this high.",
    )
    hold: bool = Field(default=False, description="Always held for a moderator's review.")
    hold_below: Graded | None = Field(
        default=None,
        description="Model labels: held for review when graded below this severity.",
    )
    with_harm: LadderAction | None = Field(
        default=None,
        description="Together with an acting harm label: this action at once (raid + threat).",
    )


class RaidAnswer(_Model):
    """What the community does when the scorer reports a raid (``RaidEvent``)."""

    act_on: Literal["harmful", "all", "never"] = Field(
        default="harmful",
        description="harmful: only raids whose lines are harmful (a friendly raid gets nothing).",
    )
    modes: list[RaidMode] = Field(default_factory=lambda: [RaidMode.SLOW], max_length=4)
    platform_modes: dict[Platform, list[RaidMode]] = Field(
        default_factory=dict, description="Per platform, instead of ``modes``."
    )
    duration_s: int = Field(default=600, ge=1, le=MAX_TIMEOUT_S)

    @model_validator(mode="after")
    def _modes_bounded(self) -> RaidAnswer:
        for modes in self.platform_modes.values():
            if len(modes) > 4:
                raise ValueError("at most 4 raid modes per platform")
        return self

    def modes_for(self, platform: Platform) -> list[RaidMode]:
        return list(self.platform_modes.get(platform, self.modes))

    def answers(self, harmful: bool) -> bool:
        return self.act_on == "all" or (self.act_on == "harmful" and harmful)


class Templates(_Model):
    """What the user is told. Fields: {user}, {channel}, {community}, {severity}, {rule},
    {strikes}, {duration}, {next_step}, {policy_version}."""

    warn: str = (
        "Your message in <#{channel}> was removed ({severity}: {rule}). "
        "You have {strikes} active strike(s); next: {next_step}."
    )
    timeout: str = "Timed out for {duration}: {strikes} active strike(s)."
    kick: str = "Removed from the community: {strikes} active strike(s)."
    ban: str = "Banned: {strikes} active strike(s)."

    @model_validator(mode="after")
    def _fields_known(self) -> Templates:
        for name in ("warn", "timeout", "kick", "ban"):
            for _, key, _, _ in string.Formatter().parse(getattr(self, name)):
                if key is not None and key not in TEMPLATE_FIELDS:
                    raise ValueError(f"template {name!r} uses unknown field {{{key}}}")
        return self


TEMPLATE_FIELDS = frozenset(
    {
        "user",
        "channel",
        "community",
        "severity",
        "rule",
        "strikes",
        "duration",
        "next_step",
        "policy_version",
    }
)


class ChannelOverride(_Model):
    """A channel's departures from its community's policy (unset = the community's)."""

    thresholds: Thresholds | None = None
    actions: dict[Graded, SeverityRule] | None = None
    labels: dict[str, LabelRule] | None = None
    exempt: bool = False
    monitored_only: bool = False
    shadow: bool | None = None


UNLABELLED = "unlabelled"
"""The ``Policy.labels`` key for a flagged verdict that names no model harm label (an older
scorer, a model without label heads, or label scores all under their ``min_score``)."""

DEFAULT_DECAY_DAYS = 30.0


class Policy(_Model):
    """A community's moderation policy.

    Stored documents written before labels, holds, raids and first-day mode existed load as
    they are: an absent ``labels`` section lets every harm label act through the severity rules
    as before, and ``strike_decay_days`` still works (``strike_decay_hours`` is the livestream
    setting; set one of them).
    """

    preset: str = Field(default="custom", description="The preset it started from.")
    shadow: bool = Field(default=False, description="Decide and record; act on nothing.")
    first_day: bool = Field(
        default=False,
        description="A new community's first day: like shadow, until `warden policy go-live`.",
    )
    thresholds: Thresholds | None = Field(
        default=None, description="None: trust the model's severity and flag."
    )
    actions: dict[Graded, SeverityRule]
    labels: dict[str, LabelRule] = Field(
        default_factory=dict, description="Per verdict label (see ``LabelRule``)."
    )
    ladder: list[Rung]
    strike_decay_days: float | None = Field(default=None, gt=0, le=3650)
    strike_decay_hours: float | None = Field(default=None, gt=0, le=3650 * 24)
    ban_requires_review: bool = Field(
        default=False, description="A ban the ladder reaches is held for a moderator instead."
    )
    raid: RaidAnswer = RaidAnswer()
    detectors: DetectorThresholds = Field(
        default_factory=DetectorThresholds,
        description="The scorer's stream detectors, mirrored to Redis (actioners.detectors).",
    )
    nsfw_channel_allows: list[str] = Field(
        default_factory=lambda: ["sexual_explicit", "sexual_suggestive"],
        max_length=64,
        description="Labels that never act in a channel the platform marks NSFW.",
    )
    exempt_roles: list[str] = Field(default_factory=list)
    exempt_channels: list[str] = Field(default_factory=list)
    monitored_channels: list[str] = Field(default_factory=list)
    channels: dict[str, ChannelOverride] = Field(default_factory=dict)
    templates: Templates = Templates()

    @model_validator(mode="after")
    def _ladder_ascends(self) -> Policy:
        steps = [rung.strikes for rung in self.ladder]
        if steps != sorted(set(steps)):
            raise ValueError("ladder rungs need distinct strike counts in ascending order")
        if self.strike_decay_days is not None and self.strike_decay_hours is not None:
            raise ValueError("set strike_decay_hours or strike_decay_days, not both")
        return self

    @property
    def strike_decay_s(self) -> float:
        """How long a strike counts, in seconds."""
        if self.strike_decay_hours is not None:
            return self.strike_decay_hours * 3600
        return (self.strike_decay_days or DEFAULT_DECAY_DAYS) * 86400

    @property
    def decay_text(self) -> str:
        """The strike decay as a moderator reads it: "6 h", "30 d"."""
        if self.strike_decay_hours is not None:
            return f"{self.strike_decay_hours:g} h"
        return f"{self.strike_decay_days or DEFAULT_DECAY_DAYS:g} d"

    @property
    def live(self) -> bool:
        """Whether the policy acts at all (not shadow, not first-day)."""
        return not (self.shadow or self.first_day)

    def rung_for(self, strikes: int, cap: LadderAction | None = "ban") -> Rung | None:
        """The highest rung ``strikes`` active strikes reach, no stronger than ``cap`` (the
        strongest rung at or under the cap when the one reached is stronger; None: none)."""
        if cap is None:
            return None
        reached = [
            rung
            for rung in self.ladder
            if rung.strikes <= strikes and ACTION_RANK[rung.action] <= ACTION_RANK[cap]
        ]
        return reached[-1] if reached else None

    def next_rung(self, strikes: int) -> Rung | None:
        return next((rung for rung in self.ladder if rung.strikes > strikes), None)

    def to_document(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
