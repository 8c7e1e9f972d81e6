"""Evaluation: a verdict, a policy and the user's strikes in, a ``Decision`` and its action
requests out, with no I/O, so every decision can be replayed and explained."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from actioners.policy.model import (
    ACTION_RANK,
    GRADED,
    UNLABELLED,
    ChannelOverride,
    LabelRule,
    LadderAction,
    Policy,
    Rung,
    SeverityRule,
    human_duration,
)
from schemas.events import ActionKind, ActionRequest, RaidEvent, Severity, Verdict, VerdictKind
from schemas.labels import HARM_LABELS, IMAGE_LABELS
from schemas.rules import HARD_SLUR
from toxicity.emotes import emote_shape

# Labels graded through the severity rules; every other label acts on its own rule.
SEVERITY_LABELS = frozenset(HARM_LABELS) | frozenset(IMAGE_LABELS) | {HARD_SLUR}


def action_id(message_id: str, kind: ActionKind) -> str:
    """Deterministic, so a verdict delivered twice asks for the same action twice, not two.

    ``message_id`` is the verdict's ``decision_id`` (an image verdict's ends in ``~image``);
    an id too long for the 200 characters of an action id keeps its head and a hash of all.
    """
    whole = f"{message_id}:{kind.value}"
    if len(whole) <= 200:
        return whole
    return f"{message_id[:120]}~{reference(message_id, 40)}:{kind.value}"


@dataclass(frozen=True)
class PlannedAction:
    """One action a decision asks for, with the notice the user gets."""

    kind: ActionKind
    duration_s: int | None = None
    notice: str | None = None
    # Why this action is recorded but not done (shadow mode, exempt); None = do it.
    skip: str | None = None
    # HOLD only: the action a moderator is asked to confirm ("ban"), or "review".
    held: str | None = None


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
    # The labels that acted (or were held), strongest rule first.
    labels: tuple[str, ...] = ()

    @property
    def held(self) -> PlannedAction | None:
        """The HOLD of this decision, if a moderator is asked to review it."""
        return next((a for a in self.actions if a.kind is ActionKind.HOLD), None)

    @property
    def strikes_after(self) -> int:
        return self.strikes_before + self.strikes_added


def _grade(
    policy: Policy, override: ChannelOverride | None, verdict: Verdict
) -> tuple[Severity, str]:
    """The severity the community gives the verdict, and the words that say why."""
    if HARD_SLUR in verdict.labels:
        return Severity.HIGH, "label hard_slur always acts at HIGH"
    if verdict.kind is VerdictKind.IMAGE:
        # p_toxic of an image is its worst label's score, not a text model's probability: the
        # community's text thresholds do not apply; its label rules say what is allowed.
        if not verdict.flagged:
            return Severity.SAFE, "image: no label found"
        return verdict.severity, (
            f"image model severity {verdict.severity.value} (worst label {verdict.p_toxic:.2f})"
        )
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
    # A stream-detector label (spam, flood...) also sets ``flagged``; those act through their
    # label rules, so the severity ladder reads the model's own flag.
    model_flagged = verdict.flagged if verdict.model_flagged is None else verdict.model_flagged
    if not model_flagged:
        return Severity.SAFE, "not flagged by the model"
    return verdict.severity, (
        f"model severity {verdict.severity.value} (p_toxic {verdict.p_toxic:.2f}, flagged)"
    )


@dataclass(frozen=True)
class _Effect:
    """What one label of a verdict asks for."""

    label: str
    delete: bool
    strikes: int
    max_action: LadderAction | None
    hold: bool

    @property
    def strength(self) -> tuple[int, int, bool]:
        cap = ACTION_RANK[self.max_action] if self.max_action and self.strikes else 0
        return self.strikes, cap, self.delete


def _counts(label: str, rule: LabelRule, verdict: Verdict) -> bool:
    """Whether a model label counts: named by the scorer, or scored at ``min_score`` or more
    (a score under ``min_score`` keeps a named label from counting)."""
    score = verdict.label_scores.get(label)
    if rule.min_score is not None and score is not None:
        return score >= rule.min_score
    return label in verdict.labels


def _effects(
    severity: Severity,
    rules: dict[str, LabelRule],
    severity_rule: SeverityRule | None,
    verdict: Verdict,
    notes: list[str],
) -> tuple[list[_Effect], LadderAction | None]:
    """The effect of every label that acts, and the ``with_harm`` action (raid + harm)."""
    effects: list[_Effect] = []
    named = [label for label in verdict.labels if label in SEVERITY_LABELS]
    scored = [label for label in verdict.label_scores if label in SEVERITY_LABELS]
    if severity is not Severity.SAFE and severity_rule is not None:
        counting = [
            label
            for label in dict.fromkeys(named + scored)
            if _counts(label, rules.get(label, LabelRule()), verdict)
        ]
        if not named and not counting:
            counting = [UNLABELLED]
        if verdict.kind is VerdictKind.TEXT and emote_shape(verdict.text).only_emotes_or_reactions:
            # An emote or a one-word reaction harms nobody, whatever a comment model read in
            # it ("F", "LMAO", "KEKW"): only rule and detector labels may act on such a line.
            if any(label != HARD_SLUR for label in counting):
                notes.append("emote/reaction-only line: model labels do not act")
            counting = [label for label in counting if label == HARD_SLUR]
        for label in counting:
            rule = rules.get(label, LabelRule())
            if not rule.act:
                continue
            delete = severity_rule.delete if rule.delete is None else rule.delete
            strikes = severity_rule.strikes if rule.strikes is None else rule.strikes
            hold = rule.hold or (
                rule.hold_below is not None and severity.rank < Severity(rule.hold_below).rank
            )
            if delete or strikes or hold:
                effects.append(_Effect(label, delete, strikes, rule.max_action, hold))
    harmful = any(not e.hold and (e.delete or e.strikes) for e in effects)
    with_harm: LadderAction | None = None
    for label in dict.fromkeys(verdict.labels):
        if label in SEVERITY_LABELS:
            continue
        found = rules.get(label)
        if found is None:
            continue  # a detector label the community has no rule for does not act
        stronger = with_harm is None or (
            found.with_harm is not None and ACTION_RANK[found.with_harm] > ACTION_RANK[with_harm]
        )
        if harmful and found.with_harm is not None and stronger:
            with_harm = found.with_harm
        if not found.act:
            continue
        delete = True if found.delete is None else found.delete
        strikes = found.strikes or 0
        if delete or strikes or found.hold:
            effects.append(_Effect(label, delete, strikes, found.max_action, found.hold))
    effects.sort(key=lambda e: e.strength, reverse=True)
    return effects, with_harm


def _strongest_cap(effects: list[_Effect]) -> LadderAction | None:
    strongest: LadderAction | None = None
    for effect in effects:
        cap = effect.max_action
        if not effect.strikes or cap is None:
            continue
        if strongest is None or ACTION_RANK[cap] > ACTION_RANK[strongest]:
            strongest = cap
    return strongest


def _direct_rung(policy: Policy, action: LadderAction, strikes: int) -> Rung:
    """A ladder step taken at once (``with_harm``); a timeout lasts the ladder's longest."""
    duration = None
    if action == "timeout":
        timeouts = [r.duration_s for r in policy.ladder if r.duration_s]
        duration = max(timeouts) if timeouts else 3600
    return Rung(strikes=max(strikes, 1), action=action, duration_s=duration)


