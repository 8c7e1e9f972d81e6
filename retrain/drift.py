"""Drift of each community's verdict stream: what is measured, the windows, the reference, the
Evidently test and its HTML report. No Kafka here (``retrain.drift_service`` has the consumer).

What a verdict becomes (one row; the text itself is never kept, only numbers derived from it):
``p_toxic``, ``flagged``, ``severity`` (rank 0-3), one ``label_<name>`` column (0/1) per label
of ``schemas.labels.TAXONOMY``, ``text_length`` (characters, capped at 2,000 so one huge line
does not squash the bins), a language proxy (``non_ascii_share``: the share of letters outside
ASCII, and ``script``: the writing system of most letters, the one categorical column; the
verdict carries no language, and chat is too short for a language detector), and the feature
snapshot values named by ``WARDEN_DRIFT__FEATURES`` (``feature_<name>``; missing = NaN).

The reference is a pinned period of the community's own stream, not the training data: the
training pool (Jigsaw, HateXplain, chat lines) is about half toxic and has no context features,
so every live community would "drift" from it on day one and the alarm would mean nothing. The
first ``reference_rows`` verdicts a community sends while it has no reference on disk become its
reference (saved under ``<dir>/references/``, so a restart keeps it); ``warden drift pin``
replaces it with the newest verdicts on the topic when an operator accepts a change (after a
retrain, a policy change, a new audience), and a running monitor picks the new file up.

The test: Evidently's ``DataDriftPreset`` with one method for every column (``psi`` by default:
a distance, so that ``warden_drift_score`` means the same for every feature and grows with the
change rather than with the window's size as a p-value would). A column drifted when its score
is at least ``column_threshold``; a community drifted when ``drift_share`` of its tested
columns did, or its flag rate moved by ``flag_rate_shift`` or more. Columns with too few values,
or constant and equal in both windows (a label nobody gets), are not tested: they cannot drift
and would only water the share down.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import math
import os
import re
import warnings
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError
from core.settings import DriftSettings, Settings
from schemas.events import DriftEvent, Platform, Verdict, utcnow
from schemas.labels import TAXONOMY

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

Value = float | str
Row = tuple[Value, ...]

BASE_COLUMNS: tuple[str, ...] = (
    "p_toxic",
    "flagged",
    "severity",
    *(f"label_{label}" for label in TAXONOMY),
    "text_length",
    "non_ascii_share",
    "script",
)
CATEGORICAL: frozenset[str] = frozenset({"script"})
TEXT_LENGTH_CAP = 2000
# Letters looked at for the script mix: the start of a line says what it is written in.
SCRIPT_SAMPLE = 500
# A column needs this many values in each window to be tested.
MIN_VALUES = 10
REFERENCE_FORMAT = 1

# Unicode blocks -> writing system, for letters outside ASCII (sorted by first code point).
_SCRIPTS: tuple[tuple[int, int, str], ...] = (
    (0x00C0, 0x024F, "latin"),
    (0x0370, 0x03FF, "greek"),
    (0x0400, 0x052F, "cyrillic"),
    (0x0530, 0x058F, "armenian"),
    (0x0590, 0x05FF, "hebrew"),
    (0x0600, 0x06FF, "arabic"),
    (0x0750, 0x077F, "arabic"),
    (0x0900, 0x0DFF, "indic"),
    (0x0E00, 0x0E7F, "thai"),
    (0x10A0, 0x10FF, "georgian"),
    (0x1100, 0x11FF, "hangul"),
    (0x1E00, 0x1EFF, "latin"),
    (0x3040, 0x30FF, "kana"),
    (0x3400, 0x4DBF, "han"),
    (0x4E00, 0x9FFF, "han"),
    (0xAC00, 0xD7AF, "hangul"),
    (0xFF21, 0xFF5A, "latin"),  # fullwidth letters
)
_STARTS = [start for start, _, _ in _SCRIPTS]


def quiet_telemetry() -> None:
    """Keep Evidently from ever calling home, before it is imported.

    Its reports send nothing, but its UI and collector ship a usage logger that posts to the
    internet unless ``DO_NOT_TRACK`` is set (``evidently.telemetry``), and the legacy one reads
    ``EVIDENTLY_DISABLE_TELEMETRY``; nothing of ChatWarden may reach the internet at run time.
    """
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("EVIDENTLY_DISABLE_TELEMETRY", "1")


def load_evidently() -> str:
    """Import Evidently (seconds, once per process) with telemetry off; its version.

    Its import warns about its own dependencies' deprecations (litestar, numpy.core): nothing
    an operator could act on, so they are silenced here, where it is imported first.
    """
    quiet_telemetry()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import evidently
        from evidently import Report  # noqa: F401 - the import is the point: fail at start-up
        from evidently.presets import DataDriftPreset  # noqa: F401

    return str(evidently.__version__)


def columns_for(features: Sequence[str]) -> tuple[str, ...]:
    """The columns of a row: the base ones and one per watched feature."""
    return (*BASE_COLUMNS, *(f"feature_{name}" for name in features))


def script_of(char: str) -> str:
    """The writing system of one letter outside ASCII ("other" when not in the table)."""
    code = ord(char)
    index = bisect.bisect_right(_STARTS, code) - 1
    if index >= 0:
        start, end, name = _SCRIPTS[index]
        if start <= code <= end:
            return name
    return "other"


def script_mix(text: str) -> tuple[float, str]:
    """(share of letters outside ASCII, the script of most letters); ``none`` without letters
    (emotes made of symbols, links, numbers)."""
    letters = outside = 0
    counts: dict[str, int] = {}
    for char in text[: SCRIPT_SAMPLE * 4]:
        if not char.isalpha():
            continue
        letters += 1
        if char.isascii():
            name = "latin"
        else:
            outside += 1
            name = script_of(char)
        counts[name] = counts.get(name, 0) + 1
        if letters >= SCRIPT_SAMPLE:
            break
    if not letters:
        return 0.0, "none"
    return outside / letters, max(counts, key=lambda name: counts[name])


def row_of(verdict: Verdict, features: Sequence[str]) -> Row:
    """The drift row of one verdict (see the module docstring for the columns)."""
    labels = set(verdict.labels)
    non_ascii, script = script_mix(verdict.text)
    snapshot = verdict.features
    values: list[Value] = [
        verdict.p_toxic,
        1.0 if verdict.flagged else 0.0,
        float(verdict.severity.rank),
        *(1.0 if label in labels else 0.0 for label in TAXONOMY),
        float(min(len(verdict.text), TEXT_LENGTH_CAP)),
        non_ascii,
        script,
    ]
    for name in features:
        value = snapshot.get(name)
        values.append(math.nan if value is None or not math.isfinite(value) else float(value))
    return tuple(values)


def community_key(platform: str, community: str) -> str:
    return f"{platform}:{community}"


def slug(key: str) -> str:
    """A file-name-safe, collision-free name for a community key."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", key)[:60].strip("._") or "community"
    return f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


