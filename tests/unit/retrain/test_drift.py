"""The drift monitor's parts without Kafka: what a verdict becomes, the bounded windows, the
references on disk, Evidently's verdict on shifted and unshifted streams, the bounded gauges."""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from driftkit import verdicts
from prometheus_client import REGISTRY

from core.errors import ConfigError
from core.settings import DriftSettings, Settings, load_settings
from retrain.drift import (
    Reference,
    ReferenceStore,
    Windows,
    columns_for,
    compare,
    drift_event,
    load_evidently,
    prepare_folders,
    row_of,
    script_mix,
    slug,
    write_report,
)
from retrain.drift_service import OTHER, DriftService, Gauges
from schemas.events import DriftEvent, Platform

SMALL = DriftSettings(
    window_rows=300, reference_rows=300, min_rows=300, max_communities=3, keep_reports=2
)


def store(tmp_path: Path) -> ReferenceStore:
    return ReferenceStore(tmp_path / "references")


@pytest.mark.parametrize(
    ("text", "share", "script"),
    [
        ("gg wp chat", 0.0, "latin"),
        ("привет чат", 1.0, "cyrillic"),
        ("h\u0435llo", 0.2, "latin"),  # a Cyrillic homoglyph in a Latin word
        ("😂😂 123 !!", 0.0, "none"),
        ("こんにちは gg", 5 / 7, "kana"),
        ("ｇｇ", 1.0, "latin"),  # fullwidth
    ],
)
def test_script_mix_says_what_a_line_is_written_in(text: str, share: float, script: str) -> None:
    got_share, got_script = script_mix(text)
    assert got_share == pytest.approx(share)
    assert got_script == script


def test_a_row_has_one_value_per_column_and_no_text() -> None:
    config = DriftSettings()
    (verdict,) = verdicts("c", 1, shifted=True)
    verdict = verdict.model_copy(update={"labels": ["insult", "spam"], "text": "x" * 5000})
    row = row_of(verdict, config.features)
    columns = columns_for(config.features)
    assert len(row) == len(columns)
    values = dict(zip(columns, row, strict=True))
    assert values["label_insult"] == 1.0 and values["label_spam"] == 1.0
    assert values["label_threat"] == 0.0
    assert values["text_length"] == 2000.0  # capped
    assert math.isnan(float(values["feature_user_bad_ratio_7d"]))  # missing in the snapshot
    assert math.isnan(float(values["feature_mention_count"]))  # not in it at all
    assert not any(isinstance(v, str) and "x" in v for v in row)


def test_windows_are_bounded_in_rows_and_communities(tmp_path: Path) -> None:
    windows = Windows(SMALL, store(tmp_path), auto_pin=False)
    for verdict in verdicts("a", 400):
        windows.add(verdict)
    window = windows.get("twitch:a")
    assert window is not None and len(window.rows) == 300 and window.seen == 400
    for name in ("b", "c", "d"):
        windows.add(verdicts(name, 1)[0])
    # Four communities seen, three kept: the least recently seen (a) went first.
    assert len(windows) == 3 and windows.get("twitch:a") is None
    assert windows.pinned == []  # auto_pin off: nothing written
    assert not (tmp_path / "references").exists()


def test_a_community_pins_its_first_verdicts_and_a_restart_keeps_them(tmp_path: Path) -> None:
    windows = Windows(SMALL, store(tmp_path))
    for verdict in verdicts("a", 299):
        windows.add(verdict)
    assert windows.due() == [] and windows.pinned == []
    windows.add(verdicts("a", 300)[-1])
    assert windows.pinned == ["twitch:a"]
    # Nothing new since the pin: not due; 300 new verdicts later it is.
    assert windows.due() == []
    for verdict in verdicts("a", 300, seed=1):
        windows.add(verdict)
    assert [w.key for w in windows.due()] == ["twitch:a"]

    again = Windows(SMALL, store(tmp_path))  # a restarted monitor
    again.add(verdicts("a", 1, seed=2)[0])
    window = again.get("twitch:a")
    assert window is not None and window.reference is not None
    assert len(window.reference.sample.rows) == 300
    assert window.reference.source == "first verdicts seen"


