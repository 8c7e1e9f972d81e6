"""The built-in presets (lenient, balanced, strict) and the version strings of policies."""

from __future__ import annotations

from actioners.policy.model import Policy, Rung, SeverityRule, Thresholds

# Bumped whenever a preset changes, so decisions under the built-in presets stay explainable.
PRESET_VERSION = 1

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
    """The built-in preset ``name``; ValueError naming the presets if there is none."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; one of {', '.join(PRESETS)}") from None


def preset_version(name: str) -> str:
    """The policy version of a community that has no policy stored: the preset's."""
    return f"preset:{name}@{PRESET_VERSION}"


def stored_version(platform: str, community: str, version: int) -> str:
    """The policy version of a community's stored policy, version ``version``."""
    return f"{platform}:{community}@v{version}"
