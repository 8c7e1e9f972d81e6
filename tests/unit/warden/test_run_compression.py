"""`warden run` replays faster than the log's clock: the detectors' windows shrink with it."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.detection import DetectorThresholds
from warden.run import communities, compressed


def test_a_faster_replay_keeps_the_detectors_rates() -> None:
    base = DetectorThresholds()
    fast = compressed(base, 30)
    # 10 lines in 10 s at the log's pace = 30 lines in 1 s of a 30x replay.
    assert (fast.flood_window_s, fast.flood_messages) == (1, 30)
    assert (fast.spam_window_s, fast.spam_repeats) == (2, base.spam_repeats)
    assert fast.raid_window_s == 5 and fast.raid_min_accounts == 25
    assert fast.caps_ratio == base.caps_ratio and fast.link_allow == base.link_allow


def test_real_time_replays_keep_the_thresholds() -> None:
    base = DetectorThresholds()
    assert compressed(base, 1.0) == base
    assert compressed(base, 0.0) == base


def test_the_communities_of_a_log(tmp_path: Path) -> None:
    log = tmp_path / "chat.jsonl"
    rows = [
        {"platform": "twitch", "community": "a"},
        {"platform": "twitch", "community": "a"},
        {"platform": "discord", "community": "b"},
    ]
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    assert communities(log) == {("twitch", "a"), ("discord", "b")}
