"""Which actions a verdict calls for: a community's policy, its presets and the strike ladder.

A policy belongs to one community (a Discord guild, a Slack workspace, a Twitch channel), with
per-channel overrides. It is pure data (stored as JSON in PostgreSQL, one row per version, see
``actioners.policystore``); ``evaluate`` turns a verdict, the policy and the user's active strike
count into a ``Decision``, with no I/O, so every decision can be replayed and explained.

How a verdict is judged:

1. Severity: a ``hard_slur`` label is always HIGH. Otherwise a community (or channel) with its
   own ``thresholds`` grades ``p_toxic`` itself, flagged or not; one without trusts the model:
   the verdict's severity, when the scorer flagged it.
2. Labels: each label of the verdict with a rule in ``labels`` (``LabelRule``) has an effect.
   - Model labels (``insult``, ``threat``, ``self_harm``, ``identity_attack``,
     ``sexual_harassment``, ``profanity``) and ``hard_slur`` act only on a verdict graded LOW or
     above, through the severity rule ``actions[severity]`` (delete or not, strikes); their
     rule may replace either (``threat`` strikes harder), keep the label from acting at all
     (``profanity`` in ``balanced``: ``act: false``), or ask for a label score of at least
     ``min_score``. A label without a rule acts through the severity rule as it is. A graded
     verdict that names no model label acts through the rule ``labels.unlabelled`` (older
     scorers, models without label heads).
   - An emote or one-word reaction line (``F``, ``LMAO``, ``KEKW KEKW``;
     ``toxicity.emotes``) gets no model-label effect at all, whatever it was graded: only
     ``hard_slur`` and detector labels may act on it.
   - Detector labels (``spam``, ``flood``, ``link``, ``mention_flood``, ``split_evasion``,
     ``caps``, ``emote_flood``, ``raid``) act on their own rule whatever ``p_toxic`` says
     (unset: delete, no strike) and not at all without one.
   - The verdict's action is the strongest of its effects: deleted if any effect deletes, the
     most strikes any effect gives, and a ladder step no stronger than the strongest
     ``max_action`` among the labels that strike (``insult`` may reach a timeout, only
     ``threat`` a ban). A label with ``with_harm`` (``raid``) brings that action at once when
     the line also has an acting model label: a raid account posting a threat is banned.
3. Ladder: the user's active strikes (not expired after ``strike_decay_hours`` or
   ``strike_decay_days``, not pardoned) plus the new ones pick the highest rung reached (warn ->
   timeout 10 min -> 1 h -> 24 h -> kick -> ban by default), under the cap. Only a line that
   adds strikes climbs: earlier strikes never act on their own, so an emote after three strikes
   does nothing.
4. Review: a label rule with ``hold`` (or ``hold_below`` a severity, the borderline band)
   produces a HOLD request (no platform call: the line waits in the review queue, the
   ``holds`` table) instead of acting on that label; with ``ban_requires_review`` every ban the
   ladder reaches becomes a HOLD for a moderator to confirm.
5. Exempt roles and channels get no strikes and no action; shadow mode, first-day mode (a new
   community, see ``actioners.policystore``) and monitored-only channels decide and record
   everything and act on nothing (their strikes are shadow strikes).

Raids (``RaidEvent``) are answered per the policy's ``raid`` section (``RaidAnswer``): one
RAID_MODE request per raid (``raid_request``), for harmful raids only by default.

The parts, each a module of this package: ``model`` (the Policy and its sections), ``presets``
(the built-in policies and version strings), ``changes`` (the ``policy set KEY=VALUE`` edit
language) and ``decisions`` (``evaluate`` and the action requests of a decision).
"""

from __future__ import annotations

from actioners.policy.changes import PolicyChangeError, apply_changes, parse_value
from actioners.policy.decisions import (
    HARD_SLUR,
    RAID_USER,
    Decision,
    PlannedAction,
    action_id,
    evaluate,
    raid_request,
    reference,
    requests_for,
)
from actioners.policy.model import (
    GRADED,
    MAX_TIMEOUT_S,
    TEMPLATE_FIELDS,
    UNLABELLED,
    ChannelOverride,
    Graded,
    LabelRule,
    Policy,
    RaidAnswer,
    Rung,
    SeverityRule,
    Templates,
    Thresholds,
    human_duration,
)
from actioners.policy.presets import (
    PRESET_VERSION,
    PRESETS,
    builtin,
    first_day,
    first_day_version,
    preset,
    preset_version,
    stored_number,
    stored_version,
)

__all__ = [
    "GRADED",
    "HARD_SLUR",
    "MAX_TIMEOUT_S",
    "PRESETS",
    "PRESET_VERSION",
    "RAID_USER",
    "TEMPLATE_FIELDS",
    "UNLABELLED",
    "ChannelOverride",
    "Decision",
    "Graded",
    "LabelRule",
    "PlannedAction",
    "Policy",
    "PolicyChangeError",
    "RaidAnswer",
    "Rung",
    "SeverityRule",
    "Templates",
    "Thresholds",
    "action_id",
    "apply_changes",
    "builtin",
    "evaluate",
    "first_day",
    "first_day_version",
    "human_duration",
    "parse_value",
    "preset",
    "preset_version",
    "raid_request",
    "reference",
    "requests_for",
    "stored_number",
    "stored_version",
]
