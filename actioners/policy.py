"""Which actions a verdict calls for: a community's policy, its presets and the strike ladder.

A policy belongs to one community (a Discord guild, a Slack workspace, a Twitch channel), with
per-channel overrides. It is pure data (stored as JSON in PostgreSQL, one row per version, see
``actioners.policystore``); ``evaluate`` turns a verdict, the policy and the user's active strike
count into a ``Decision``, with no I/O, so every decision can be replayed and explained.

How a verdict is judged:

1. Severity: a ``hard_slur`` label is always HIGH. Otherwise a community (or channel) with its
   own ``thresholds`` grades ``p_toxic`` itself, flagged or not; one without trusts the model:
   the verdict's severity, when the scorer flagged it.
2. Rule: ``actions[severity]`` says whether the message is deleted and how many strikes it adds.
3. Ladder: the user's active strikes (not expired after ``strike_decay_days``, not pardoned) plus
   the new ones pick the highest rung reached: warn -> timeout 10 min -> 1 h -> 24 h -> kick ->
   ban by default. Every new strike takes the user's action from the rung it reaches.
4. Exempt roles and channels get no strikes and no action; shadow mode and monitored-only
   channels decide and record everything and act on nothing (their strikes are shadow strikes).
"""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

import toxicity.base
from schemas.events import ActionKind, ActionRequest, Severity, Verdict

HARD_SLUR = "hard_slur"
# Discord's longest timeout is 28 days.
MAX_TIMEOUT_S = 28 * 24 * 3600
# Bumped whenever a preset changes, so decisions under the built-in presets stay explainable.
PRESET_VERSION = 1

Graded = Literal["LOW", "MEDIUM", "HIGH"]
GRADED: dict[Severity, Graded] = {
    Severity.LOW: "LOW",
    Severity.MEDIUM: "MEDIUM",
    Severity.HIGH: "HIGH",
}


def action_id(message_id: str, kind: ActionKind) -> str:
    """Deterministic, so a verdict delivered twice asks for the same action twice, not two."""
    return f"{message_id}:{kind.value}"


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
        return toxicity.base.Thresholds(self.low, self.medium, self.high).severity(p_toxic)

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


_DEFAULT_LADDER = [
    Rung(strikes=1, action="warn"),
    Rung(strikes=2, action="timeout", duration_s=600),
    Rung(strikes=3, action="timeout", duration_s=3600),
    Rung(strikes=4, action="timeout", duration_s=86400),
    Rung(strikes=5, action="kick"),
    Rung(strikes=6, action="ban"),
]

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
        ladder=[
            Rung(strikes=1, action="warn"),
            Rung(strikes=3, action="timeout", duration_s=600),
            Rung(strikes=5, action="timeout", duration_s=3600),
            Rung(strikes=7, action="timeout", duration_s=86400),
            Rung(strikes=10, action="kick"),
            Rung(strikes=15, action="ban"),
        ],
        strike_decay_days=14,
    ),
    # The model's severity and flag as they are; the default ladder; strikes last 30 days.
    "balanced": Policy(
        preset="balanced",
        actions={
            "LOW": SeverityRule(delete=False, strikes=0),
            "MEDIUM": SeverityRule(delete=True, strikes=1),
            "HIGH": SeverityRule(delete=True, strikes=2),
        },
        ladder=list(_DEFAULT_LADDER),
        strike_decay_days=30,
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
        ladder=[
            Rung(strikes=1, action="warn"),
            Rung(strikes=2, action="timeout", duration_s=3600),
            Rung(strikes=3, action="timeout", duration_s=86400),
            Rung(strikes=4, action="kick"),
            Rung(strikes=5, action="ban"),
        ],
        strike_decay_days=90,
    ),
}


def preset(name: str) -> Policy:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; one of {', '.join(PRESETS)}") from None


def preset_version(name: str) -> str:
    """The policy version of a community that has no policy stored: the preset's."""
    return f"preset:{name}@{PRESET_VERSION}"


def stored_version(platform: str, community: str, version: int) -> str:
    return f"{platform}:{community}@v{version}"