def _shadow_why(policy: Policy, override: ChannelOverride | None, channel: str) -> str | None:
    """Why nothing is acted on in this channel (shadow, first-day, monitored), or None."""
    if override and override.shadow is not None:
        if override.shadow:
            return "shadow mode (channel)"
    elif policy.shadow:
        return "shadow mode"
    if policy.first_day:
        return "first-day mode (acts on nothing until `warden policy go-live`)"
    if channel in policy.monitored_channels or (override and override.monitored_only):
        return "monitored-only channel"
    return None


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
    rules = (override.actions if override and override.actions else None) or policy.actions
    level = GRADED.get(severity)
    severity_rule = (rules.get(level) or policy.actions.get(level)) if level else None
    label_rules = {**policy.labels, **((override.labels if override else None) or {})}
    notes: list[str] = []
    if verdict.channel_nsfw and policy.nsfw_channel_allows:
        allowed = [label for label in policy.nsfw_channel_allows if label in verdict.labels]
        for label in policy.nsfw_channel_allows:
            label_rules[label] = LabelRule(act=False)
        if allowed:
            notes.append(f"NSFW channel allows {', '.join(allowed)}")
    effects, with_harm = _effects(severity, label_rules, severity_rule, verdict, notes)
    if not effects:
        return None
    acting = [e for e in effects if not e.hold]
    held = [e for e in effects if e.hold]

    exempt: str | None = None
    roles = sorted(set(verdict.user_roles) & set(policy.exempt_roles))
    if roles:
        exempt = f"exempt role {roles[0]}"
    elif verdict.channel in policy.exempt_channels or (override and override.exempt):
        exempt = f"exempt channel {verdict.channel}"
    shadow_why = _shadow_why(policy, override, verdict.channel)
    shadow = shadow_why is not None

    delete = any(e.delete for e in acting)
    strikes = max((e.strikes for e in acting), default=0)
    before = active_strikes + (shadow_strikes if shadow else 0)
    # An exempt user gets no strike; the rest of the decision says what would have happened.
    added = 0 if exempt else strikes
    after = before + strikes
    cap = _strongest_cap(acting)
    # Only a new violation that strikes climbs the ladder: earlier strikes never act on their
    # own, so a line that adds none (an emote, a held line) brings no timeout or ban.
    rung = policy.rung_for(after, cap) if strikes > 0 else None
    direct = False
    if with_harm is not None and (
        rung is None or ACTION_RANK[with_harm] > ACTION_RANK[rung.action]
    ):
        rung = _direct_rung(policy, with_harm, after)
        direct = True
    following = policy.next_rung(after)
    if not acting:
        rule_text = "hold for review"
    elif not strikes:
        rule_text = "delete" if delete else "none"
    elif delete:
        rule_text = f"delete + {strikes} strike(s)"
    else:
        rule_text = f"{strikes} strike(s)"

    parts = [f"policy {policy_version} ({policy.preset})", f"{severity.value}: {graded}"]
    parts.append(f"labels {', '.join(_describe(e, verdict) for e in effects)}")
    parts.extend(notes)
    if acting:
        parts.append(f"rule {severity.value} -> {rule_text}")
    if strikes:
        parts.append(
            f"strikes {before} -> {after} (decay {policy.decay_text})"
            + (f"; ladder {rung.strikes}+ -> {rung.describe()}" if rung and not direct else "")
            + (f"; capped at {cap}" if cap not in ("ban", None) else "")
            + ("; no ladder step for these labels" if cap is None else "")
        )
    if direct and rung is not None:
        parts.append(
            f"{rung.describe()} at once: a harm label with "
            + _with_harm_labels(verdict, label_rules)
        )
    ban_held = rung is not None and rung.action == "ban" and policy.ban_requires_review
    if ban_held:
        parts.append("ban held for a moderator's review (ban_requires_review)")
    if held:
        parts.append(f"held for review: {', '.join(e.label for e in held)}")
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
    if delete:
        actions.append(PlannedAction(ActionKind.DELETE, skip=skip))
    if rung is not None and ban_held:
        actions.append(PlannedAction(ActionKind.HOLD, skip=skip, held="ban"))
    elif rung is not None:
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
    if held and not ban_held:
        actions.append(PlannedAction(ActionKind.HOLD, skip=skip, held="review"))
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
        labels=tuple(e.label for e in effects),
    )


