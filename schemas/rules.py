"""The rules that give a verdict its meaning, written once for every service that reads them.

A verdict's ``severity``, ``flagged`` and ``labels`` are part of the contract: the scorer and the
webhook's synchronous ``/v1/moderate`` compute them, the actioner's policy acts on them, and a
downstream consumer reads them. Each service used to spell these rules out itself; two copies
that drift apart would grade the same message differently in two places, so they live here.
"""

from __future__ import annotations

from schemas.events import Severity

HARD_SLUR = "hard_slur"
"""The label of a message with a hard slur: graded HIGH whatever ``p_toxic`` or a policy says."""


def severity_for(p_toxic: float, low: float, medium: float, high: float) -> Severity:
    """The severity of ``p_toxic`` under the cut-offs: at or above ``high`` is HIGH, and so on.

    Each cut-off is inclusive, so a score exactly at ``medium`` is MEDIUM. The model's
    thresholds and a community's own thresholds both grade through this one rule.
    """
    if p_toxic >= high:
        return Severity.HIGH
    if p_toxic >= medium:
        return Severity.MEDIUM
    if p_toxic >= low:
        return Severity.LOW
    return Severity.SAFE


def is_flagged(severity: Severity, flag_severity: Severity) -> bool:
    """True when a verdict of ``severity`` asks the actioner to consider an action.

    ``flag_severity`` is ``WARDEN_SCORER__FLAG_SEVERITY``: a verdict is flagged at that severity
    or above.
    """
    return severity.rank >= flag_severity.rank
