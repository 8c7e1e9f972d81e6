"""The policy model: a community's thresholds, per-severity rules, strike ladder, exemptions,
channel overrides and notice templates, validated on load and on every change."""

from __future__ import annotations

import string
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.events import ActionKind, Severity
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
    exempt: bool = False
    monitored_only: bool = False
    shadow: bool | None = None


class Policy(_Model):
    """A community's moderation policy."""

    preset: str = Field(default="custom", description="The preset it started from.")
    shadow: bool = Field(default=False, description="Decide and record; act on nothing.")
    thresholds: Thresholds | None = Field(
        default=None, description="None: trust the model's severity and flag."
    )
    actions: dict[Graded, SeverityRule]
    ladder: list[Rung]
    strike_decay_days: float = Field(default=30, gt=0, le=3650)
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
        return self

    def rung_for(self, strikes: int) -> Rung | None:
        """The highest rung ``strikes`` active strikes reach."""
        reached = [rung for rung in self.ladder if rung.strikes <= strikes]
        return reached[-1] if reached else None

    def next_rung(self, strikes: int) -> Rung | None:
        return next((rung for rung in self.ladder if rung.strikes > strikes), None)

    def to_document(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