def _describe(effect: _Effect, verdict: Verdict) -> str:
    score = verdict.label_scores.get(effect.label)
    why = verdict.reasons.get(effect.label)
    if score is not None:
        return f"{effect.label} ({score:.2f})"
    if why:
        return f"{effect.label} ({why[:200]})"
    return effect.label


def _with_harm_labels(verdict: Verdict, rules: dict[str, LabelRule]) -> str:
    return ", ".join(
        label for label in verdict.labels if (rule := rules.get(label)) and rule.with_harm
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
                    action_id=action_id(verdict.decision_id, planned.kind),
                    # One decision per verdict: an image verdict's actions, strikes, review and
                    # disputes are keyed by its decision id; the platform acts on the message.
                    message_id=verdict.decision_id,
                    platform_message_id=(
                        verdict.message_id if verdict.decision_id != verdict.message_id else None
                    ),
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


RAID_USER = "#raid"
"""The ``user`` of a RAID_MODE request: a raid belongs to the channel, not to one account.
``#`` is in no platform's user ids (Discord and Twitch ids are digits, Slack's letters and
digits), so the placeholder never shares a key, a user lock or strikes with a real user."""

RAID_MODEL = "raid-detector"
"""The ``model_version`` of a RAID_MODE request: the scorer's raid detector decided, no model."""


def raid_request(
    policy: Policy, event: RaidEvent, *, policy_version: str, requested_at: datetime
) -> tuple[ActionRequest, str | None] | None:
    """The RAID_MODE request that answers a raid, with why it is skipped (None = act), or None
    when the community's ``raid`` section asks for nothing (a friendly raid, by default).

    Deterministic like every action: ``action_id`` comes from ``raid_id`` (the message id of a
    raid is its ``raid_id``), so a raid reported twice asks for one raid mode.
    """
    answer = policy.raid
    modes = answer.modes_for(event.platform)
    if not answer.answers(event.harmful) or not modes:
        return None
    override = policy.channels.get(event.channel)
    skip: str | None = None
    if event.channel in policy.exempt_channels or (override and override.exempt):
        skip = f"exempt channel {event.channel}"
    skip = skip or _shadow_why(policy, override, event.channel)
    kind = ActionKind.RAID_MODE
    request_id = action_id(event.raid_id, kind)
    seconds = max(0, int((event.ended_at - event.started_at).total_seconds()))
    what = "harmful" if event.harmful else "friendly"
    labels = f", labels {', '.join(event.labels)}" if event.labels else ""
    reason = (
        f"policy {policy_version} ({policy.preset}); {what} raid: {event.size} first-time "
        f"accounts, {event.messages} lines in {seconds} s{labels}; raid answer "
        f"(act_on {answer.act_on}) -> {', '.join(m.value for m in modes)} for "
        f"{human_duration(answer.duration_s)}" + (f"; {skip}" if skip else "")
    )
    request = ActionRequest(
        action_id=request_id,
        message_id=event.raid_id,
        platform=event.platform,
        community=event.community,
        channel=event.channel,
        user=RAID_USER,
        kind=kind,
        duration_s=answer.duration_s,
        reason=reason[:2000],
        severity=Severity.HIGH if event.harmful else Severity.LOW,
        # A raid has no model score: the detector counted accounts and lines.
        p_toxic=0.0,
        model_version=RAID_MODEL,
        policy_version=policy_version,
        sent_at=event.ended_at,
        requested_at=requested_at,
        modes=modes,
    )
    return request, skip


def reference(action: str, length: int = 12) -> str:
    """A short, stable token for an action id (a nonce, a reference shown to the user)."""
    return hashlib.sha256(action.encode()).hexdigest()[:length]
