"""The policy version a verdict records: the one whose detector thresholds the scorer applied,
as the actioner mirrors it to Redis (no servers: a fake Redis answer and stream state)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from schemas.detection import DEFAULT_VERSION, UNVERSIONED, DetectorThresholds
from schemas.events import ChatMessage, Platform, Severity, Verdict, utcnow
from scorers.detectors import StreamDetectors
from scorers.stream_state import AppliedPolicy, PolicyCache, Windows

STRICT = DetectorThresholds(flood_messages=3)


def cache() -> PolicyCache:
    return PolicyCache(client=None, ttl_s=0)  # type: ignore[arg-type]


def test_mirrored_thresholds_carry_their_version() -> None:
    parse = cache()._parse
    key = ("twitch", "c")
    assert parse(key, [STRICT.model_dump_json(), b"twitch:c@v4"]) == AppliedPolicy(
        STRICT, "twitch:c@v4"
    )
    assert parse(key, [None, None]) == AppliedPolicy(DetectorThresholds(), DEFAULT_VERSION)
    # Mirrored by an older actioner: no version field.
    assert parse(key, [STRICT.model_dump_json(), None]).version == UNVERSIONED
    # A version that is no id is left out rather than written into every verdict.
    assert parse(key, [STRICT.model_dump_json(), b"v\x001"]).version == UNVERSIONED
    # Malformed thresholds: the defaults are applied, and the verdict says so.
    assert parse(key, [b"{not json", b"twitch:c@v5"]).version == DEFAULT_VERSION


class Policies(PolicyCache):
    def __init__(self, found: dict[tuple[str, str], AppliedPolicy]) -> None:
        super().__init__(client=None, ttl_s=0)  # type: ignore[arg-type]
        self.found = found

    async def applied(
        self, communities: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], AppliedPolicy]:
        return {c: self.found[c] for c in communities if c in self.found}


class State:
    lines = 1

    async def apply(
        self, messages: Sequence[ChatMessage], *args: Any
    ) -> tuple[list[Windows], list[Any]]:
        return [Windows(lines=self.lines) for _ in messages], []


def message(community: str) -> ChatMessage:
    now = utcnow()
    return ChatMessage(
        message_id=f"m-{community}",
        platform=Platform.TWITCH,
        community=community,
        channel="#main",
        user="u",
        text="hello there",
        sent_at=now,
        received_at=now,
    )


def verdict_of(m: ChatMessage) -> Verdict:
    return Verdict(
        message_id=m.message_id,
        platform=Platform.TWITCH,
        community=m.community,
        channel=m.channel,
        user=m.user,
        text=m.text,
        p_toxic=0.1,
        severity=Severity.SAFE,
        flagged=False,
        model_version="v",
        sent_at=m.sent_at,
        received_at=m.received_at,
        scored_at=m.sent_at,
    )


def test_each_verdict_names_the_policy_version_its_community_was_scored_under() -> None:
    messages = [message("stored"), message("nothing")]
    policies = Policies({("twitch", "stored"): AppliedPolicy(STRICT, "twitch:stored@v2")})
    detectors = StreamDetectors(State(), policies)  # type: ignore[arg-type]
    detected = asyncio.run(detectors.run(messages, [verdict_of(m) for m in messages]))
    assert [v.policy_version for v in detected.verdicts] == ["twitch:stored@v2", DEFAULT_VERSION]


def test_versions_asked_ahead_are_those_run_records_and_spare_it_a_copy() -> None:
    """The score stage asks the versions before it builds the verdicts: built with them, a
    verdict the detectors find nothing in leaves ``run`` as the same object (no copy)."""
    messages = [message("stored"), message("nothing")]
    policies = Policies({("twitch", "stored"): AppliedPolicy(STRICT, "twitch:stored@v2")})
    detectors = StreamDetectors(State(), policies)  # type: ignore[arg-type]
    versions = asyncio.run(detectors.versions(messages))
    assert versions == ["twitch:stored@v2", DEFAULT_VERSION]
    built = [
        verdict_of(m).model_copy(update={"policy_version": v})
        for m, v in zip(messages, versions, strict=True)
    ]
    detected = asyncio.run(detectors.run(messages, built))
    assert all(out is v for out, v in zip(detected.verdicts, built, strict=True))
    # Built without them (or with a version that changed since), run still sets the version.
    detected = asyncio.run(detectors.run(messages, [verdict_of(m) for m in messages]))
    assert [v.policy_version for v in detected.verdicts] == versions


def test_stateless_labels_follow_each_communitys_thresholds_across_batches() -> None:
    """caps/link labels are remembered per text and thresholds: two communities sharing a line
    get their own answers, and new thresholds for a community (a policy change) are applied
    from the next batch on, though the text was seen before."""
    loud = DetectorThresholds(caps_min_letters=4)
    quiet = DetectorThresholds(caps_min_letters=100)
    policies = Policies(
        {("twitch", "loud"): AppliedPolicy(loud, "v1"), ("twitch", "quiet"): AppliedPolicy(quiet)}
    )
    detectors = StreamDetectors(State(), policies)  # type: ignore[arg-type]

    def caps(batch: list[ChatMessage]) -> list[bool]:
        detected = asyncio.run(detectors.run(batch, [verdict_of(m) for m in batch]))
        return ["caps" in v.labels for v in detected.verdicts]

    shout = "WHAT A PLAY THAT WAS"
    batch = [message("loud"), message("quiet"), message("loud")]
    batch = [m.model_copy(update={"text": shout}) for m in batch]
    assert caps(batch) == [True, False, True]
    assert caps(batch) == [True, False, True]  # the second time from the cache
    policies.found["twitch", "loud"] = AppliedPolicy(quiet, "v2")
    assert caps(batch) == [False, False, False]
    # A line that also gets windowed labels keeps its stateless ones (the fake state counts
    # one line in the flood window).
    policies.found["twitch", "loud"] = AppliedPolicy(loud, "v1")
    assert caps(batch) == [True, False, True]
    policies.found["twitch", "loud"] = AppliedPolicy(
        DetectorThresholds(caps_min_letters=4, flood_messages=2), "v3"
    )
    State.lines = 2
    try:
        detected = asyncio.run(detectors.run(batch[:2], [verdict_of(m) for m in batch[:2]]))
    finally:
        State.lines = 1
    assert [set(v.labels) for v in detected.verdicts] == [{"caps", "flood"}, set()]