def test_a_reference_round_trips_with_missing_values_and_is_reread_when_pinned_again(
    tmp_path: Path,
) -> None:
    references = store(tmp_path)
    windows = Windows(SMALL, references, auto_pin=False)
    for verdict in verdicts("a", 300):
        windows.add(verdict)
    window = windows.get("twitch:a")
    assert window is not None
    saved = windows.pin(window, source="warden drift pin")
    loaded = references.load("twitch:a")
    assert loaded is not None and loaded.source == "warden drift pin"
    assert loaded.sample.columns == saved.sample.columns
    assert loaded.sample.start == saved.sample.start and loaded.sample.end == saved.sample.end
    index = saved.sample.columns.index("feature_user_bad_ratio_7d")
    assert all(math.isnan(float(row[index])) for row in loaded.sample.rows)
    assert loaded.sample.model_versions == ("hybrid-test",)

    newer = Reference(loaded.sample, datetime(2027, 1, 1, tzinfo=UTC), "by hand")
    path = references.path("twitch:a")
    path.write_text(newer.to_json())
    os.utime(path, (1e9, 1e9))  # a different mtime, whatever the clock's resolution
    reread = references.load("twitch:a")
    assert reread is not None and reread.source == "by hand"


def test_file_names_are_safe_and_distinct() -> None:
    assert slug("twitch:a/b") != slug("twitch:a_b")
    assert "/" not in slug("discord:../../etc") and slug("x:" + "é" * 300).count("-") >= 1


def window_sample(tmp_path: Path, name: str, *, shifted: bool) -> tuple[Windows, str]:
    windows = Windows(SMALL, store(tmp_path))
    for verdict in verdicts(name, 300):  # the reference: ordinary chat
        windows.add(verdict)
    for verdict in verdicts(name, 300, seed=1, shifted=shifted):
        windows.add(verdict)
    return windows, f"twitch:{name}"


def test_evidently_finds_the_shift_and_not_the_noise(tmp_path: Path) -> None:
    windows, key = window_sample(tmp_path, "calm", shifted=False)
    (window,) = windows.due()
    assert window.reference is not None
    calm = compare(windows.current(window), window.reference.sample, SMALL)
    assert not calm.detected, calm.scores
    assert calm.share < SMALL.drift_share
    assert abs(calm.flag_rate_shift) < SMALL.flag_rate_shift
    # Labels nobody got on either side are not tested (they cannot drift).
    assert "label_threat" not in calm.scores and "p_toxic" in calm.scores

    windows, key = window_sample(tmp_path, "changed", shifted=True)
    (window,) = windows.due()
    assert window.reference is not None
    changed = compare(windows.current(window), window.reference.sample, SMALL)
    assert changed.detected
    assert {"p_toxic", "text_length", "flagged", "feature_caps_ratio"} <= set(changed.drifted)
    assert changed.flag_rate_shift > 0.2

    when = datetime(2026, 11, 30, 13, 0, tzinfo=UTC)
    path = write_report(changed, tmp_path / "reports", keep=2, when=when)
    assert path is not None and path.stat().st_size > 10_000
    html = path.read_text()
    assert "p_toxic" in html and '<script src="http' not in html  # nothing fetched on open
    event = DriftEvent.model_validate_json(drift_event(changed, when).to_json_bytes())
    assert event.key == key and event.platform is Platform.TWITCH
    assert event.report == path.name and set(event.drifted) == set(changed.drifted)
    assert event.rows == 300 and event.reference_rows == 300
    assert event.model_versions == ["hybrid-test"]


def test_a_flag_rate_shift_alone_is_drift(tmp_path: Path) -> None:
    config = SMALL.model_copy(update={"flag_rate_shift": 0.01, "drift_share": 1.0})
    windows, _ = window_sample(tmp_path, "changed", shifted=True)
    (window,) = windows.due()
    assert window.reference is not None
    result = compare(windows.current(window), window.reference.sample, config)
    assert result.share < 1.0 and result.detected


