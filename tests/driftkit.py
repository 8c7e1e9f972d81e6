"""Synthetic verdict streams for the drift tests: one community's ordinary chat, and the same
community after a change (more toxic, longer lines, more shouting). Seeded: the same call gives
the same verdicts, so a test's "no drift" is not luck."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from schemas.events import Platform, Severity, Verdict
from schemas.rules import severity_for

WORDS = ["gg", "lol", "nice", "pog", "wp", "KEKW", "hi", "chat", "that", "was", "clean", "play"]
START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def verdicts(
    community: str,
    count: int,
    *,
    shifted: bool = False,
    seed: int = 0,
    platform: Platform = Platform.TWITCH,
    start: datetime = START,
    prefix: str = "",
) -> list[Verdict]:
    """``count`` verdicts of ``community``; ``shifted`` ones come from the changed chat."""
    rng = random.Random(f"{community}:{seed}:{shifted}")
    out = []
    for i in range(count):
        if shifted:
            p_toxic = rng.betavariate(2.0, 3.0)
            words = rng.randint(12, 40)
            caps = rng.uniform(0.2, 0.9)
        else:
            p_toxic = rng.betavariate(1.0, 12.0)
            words = rng.randint(1, 8)
            caps = rng.uniform(0.0, 0.2) if rng.random() < 0.3 else 0.0
        severity = severity_for(p_toxic, 0.3, 0.5, 0.7)
        text = " ".join(rng.choice(WORDS) for _ in range(words))
        at = start + timedelta(seconds=i)
        out.append(
            Verdict(
                message_id=f"{prefix}{community}-{seed}-{int(shifted)}-{i}",
                platform=platform,
                community=community,
                channel=community,
                user=f"u{i % 5}",
                text=text,
                p_toxic=p_toxic,
                severity=severity,
                flagged=severity.rank >= Severity.MEDIUM.rank,
                labels=["insult"] if p_toxic >= 0.5 else [],
                model_version="hybrid-test",
                features={
                    "caps_ratio": caps,
                    "emote_ratio": rng.uniform(0.0, 0.5),
                    "user_bad_ratio_7d": None,
                },
                sent_at=at,
                received_at=at,
                scored_at=at,
            )
        )
    return out