class PolicyChangeError(ValueError):
    """A ``policy set`` change that does not make a valid policy."""


def parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses (numbers, booleans, lists, null), else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def apply_changes(policy: Policy, changes: Mapping[str, Any]) -> Policy:
    """``policy`` with dotted-path changes applied (``thresholds.high``, ``channels.C.shadow``).

    A path ending in ``+`` appends to a list (``exempt_roles+``), ``-`` removes from it.
    """
    document = policy.to_document()
    for path, value in changes.items():
        op = path[-1] if path[-1:] in ("+", "-") else ""
        parts = (path[:-1] if op else path).split(".")
        if not all(parts):
            raise PolicyChangeError(f"bad path {path!r}")
        node: Any = document
        for part in parts[:-1]:
            if not isinstance(node, dict):
                raise PolicyChangeError(f"{path}: {part!r} is not a section")
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        if not isinstance(node, dict):
            raise PolicyChangeError(f"{path}: not a section")
        leaf = parts[-1]
        if op:
            current = node.get(leaf)
            if not isinstance(current, list):
                raise PolicyChangeError(f"{path}: {leaf!r} is not a list")
            items = value if isinstance(value, list) else [value]
            if op == "+":
                node[leaf] = current + [v for v in items if v not in current]
            else:
                node[leaf] = [v for v in current if v not in items]
        else:
            node[leaf] = value
    try:
        return Policy.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'policy'}: {err['msg']}"
            for err in exc.errors()
        )
        raise PolicyChangeError(problems) from exc


@dataclass(frozen=True)
class PlannedAction:
    kind: ActionKind
    duration_s: int | None = None
    notice: str | None = None
    # Why this action is recorded but not done (shadow mode, exempt); None = do it.
    skip: str | None = None


@dataclass(frozen=True)
class Decision:
    """What the policy says about one verdict, and why."""

    severity: Severity
    rule: str
    strikes_added: int
    strikes_before: int
    shadow: bool
    exempt: str | None
    reason: str
    policy_version: str
    actions: list[PlannedAction] = field(default_factory=list)

    @property
    def strikes_after(self) -> int:
        return self.strikes_before + self.strikes_added


def human_duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _grade(
    policy: Policy, override: ChannelOverride | None, verdict: Verdict
) -> tuple[Severity, str]:
    """The severity the community gives the verdict, and the words that say why."""
    if HARD_SLUR in verdict.labels:
        return Severity.HIGH, "label hard_slur always acts at HIGH"
    thresholds = (override.thresholds if override else None) or policy.thresholds
    scope = "channel" if override and override.thresholds else "community"
    if thresholds is not None:
        severity = thresholds.severity(verdict.p_toxic)
        if severity is Severity.SAFE:
            return severity, f"p_toxic {verdict.p_toxic:.2f} below the {scope} low threshold"
        return severity, (
            f"p_toxic {verdict.p_toxic:.2f} >= {scope} {severity.value} threshold "
            f"{thresholds.cut(severity):.2f}"
        )
    if not verdict.flagged:
        return Severity.SAFE, "not flagged by the model"
    return verdict.severity, (
        f"model severity {verdict.severity.value} (p_toxic {verdict.p_toxic:.2f}, flagged)"
    )