def test_only_the_newest_reports_are_kept(tmp_path: Path) -> None:
    windows, _ = window_sample(tmp_path, "changed", shifted=True)
    (window,) = windows.due()
    assert window.reference is not None
    result = compare(windows.current(window), window.reference.sample, SMALL)
    for minute in range(4):
        write_report(
            result, tmp_path / "r", keep=2, when=datetime(2026, 12, 1, 0, minute, tzinfo=UTC)
        )
    kept = sorted(p.name for p in (tmp_path / "r").glob("*.html"))
    assert len(kept) == 2 and kept[-1].endswith("20261201T000300Z.html")


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_gauges_name_the_largest_communities_and_collapse_the_rest(tmp_path: Path) -> None:
    windows, _ = window_sample(tmp_path, "changed", shifted=True)
    (window,) = windows.due()
    assert window.reference is not None
    drifted = compare(windows.current(window), window.reference.sample, SMALL)
    windows, _ = window_sample(tmp_path, "calm", shifted=False)
    (window,) = windows.due()
    assert window.reference is not None
    calm = compare(windows.current(window), window.reference.sample, SMALL)
    calm.key = "twitch:big"

    gauges = Gauges(top=1)
    small = {"twitch:big": calm, "twitch:small": drifted}
    gauges.export(small, {"twitch:big": 900, "twitch:small": 10})
    assert gauge("warden_drift_detected", community="twitch:big") == 0.0
    assert gauge("warden_drift_detected", community=OTHER) == 1.0
    assert gauge("warden_drift_detected", community="twitch:small") is None
    assert gauge("warden_drift_score", community=OTHER, feature="p_toxic") == pytest.approx(
        drifted.scores["p_toxic"]
    )
    assert gauge("warden_flag_rate_shift", community=OTHER) == pytest.approx(
        drifted.flag_rate_shift
    )
    # The small one grows past the big one: it gets its name, and "other" goes away.
    gauges.export(small, {"twitch:big": 5, "twitch:small": 10})
    assert gauge("warden_drift_detected", community="twitch:small") == 1.0
    assert gauge("warden_drift_detected", community=OTHER) == 0.0  # big is "other" now
    gauges.export({}, {})
    assert gauge("warden_drift_detected", community="twitch:small") is None
    assert gauge("warden_drift_score", community="twitch:small", feature="p_toxic") is None


def test_the_service_skips_what_is_not_a_verdict(tmp_path: Path) -> None:
    settings = Settings().model_copy(update={"drift": SMALL.model_copy(update={"dir": tmp_path})})

    class Record:
        def __init__(self, value: bytes) -> None:
            self.value = value

    service = DriftService(settings, consumer=None, producer=None)
    before = gauge("warden_errors_total", service="drift", kind="invalid_payload") or 0.0
    good = verdicts("a", 2)
    service.handle([Record(b"{not json"), *(Record(v.to_json_bytes()) for v in good)])
    after = gauge("warden_errors_total", service="drift", kind="invalid_payload")
    assert after == before + 1
    window = service.windows.get("twitch:a")
    assert window is not None and window.seen == 2


def test_bad_drift_settings_fail_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WARDEN_DRIFT__MIN_ROWS", "2000")
    with pytest.raises(ConfigError, match="WARDEN_DRIFT__MIN_ROWS 2000 exceeds"):
        load_settings()
    monkeypatch.delenv("WARDEN_DRIFT__MIN_ROWS")
    monkeypatch.setenv("WARDEN_DRIFT__METHOD", "ks")
    with pytest.raises(ConfigError, match="WARDEN_DRIFT__METHOD"):
        load_settings()
    monkeypatch.delenv("WARDEN_DRIFT__METHOD")
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    settings = Settings().model_copy(update={"drift": DriftSettings(dir=blocked)})
    with pytest.raises(ConfigError, match="WARDEN_DRIFT__DIR"):
        prepare_folders(settings)


def test_evidently_reaches_no_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    load_evidently()
    assert os.environ.get("DO_NOT_TRACK")  # evidently's telemetry switch, set before import
    windows, _ = window_sample(tmp_path, "changed", shifted=True)
    (window,) = windows.due()
    assert window.reference is not None
    result = compare(windows.current(window), window.reference.sample, SMALL)
    write_report(result, tmp_path / "r", keep=1, when=datetime(2026, 12, 1, tzinfo=UTC))
    assert result.report is not None and attempts == []
