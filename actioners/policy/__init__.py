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

The parts, each a module of this package: ``model`` (the Policy and its sections), ``presets``
(the built-in policies and version strings), ``changes`` (the ``policy set KEY=VALUE`` edit
language) and ``decisions`` (``evaluate`` and the action requests of a decision).
"""

from __future__ import annotations

from actioners.policy.changes import PolicyChangeError, apply_changes, parse_value
from actioners.policy.decisions import (
    HARD_SLUR,
    Decision,
    PlannedAction,
    action_id,
    evaluate,
    reference,
    requests_for,
)
from actioners.policy.model import (
    GRADED,
    MAX_TIMEOUT_S,
    TEMPLATE_FIELDS,
    ChannelOverride,
    Graded,
    Policy,
    Rung,
    SeverityRule,
    Templates,
    Thresholds,
    human_duration,
)
from actioners.policy.presets import (
    PRESET_VERSION,
    PRESETS,
    preset,
    preset_version,
    stored_version,
)

__all__ = [
    "GRADED",
    "HARD_SLUR",
    "MAX_TIMEOUT_S",
    "PRESETS",
    "PRESET_VERSION",
    "TEMPLATE_FIELDS",
    "ChannelOverride",
    "Decision",
    "Graded",
    "PlannedAction",
    "Policy",
    "PolicyChangeError",
    "Rung",
    "SeverityRule",
    "Templates",
    "Thresholds",
    "action_id",
    "apply_changes",
    "evaluate",
    "human_duration",
    "parse_value",
    "preset",
    "preset_version",
    "reference",
    "requests_for",
    "stored_version",
]