class _Fields(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def evaluate(
    policy: Policy,
    verdict: Verdict,
    *,
    policy_version: str,
    active_strikes: int,
    shadow_strikes: int = 0,
) -> Decision | None:
    """The decision on ``verdict``, or None when the policy asks for nothing.

    ``active_strikes`` counts the user's real strikes; ``shadow_strikes`` the strikes that shadow
    decisions recorded, which count only towards other shadow decisions.
    """
    override = policy.channels.get(verdict.channel)
    severity, graded = _grade(policy, override, verdict)
    if severity is Severity.SAFE:
        return None
    rules = (override.actions if override and override.actions else None) or policy.actions
    level = GRADED[severity]
    rule = rules.get(level) or policy.actions.get(level)
    if rule is None or not rule.acts:
        return None

    exempt: str | None = None
    roles = sorted(set(verdict.user_roles) & set(policy.exempt_roles))
    if roles:
        exempt = f"exempt role {roles[0]}"
    elif verdict.channel in policy.exempt_channels or (override and override.exempt):
        exempt = f"exempt channel {verdict.channel}"
    shadow_why: str | None = None
    if override and override.shadow is not None:
        if override.shadow:
            shadow_why = "shadow mode (channel)"
    elif policy.shadow:
        shadow_why = "shadow mode"
    if shadow_why is None and (
        verdict.channel in policy.monitored_channels or (override and override.monitored_only)
    ):
        shadow_why = "monitored-only channel"
    shadow = shadow_why is not None

    before = active_strikes + (shadow_strikes if shadow else 0)
    # An exempt user gets no strike; the rest of the decision says what would have happened.
    added = 0 if exempt else rule.strikes
    after = before + rule.strikes
    rung = policy.rung_for(after) if rule.strikes > 0 else None
    following = policy.next_rung(after)
    if not rule.strikes:
        rule_text = "delete"
    elif rule.delete:
        rule_text = f"delete + {rule.strikes} strike(s)"
    else:
        rule_text = f"{rule.strikes} strike(s)"

    parts = [f"policy {policy_version} ({policy.preset})", f"{severity.value}: {graded}"]
    parts.append(f"rule {severity.value} -> {rule_text}")
    if rule.strikes:
        parts.append(
            f"strikes {before} -> {after} (decay {policy.strike_decay_days:g} d)"
            + (f"; ladder {rung.strikes}+ -> {rung.describe()}" if rung else "")
        )
    if exempt:
        parts.append(exempt)
    if shadow_why:
        parts.append(shadow_why)
    reason = "; ".join(parts)

    fields = _Fields(
        user=verdict.user,
        channel=verdict.channel,
        community=verdict.community,
        severity=severity.value,
        rule=rule_text,
        strikes=str(after),
        duration="",
        next_step=following.describe() if following else "ban",
        policy_version=policy_version,
    )
    skip = exempt or shadow_why
    actions: list[PlannedAction] = []
    if rule.delete:
        actions.append(PlannedAction(ActionKind.DELETE, skip=skip))
    if rung is not None:
        if rung.duration_s:
            fields["duration"] = human_duration(rung.duration_s)
        template = getattr(policy.templates, rung.action)
        actions.append(
            PlannedAction(
                rung.kind,
                duration_s=rung.duration_s,
                notice=template.format_map(fields),
                skip=skip,
            )
        )
    return Decision(
        severity=severity,
        rule=rule_text,
        strikes_added=added,
        strikes_before=before,
        shadow=shadow,
        exempt=exempt,
        reason=reason,
        policy_version=policy_version,
        actions=actions,
    )


def requests_for(
    verdict: Verdict, decision: Decision, requested_at: datetime
) -> list[tuple[ActionRequest, str | None]]:
    """The action requests of a decision, each with why it is skipped (None = act)."""
    out: list[tuple[ActionRequest, str | None]] = []
    for planned in decision.actions:
        reason = decision.reason
        if planned.kind is not ActionKind.DELETE:
            reason = f"{reason}; action {planned.kind.value}"
        out.append(
            (
                ActionRequest(
                    action_id=action_id(verdict.message_id, planned.kind),
                    message_id=verdict.message_id,
                    platform=verdict.platform,
                    community=verdict.community,
                    channel=verdict.channel,
                    user=verdict.user,
                    kind=planned.kind,
                    duration_s=planned.duration_s,
                    reason=reason[:2000],
                    severity=decision.severity,
                    p_toxic=verdict.p_toxic,
                    model_version=verdict.model_version,
                    policy_version=decision.policy_version,
                    sent_at=verdict.sent_at,
                    requested_at=requested_at,
                    notice=planned.notice,
                ),
                planned.skip,
            )
        )
    return out


def reference(action: str, length: int = 12) -> str:
    """A short, stable token for an action id (a nonce, a reference shown to the user)."""
    return hashlib.sha256(action.encode()).hexdigest()[:length]