@dataclass
class Sample:
    """Rows of one community over a period, with the models that scored them."""

    key: str
    columns: tuple[str, ...]
    rows: list[Row]
    start: datetime
    end: datetime
    model_versions: tuple[str, ...] = ()

    def frame(self, columns: Sequence[str]) -> pd.DataFrame:
        import pandas as pd

        frame = pd.DataFrame.from_records(self.rows, columns=list(self.columns))
        return frame[list(columns)]

    def flag_rate(self) -> float:
        index = self.columns.index("flagged")
        return sum(float(row[index]) for row in self.rows) / max(len(self.rows), 1)


@dataclass
class Reference:
    """A community's pinned period, as saved on disk."""

    sample: Sample
    pinned_at: datetime
    source: str

    def to_json(self) -> str:
        rows = [
            [None if isinstance(v, float) and math.isnan(v) else v for v in row]
            for row in self.sample.rows
        ]
        return json.dumps(
            {
                "format": REFERENCE_FORMAT,
                "key": self.sample.key,
                "columns": list(self.sample.columns),
                "start": self.sample.start.isoformat(),
                "end": self.sample.end.isoformat(),
                "model_versions": list(self.sample.model_versions),
                "pinned_at": self.pinned_at.isoformat(),
                "source": self.source,
                "rows": rows,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Reference:
        data = json.loads(text)
        if data.get("format") != REFERENCE_FORMAT:
            raise ValueError(f"unknown reference format {data.get('format')!r}")
        # One object per distinct value: most cells are the same few (0.0, 1.0, "latin"), and
        # a thousand rows of fresh floats would take twice the memory of the window itself.
        shared: dict[Value, Value] = {}
        rows = [
            tuple(math.nan if v is None else shared.setdefault(v, v) for v in row)
            for row in data["rows"]
        ]
        sample = Sample(
            key=data["key"],
            columns=tuple(data["columns"]),
            rows=rows,
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            model_versions=tuple(data.get("model_versions", ())),
        )
        return cls(sample, datetime.fromisoformat(data["pinned_at"]), data.get("source", ""))


class ReferenceStore:
    """References on disk, one JSON file per community; re-read when the file changes (a
    ``warden drift pin`` while the monitor runs)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._cache: dict[str, tuple[float, Reference]] = {}

    def path(self, key: str) -> Path:
        return self.folder / f"{slug(key)}.json"

    def load(self, key: str) -> Reference | None:
        path = self.path(key)
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            self._cache.pop(key, None)
            return None
        cached = self._cache.get(key)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            reference = Reference.from_json(path.read_text())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("reference %s unreadable (%s); pin it again", path, exc)
            return None
        self._cache[key] = (mtime, reference)
        return reference

    def save(self, reference: Reference) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(reference.sample.key)
        partial = path.with_suffix(".json.partial")
        partial.write_text(reference.to_json())
        os.replace(partial, path)
        self._cache.pop(reference.sample.key, None)
        return path

    def all(self) -> Iterator[Reference]:
        for path in sorted(self.folder.glob("*.json")):
            try:
                yield Reference.from_json(path.read_text())
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.warning("reference %s unreadable (%s)", path, exc)


@dataclass
class Window:
    """One community's newest rows (bounded), and the first rows while it has no reference."""

    key: str
    platform: str
    community: str
    size: int
    rows: deque[Row] = field(init=False)
    stamps: deque[tuple[datetime, str]] = field(init=False)
    seen: int = 0
    checked_at_seen: int = 0
    reference: Reference | None = None

    def __post_init__(self) -> None:
        self.rows = deque(maxlen=self.size)
        self.stamps = deque(maxlen=self.size)

    def add(self, row: Row, scored_at: datetime, model_version: str) -> None:
        self.rows.append(row)
        self.stamps.append((scored_at, model_version))
        self.seen += 1

    def sample(self, columns: tuple[str, ...], last: int | None = None) -> Sample:
        rows = list(self.rows)
        stamps = list(self.stamps)
        if last is not None:
            rows, stamps = rows[-last:], stamps[-last:]
        versions: dict[str, None] = {}
        for _, version in reversed(stamps):
            versions.setdefault(version, None)
        times = [at for at, _ in stamps] or [utcnow()]
        return Sample(
            key=self.key,
            columns=columns,
            rows=rows,
            start=min(times),
            end=max(times),
            model_versions=tuple(versions)[:16],
        )


class Windows:
    """Every community's window, at most ``max_communities`` (the least recently seen goes).

    A community without a reference pins its first ``reference_rows`` verdicts as one, unless
    ``auto_pin`` is off (the one-shot commands, which only read).
    """

    def __init__(
        self, config: DriftSettings, store: ReferenceStore, *, auto_pin: bool = True
    ) -> None:
        self.config = config
        self.store = store
        self.auto_pin = auto_pin
        self.columns = columns_for(config.features)
        self._windows: OrderedDict[str, Window] = OrderedDict()
        self.pinned: list[str] = []  # keys pinned from the stream, for the caller to log

    def __len__(self) -> int:
        return len(self._windows)

    def __iter__(self) -> Iterator[Window]:
        return iter(list(self._windows.values()))

    def get(self, key: str) -> Window | None:
        return self._windows.get(key)

    def add(self, verdict: Verdict) -> Window:
        row = row_of(verdict, self.config.features)
        return self.add_row(
            verdict.platform.value, verdict.community, row, verdict.scored_at, verdict.model_version
        )

    def add_row(
        self, platform: str, community: str, row: Row, scored_at: datetime, model_version: str
    ) -> Window:
        """Add one verdict's row (``row_of``) to its community's window."""
        key = community_key(platform, community)
        window = self._windows.get(key)
        if window is None:
            size = max(self.config.window_rows, self.config.reference_rows)
            window = Window(key, platform, community, size)
            window.reference = self.store.load(key)
            self._windows[key] = window
            while len(self._windows) > self.config.max_communities:
                self._windows.popitem(last=False)
        else:
            self._windows.move_to_end(key)
        window.add(row, scored_at, model_version)
        if self.auto_pin and window.reference is None and window.seen >= self.config.reference_rows:
            self.pin(window)
        return window

    def pin(self, window: Window, source: str = "first verdicts seen") -> Reference:
        reference = Reference(
            window.sample(self.columns, last=self.config.reference_rows), utcnow(), source
        )
        self.store.save(reference)
        window.reference = reference
        window.checked_at_seen = window.seen
        self.pinned.append(window.key)
        return reference

    def due(self) -> list[Window]:
        """Windows to test now: a reference (re-read if pinned again), enough rows, and new
        rows since the last test."""
        due = []
        for window in self:
            window.reference = self.store.load(window.key) or window.reference
            current = min(len(window.rows), self.config.window_rows)
            if (
                window.reference is not None
                and current >= self.config.min_rows
                and window.seen > window.checked_at_seen
            ):
                due.append(window)
        return due

    def current(self, window: Window) -> Sample:
        return window.sample(self.columns, last=self.config.window_rows)


@dataclass
class DriftResult:
    """One community's test: scores per tested column, what drifted, the flag rates."""

    key: str
    current: Sample
    reference: Sample
    method: str
    threshold: float
    scores: dict[str, float]
    flag_rate: float
    reference_flag_rate: float
    share: float = 0.0
    drifted: tuple[str, ...] = ()
    detected: bool = False
    report: Path | None = None
    snapshot: Any = None

    @property
    def flag_rate_shift(self) -> float:
        return self.flag_rate - self.reference_flag_rate


def testable(current: pd.DataFrame, reference: pd.DataFrame) -> list[str]:
    """Columns worth a test: enough values on both sides, and not one same constant."""
    columns = []
    for column in current.columns:
        now, then = current[column].dropna(), reference[column].dropna()
        if len(now) < MIN_VALUES or len(then) < MIN_VALUES:
            continue
        values = set(now.unique()) | set(then.unique())
        if len(values) > 1:
            columns.append(column)
    return columns


def compare(current: Sample, reference: Sample, config: DriftSettings) -> DriftResult:
    """Evidently's drift test of ``current`` against ``reference`` (module docstring)."""
    common = [c for c in current.columns if c in reference.columns]
    now, then = current.frame(common), reference.frame(common)
    result = DriftResult(
        key=current.key,
        current=current,
        reference=reference,
        method=config.method,
        threshold=config.column_threshold,
        scores={},
        flag_rate=current.flag_rate(),
        reference_flag_rate=reference.flag_rate(),
    )
    tested = testable(now, then)
    if tested:
        load_evidently()
        import numpy as np
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        definition = DataDefinition(
            numerical_columns=[c for c in tested if c not in CATEGORICAL],
            categorical_columns=[c for c in tested if c in CATEGORICAL],
        )
        report = Report(
            [
                DataDriftPreset(
                    columns=tested,
                    method=config.method,
                    threshold=config.column_threshold,
                    drift_share=config.drift_share,
                )
            ]
        )
        # Evidently's histograms divide by empty bins (a label absent from one side); the
        # RuntimeWarnings say nothing an operator could act on.
        with np.errstate(divide="ignore", invalid="ignore"):
            snapshot = report.run(
                Dataset.from_pandas(now[tested], data_definition=definition),
                Dataset.from_pandas(then[tested], data_definition=definition),
            )
        result.snapshot = snapshot
        result.scores = column_scores(snapshot.dict())
    result.drifted = tuple(c for c, s in result.scores.items() if s >= config.column_threshold)
    result.share = len(result.drifted) / len(result.scores) if result.scores else 0.0
    result.detected = (
        result.share >= config.drift_share or abs(result.flag_rate_shift) >= config.flag_rate_shift
    )
    return result


def column_scores(snapshot: dict[str, Any]) -> dict[str, float]:
    """Per-column drift scores from an Evidently snapshot's ``dict()`` (its ``ValueDrift``
    metrics); a score that is not a finite number is left out."""
    scores: dict[str, float] = {}
    for metric in snapshot.get("metrics", []):
        config = metric.get("config") or {}
        if not str(config.get("type", "")).endswith(":ValueDrift"):
            continue
        value = metric.get("value")
        if isinstance(value, int | float) and math.isfinite(value):
            scores[str(config["column"])] = float(value)
    return scores


def report_name(key: str, when: datetime) -> str:
    return f"{slug(key)}-{when.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}.html"


def write_report(result: DriftResult, folder: Path, keep: int, when: datetime) -> Path | None:
    """Save the result's Evidently HTML report in ``folder`` (self-contained: its scripts are
    inlined, nothing is fetched when it is opened); keep the newest ``keep`` per community."""
    if result.snapshot is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / report_name(result.key, when)
    partial = path.with_name(path.name + ".partial")
    result.snapshot.save_html(str(partial))
    os.replace(partial, path)
    result.report = path
    for old in sorted(folder.glob(f"{slug(result.key)}-*.html"))[:-keep]:
        old.unlink(missing_ok=True)
    return path


def drift_event(result: DriftResult, when: datetime) -> DriftEvent:
    """The ``DriftEvent`` of a detected drift (``result.key`` is ``platform:community``)."""
    platform, _, community = result.key.partition(":")
    return DriftEvent(
        drift_id=f"{result.key}:{when.astimezone(UTC).isoformat()}",
        platform=Platform(platform),
        community=community,
        detected_at=when,
        method=result.method,
        threshold=result.threshold,
        drift_share=result.share,
        drifted=list(result.drifted),
        scores={column: round(score, 6) for column, score in result.scores.items()},
        rows=max(len(result.current.rows), 1),
        reference_rows=max(len(result.reference.rows), 1),
        window_start=result.current.start,
        window_end=result.current.end,
        reference_start=result.reference.start,
        reference_end=result.reference.end,
        flag_rate=min(max(result.flag_rate, 0.0), 1.0),
        reference_flag_rate=min(max(result.reference_flag_rate, 0.0), 1.0),
        model_versions=list(result.current.model_versions),
        report=result.report.name if result.report is not None else None,
    )


def folders(settings: Settings) -> tuple[Path, Path]:
    """(references folder, reports folder) of these settings."""
    root = settings.drift.dir or settings.stack.dir / "drift"
    return root / "references", settings.drift.reports_dir or root / "reports"


def prepare_folders(settings: Settings) -> tuple[Path, Path]:
    """Create the references and reports folders; a folder that cannot be made is a
    configuration error naming its variable (at start-up, not at the first drift)."""
    references, reports = folders(settings)
    for folder, variable in (
        (references, "WARDEN_DRIFT__DIR"),
        (
            reports,
            "WARDEN_DRIFT__REPORTS_DIR" if settings.drift.reports_dir else "WARDEN_DRIFT__DIR",
        ),
    ):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / ".writable"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"{variable}: cannot write to {folder}: {exc.strerror or exc}"
            ) from exc
    return references, reports


def matching(keys: Iterable[str], wanted: Sequence[str]) -> list[str]:
    """The community keys that ``wanted`` names: ``platform:community`` or a bare community."""
    if not wanted:
        return list(keys)
    keys = list(keys)
    return [k for k in keys if k in wanted or k.partition(":")[2] in wanted]
