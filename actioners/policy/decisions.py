"""Evaluation: a verdict, a policy and the user's strikes in, a ``Decision`` and its action
requests out, with no I/O, so every decision can be replayed and explained."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from actioners.policy.model import GRADED, ChannelOverride, Policy, human_duration
from schemas.events import ActionKind, ActionRequest, Severity, Verdict
from schemas.rules import HARD_SLUR


def action_id(message_id: str, kind: ActionKind) -> str:
    """Deterministic, so a verdict delivered twice asks for the same action twice, not two."""
    return f"{message_id}:{kind.value}"


@dataclass(frozen=True)
class PlannedAction:
    """One action a decision asks for, with the notice the user gets."""

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
