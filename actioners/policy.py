"""Which action a verdict calls for.

The skeleton's policy is one rule: a flagged message is deleted. Per-community policies, the
strike ladder and shadow mode replace it (kept in PostgreSQL, versioned).
"""

from __future__ import annotations

from schemas.events import ActionKind, ActionRequest, Verdict, utcnow

POLICY_VERSION = "skeleton-1"


def action_id(message_id: str, kind: ActionKind) -> str:
    """Deterministic, so a verdict delivered twice asks for the same action twice, not two."""
    return f"{message_id}:{kind.value}"


def decide(verdict: Verdict) -> list[ActionRequest]:
    if not verdict.flagged:
        return []
    kind = ActionKind.DELETE
    return [
        ActionRequest(
            action_id=action_id(verdict.message_id, kind),
            message_id=verdict.message_id,
            platform=verdict.platform,
            community=verdict.community,
            channel=verdict.channel,
            user=verdict.user,
            kind=kind,
            reason=(
                f"severity {verdict.severity.value} (p_toxic={verdict.p_toxic:.2f}) "
                f"at or above the flag threshold"
                + (f"; labels: {', '.join(verdict.labels)}" if verdict.labels else "")
            ),
            severity=verdict.severity,
            p_toxic=verdict.p_toxic,
            model_version=verdict.model_version,
            policy_version=POLICY_VERSION,
            sent_at=verdict.sent_at,
            requested_at=utcnow(),
        )
    ]
