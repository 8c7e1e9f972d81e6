"""``warden replay-decision MESSAGE_ID``: make a message's verdict and decision again from what
was stored, and say part by part whether they match.

- **model**: the model directory of the verdict's ``model_version`` (the registry's ``models``
  table, then ``WARDEN_MODEL__PATH``, then the directories under ``models/``), loaded with the
  encoder back end and thresholds the verdict records (``Verdict.scoring``), scores the stored
  text with the stored context features (``Verdict.features``). ``p_toxic``, the label scores
  and the text features must agree within :data:`TOLERANCE` (the int8 encoder on another CPU
  can differ in the last digits); the severity, the model's flag and its labels exactly.
- **detectors**: stream-detector labels depend on the stream's state in Redis at the time, so
  they are not recomputed: they are taken from the stored verdict. ``flagged`` is checked
  against the model's flag and the flag labels of the detector thresholds the scorer applied
  (the verdict's ``policy_version``).
- **policy**: ``actioners.policy.evaluate`` on the stored verdict, with the policy version the
  decision names and the strike points the user had just before it (``decisions``, migration
  0008), against the stored decision: rule, severity, strikes added, action kinds, shadow,
  labels, reason. A message with no decision (the policy asked for nothing) is evaluated with
  the policy in force and the strikes active when it was scored: it matches when that asks for
  nothing too.

The verdict comes from the decision's row (``decisions.verdict``), else from
``moderation.verdicts.v1``, read from ``--since`` ago (at most ``--scan`` records).

Exit codes: 0 every part matches; 1 a part differs or could not be made again; 4 an unknown
message id; 2 a bad option, or a model version that cannot be found or loaded; 5 Kafka or
PostgreSQL away (``core.errors``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import TypeAdapter, ValidationError

from core.commandline import Age, settings_from
from core.errors import ConfigError, TransientError, WardenError
from schemas.detection import DEFAULT_VERSION, DetectorThresholds
from schemas.events import Id, Severity, Verdict
from schemas.labels import STREAM_LABELS
from schemas.rules import is_flagged
from schemas.topics import DAY_MS, VERDICTS
from toxicity.base import CONTEXT_FEATURES, Score, TextScorer

if TYPE_CHECKING:
    import psycopg

    from actioners.database import Database
    from actioners.ledger import DecisionRow
    from actioners.policy import Decision
    from actioners.policystore import PolicyStore, StoredPolicy
    from core.settings import Settings

# p_toxic, label scores and text features closer than this are the same score.
TOLERANCE = 1e-3
MATCH, DIFFERS, STORED, UNAVAILABLE = "MATCH", "DIFFERS", "STORED", "UNAVAILABLE"
DEFAULT_SCAN = 2_000_000


class UnknownMessage(WardenError):
    """No decision and no verdict of this message id (bad input: exit 4)."""

    exit_code = 4


class ModelNotFound(ConfigError):
    """The model version a verdict names is nowhere this machine can load it from."""


@dataclass(frozen=True)
class Item:
    """One compared value: as replayed, as stored, and whether they agree."""

    name: str
    replayed: str
    stored: str
    ok: bool


@dataclass(frozen=True)
class Part:
    """One part of a replay (model, detectors, policy) and its verdict."""

    name: str
    status: str
    summary: str
    items: tuple[Item, ...] = ()

    @property
    def matches(self) -> bool:
        return self.status in (MATCH, STORED)


def part(name: str, summary: str, items: Sequence[Item]) -> Part:
    """A part that matches when every item does."""
    return Part(name, MATCH if all(i.ok for i in items) else DIFFERS, summary, tuple(items))


@dataclass(frozen=True)
class StoredDecision:
    """A ``decisions`` row, with the kinds of the actions decided with it."""

    row: DecisionRow
    actions: tuple[str, ...]

    def strikes(self) -> tuple[int, int, str]:
        """(real, shadow) strike points before the decision, and how they are known."""
        row = self.row
        if row.strikes_before is not None:
            return row.strikes_before, row.shadow_strikes_before or 0, "recorded"
        # Before migration 0008: what the row implies (strikes_active is the count after).
        before = max(0, row.strikes_active - row.strikes_added)
        return before, 0, "derived from strikes_active (decided before migration 0008)"


@dataclass
class Recorded:
    """What a replay starts from: the stored verdict and decision, and what they name."""

    verdict: Verdict
    found_in: str
    decision: StoredDecision | None
    policy: StoredPolicy | None = None
    policy_note: str = ""
    strikes: tuple[int, int] = (0, 0)
    strikes_note: str = ""
    # Flag labels of the detector thresholds the scorer applied (None: not known here).
    flag_labels: tuple[str, ...] | None = None
    model_path: Path | None = None
    notes: list[str] = field(default_factory=list)


def _num(value: float | None) -> str:
    return "null" if value is None else f"{value:.4f}"


def _list(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "none"


def _close(a: float | None, b: float | None, tolerance: float) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= tolerance


def model_labels(labels: Sequence[str]) -> list[str]:
    """A verdict's labels without the stream detectors' (those the model and its rules gave)."""
    return [label for label in labels if label not in STREAM_LABELS]


def stored_model_flag(verdict: Verdict, flag_severity: Severity) -> bool:
    """The model's own flag of a stored verdict (older verdicts: from their severity)."""
    if verdict.model_flagged is not None:
        return verdict.model_flagged
    return is_flagged(verdict.severity, flag_severity)


def largest_gap(replayed: Mapping[str, float | None], stored: Mapping[str, float | None]) -> float:
    """The largest difference between two score maps over their keys (inf: a key or a value
    missing on one side only)."""
    gap = 0.0
    for key in set(replayed) | set(stored):
        a, b = replayed.get(key), stored.get(key)
        if a is None or b is None:
            if a is not b or key not in replayed or key not in stored:
                return float("inf")
            continue
        gap = max(gap, abs(a - b))
    return gap


def compare_model(
    verdict: Verdict, score: Score, flag_severity: Severity, tolerance: float = TOLERANCE
) -> list[Item]:
    """The model's part of a stored verdict against its score made again."""
    flagged = is_flagged(score.severity, flag_severity)
    stored_flag = stored_model_flag(verdict, flag_severity)
    labels, stored_labels = list(score.labels), model_labels(verdict.labels)
    items = [
        Item(
            "p_toxic",
            _num(score.p_toxic),
            _num(verdict.p_toxic),
            _close(score.p_toxic, verdict.p_toxic, tolerance),
        ),
        Item(
            "severity",
            score.severity.value,
            verdict.severity.value,
            score.severity is verdict.severity,
        ),
        Item(
            "model_flagged", str(flagged).lower(), str(stored_flag).lower(), flagged == stored_flag
        ),
        Item("labels", _list(labels), _list(stored_labels), set(labels) == set(stored_labels)),
    ]
    if score.label_scores or verdict.label_scores:
        gap = largest_gap(score.label_scores, verdict.label_scores)
        items.append(Item("label_scores", f"largest gap {gap:.4f}", "-", gap <= tolerance))
    text = {k: v for k, v in score.features.items() if k not in CONTEXT_FEATURES}
    stored = {k: v for k, v in verdict.features.items() if k not in CONTEXT_FEATURES}
    if text or stored:
        gap = largest_gap(text, stored)
        items.append(
            Item(f"text features ({len(text)})", f"largest gap {gap:.4f}", "-", gap <= tolerance)
        )
    return items


def detector_part(
    verdict: Verdict, model_flagged: bool | None, flag_labels: Sequence[str] | None
) -> Part:
    """The stream detectors' labels (taken as stored) and whether ``flagged`` follows."""
    stream = [label for label in verdict.labels if label in STREAM_LABELS]
    applied = verdict.policy_version or "none (no stream detector ran)"
    summary = (
        f"stream labels: {_list(stream)}, as stored (they depend on the stream's state, which "
        f"is not replayed); thresholds of policy {applied}"
    )
    if model_flagged is None or flag_labels is None:
        return Part("detectors", STORED, summary)
    flagged = model_flagged or any(label in flag_labels for label in stream)
    item = Item(
        "flagged", str(flagged).lower(), str(verdict.flagged).lower(), flagged == verdict.flagged
    )
    return part("detectors", summary, [item])


def _kinds(decision: Decision) -> tuple[str, ...]:
    return tuple(sorted(action.kind.value for action in decision.actions))


def compare_decision(stored: StoredDecision | None, replayed: Decision | None) -> list[Item]:
    """A decision made again against the stored one (either may be none)."""
    nothing = "none (the policy asks for nothing)"
    if stored is None or replayed is None:
        mine = nothing if replayed is None else f"{replayed.rule} ({_list(_kinds(replayed))})"
        theirs = (
            "none recorded" if stored is None else f"{stored.row.rule} ({_list(stored.actions)})"
        )
        return [Item("decision", mine, theirs, stored is None and replayed is None)]
    kinds, row = _kinds(replayed), stored.row
    pairs = [
        ("rule", replayed.rule, row.rule),
        ("severity", replayed.severity.value, row.severity),
        ("strikes_added", str(replayed.strikes_added), str(row.strikes_added)),
        ("actions", _list(kinds), _list(stored.actions)),
        ("shadow", str(replayed.shadow).lower(), str(row.shadow).lower()),
        ("labels", _list(replayed.labels), _list(row.labels)),
    ]
    items = [Item(name, a, b, a == b) for name, a, b in pairs]
    same = replayed.reason == row.reason
    items.append(
        Item("reason", "same" if same else replayed.reason, "-" if same else row.reason, same)
    )
    return items


def policy_part(recorded: Recorded) -> Part:
    """The policy's decision made again from the stored verdict, policy and strikes."""
    from actioners.policy import evaluate

    stored = recorded.policy
    if stored is None:
        return Part("policy", UNAVAILABLE, recorded.policy_note)
    real, shadow = recorded.strikes
    decision = evaluate(
        stored.policy,
        recorded.verdict,
        policy_version=stored.version_id,
        active_strikes=real,
        shadow_strikes=shadow,
    )
    summary = (
        f"{stored.version_id}, strikes before {real} (shadow {shadow}; {recorded.strikes_note})"
    )
    if recorded.policy_note:
        summary += f"; {recorded.policy_note}"
    return part("policy", summary, compare_decision(recorded.decision, decision))


# --- the model -------------------------------------------------------------------------------


def model_dir(version: str, registered: Path | None, settings: Settings) -> Path:
    """The directory of model ``version``: the registry's path, WARDEN_MODEL__PATH, or one under
    ``models/`` whose ``model.json`` has that version; ``ModelNotFound`` naming it otherwise."""
    from toxicity.artifacts import METADATA_FILE, MODELS_DIR

    candidates = [c for c in (registered, settings.model.path) if c is not None]
    candidates += sorted(p for p in MODELS_DIR.glob("*/") if p.is_dir())
    for folder in candidates:
        try:
            found = json.loads((folder / METADATA_FILE).read_bytes()).get("version")
        except (OSError, ValueError, AttributeError):
            continue
        if found == version:
            return folder
    where = f"the registry's path {registered} (missing or another version), " if registered else ""
    raise ModelNotFound(
        f"model {version}: not found in {where}WARDEN_MODEL__PATH or {MODELS_DIR}/ "
        "(a model version is its directory's model.json version)"
    )


def load_replay_model(
    verdict: Verdict, settings: Settings, registered: Path | None
) -> tuple[TextScorer, list[str]]:
    """The verdict's model, loaded the way it scored (as far as this machine can), and notes."""
    from toxicity.lexical import VERSION as LEXICAL_VERSION
    from toxicity.lexical import LexicalScorer
    from toxicity.loading import thresholds_override
    from toxicity.provenance import replay_settings, stored_thresholds

    scoring = verdict.scoring
    notes: list[str] = []
    if scoring is None:
        notes.append(
            "verdict written before Verdict.scoring: this machine's back end and thresholds"
        )
    if verdict.model_version == LEXICAL_VERSION:
        thresholds = stored_thresholds(scoring) if scoring else thresholds_override(settings.model)
        return LexicalScorer(thresholds), notes
    import torch

    from toxicity.hybrid import HybridScorer

    folder = model_dir(verdict.model_version, registered, settings)
    chosen = replay_settings(scoring, settings.model) if scoring else settings.model
    if chosen.device == "cuda" and not torch.cuda.is_available():
        chosen = chosen.model_copy(update={"device": "cpu", "quantize": "none"})
        notes.append("scored with fp16 on CUDA; no CUDA here: fp32 on the CPU")
    # One text: one encoder session and two threads at most (a command beside services).
    chosen = chosen.model_copy(update={"encoder_workers": 1})
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    scorer = HybridScorer.load(folder, chosen, cache_dir=settings.stack.cache_dir)
    return scorer, notes


def model_part(recorded: Recorded, settings: Settings) -> tuple[Part, bool]:
    """The model's score made again and compared; with the model's flag made again."""
    verdict = recorded.verdict
    scorer, notes = load_replay_model(verdict, settings, recorded.model_path)
    scoring = verdict.scoring
    flag = scoring.flag_severity if scoring else Severity(settings.scorer.flag_severity)
    score = scorer.score([verdict.text], [verdict.features])[0]
    items = compare_model(verdict, score, flag)
    encoder = getattr(scorer, "encoder", None)
    if scoring is not None and scoring.encoder_sha256 and encoder is not None:
        mine = str(encoder.weights_hash)
        items.append(
            Item("encoder", mine[:12], scoring.encoder_sha256[:12], mine == scoring.encoder_sha256)
        )
    if scoring is not None:
        own = "settings" if scoring.thresholds_overridden else "the model's"
        how = (
            f"{scoring.backend} on {scoring.device}, thresholds {scoring.low_threshold:.3f}/"
            f"{scoring.medium_threshold:.3f}/{scoring.high_threshold:.3f} ({own}), "
            f"flag at {scoring.flag_severity.value}"
        )
    else:
        how = f"flag at {flag.value}"
    summary = "; ".join([f"{verdict.model_version} ({how})", *notes, f"tolerance {TOLERANCE:g}"])
    return part("model", summary, items), is_flagged(score.severity, flag)


# --- what was stored --------------------------------------------------------------------------


async def fetch_decision(db: Database, message_id: str) -> StoredDecision | None:
    """The message's ``decisions`` row (with its stored verdict), None when it has none."""
    import psycopg

    from actioners.ledger import DecisionRow

    try:
        async with db.transaction() as cur:
            await cur.execute(
                "SELECT message_id, platform, community, channel, user_id, policy_version,"
                " model_version, severity, rule, strikes_added, strikes_active, shadow, reason,"
                " labels, verdict, strikes_before, shadow_strikes_before, decided_at"
                " FROM decisions WHERE message_id = %s",
                (message_id,),
            )
            found = await cur.fetchone()
            if found is None:
                return None
            *row, decided_at = found
            # The decision's own entries: written in its transaction, so with its now()
            # (reversals and approved holds come later, in transactions of their own).
            await cur.execute(
                "SELECT kind FROM action_ledger WHERE message_id = %s AND created_at = %s",
                (message_id, decided_at),
            )
            kinds = tuple(sorted(r[0] for r in await cur.fetchall()))
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as exc:
        raise ConfigError(
            f"PostgreSQL lacks the decisions' replay columns: run `warden migrate` ({exc})"
        ) from exc
    head, (labels, verdict, before, shadow_before) = row[:13], row[13:]
    # The row's leading fields are the columns in the order selected (message_id ... reason).
    names = [f.name for f in fields(DecisionRow)[: len(head)]]
    return StoredDecision(
        DecisionRow(
            **dict(zip(names, head, strict=True)),
            labels=tuple(labels or ()),
            verdict=verdict,
            strikes_before=before,
            shadow_strikes_before=shadow_before,
        ),
        kinds,
    )


async def registered_path(db: Database, registry: str, version: str) -> Path | None:
    """Where the model registry keeps ``version`` (None: not registered, or no registry)."""
    import psycopg

    from toxicity.artifacts import resolve_stored

    try:
        async with db.transaction() as cur:
            await cur.execute(
                "SELECT path FROM models WHERE version = %s ORDER BY registry = %s DESC LIMIT 1",
                (version, registry),
            )
            row = await cur.fetchone()
    except psycopg.errors.UndefinedTable:  # before migration 0007
        return None
    return resolve_stored(row[0]) if row else None


async def policy_when_scored(db: Database, store: PolicyStore, verdict: Verdict) -> StoredPolicy:
    """The community's policy in force when the verdict was scored (this process's default
    preset and first-day setting when none was stored by then)."""
    platform = verdict.platform.value
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT max(version) FROM policies WHERE platform = %s AND community = %s"
            " AND created_at <= %s",
            (platform, verdict.community, verdict.scored_at),
        )
        row = await cur.fetchone()
    if row is None or row[0] is None:
        return store.default(platform, verdict.community)
    found = await store.version(platform, verdict.community, int(row[0]))
    return found if found is not None else store.default(platform, verdict.community)


async def strikes_when_scored(cur: psycopg.AsyncCursor[Any], verdict: Verdict) -> tuple[int, int]:
    """(real, shadow) strike points the user had active when the verdict was scored."""
    at = verdict.scored_at
    await cur.execute(
        "SELECT COALESCE(SUM(points) FILTER (WHERE NOT shadow), 0),"
        " COALESCE(SUM(points) FILTER (WHERE shadow), 0) FROM strikes"
        " WHERE platform = %s AND community = %s AND user_id = %s AND created_at < %s"
        " AND expires_at > %s AND (pardoned_at IS NULL OR pardoned_at > %s)",
        (verdict.platform.value, verdict.community, verdict.user, at, at, at),
    )
    row = await cur.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def scan_verdicts(
    settings: Settings, message_id: str, since: timedelta, limit: int
) -> tuple[Verdict | None, str]:
    """The message's verdict on ``moderation.verdicts.v1`` from ``since`` ago (the first one:
    the one the actioner decided), reading at most ``limit`` records; and where it was read
    (or what was read)."""
    from aiokafka import TopicPartition
    from aiokafka.errors import KafkaError

    from core.clients import kafka_consumer

    topic = VERDICTS.name_for(settings.kafka.topic_suffix)
    # The id as pydantic writes it: a cheap test on the bytes before a record is parsed.
    needle = json.dumps(message_id, ensure_ascii=False).encode()
    consumer = kafka_consumer(settings.kafka, group_id=None)
    scanned = 0
    try:
        await consumer.start()
        count = await partition_count(settings, topic)
        if not count:
            return None, f"no topic {topic}"
        partitions = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        start_ms = int((datetime.now(UTC) - since).timestamp() * 1000)
        starts = await consumer.offsets_for_times(dict.fromkeys(partitions, start_ms))
        for tp in partitions:
            found = starts.get(tp)
            consumer.seek(tp, found.offset if found is not None else ends[tp])
        remaining = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
        idle = 0
        while remaining and scanned < limit and idle < 10:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=10_000)
            idle = 0 if batches else idle + 1
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        break
                    scanned += 1
                    if record.value is None or needle not in record.value:
                        continue
                    try:
                        verdict = Verdict.model_validate_json(record.value)
                    except ValidationError:
                        continue
                    if verdict.message_id == message_id:
                        return verdict, f"{topic} partition {tp.partition} offset {record.offset}"
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    except KafkaError as exc:
        raise TransientError(
            f"cannot read {topic} from {settings.kafka.bootstrap_servers}: {exc!r}"
        ) from exc
    finally:
        await consumer.stop()
    capped = " (the --scan limit)" if scanned >= limit else ""
    return None, f"{scanned} records of {topic} read{capped}"


async def partition_count(settings: Settings, topic: str) -> int:
    """How many partitions ``topic`` has on the broker (0: no such topic); the catalog's count
    is where a topic starts, and an operator may have added more."""
    from core.clients import kafka_admin

    admin = kafka_admin(settings.kafka)
    try:
        await admin.start()
        found = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sum(len(t["partitions"]) for t in found if t["topic"] == topic and not t["error_code"])


async def gather(settings: Settings, message_id: str, since: timedelta, scan: int) -> Recorded:
    """Everything a replay of ``message_id`` needs, from PostgreSQL and (if need be) Kafka."""
    from actioners.database import Database
    from actioners.policy.decisions import RAID_MODEL
    from actioners.policystore import PolicyStore

    db = await Database.connect(settings.postgres, report_loss=False)
    try:
        decision = await fetch_decision(db, message_id)
        document = decision.row.verdict if decision is not None else None
        if decision is not None and decision.row.model_version == RAID_MODEL:
            raise UnknownMessage(
                f"{message_id} is a raid's id: raids are answered from their RaidEvent, which "
                "`warden replay-decision` does not replay"
            )
        verdict: Verdict | None = None
        found_in = "decisions"
        if document is not None:
            verdict = Verdict.model_validate(document)
        else:
            verdict, found_in = await scan_verdicts(settings, message_id, since, scan)
        if verdict is None:
            days = since.total_seconds() / 86400
            if decision is not None:
                raise UnknownMessage(
                    f"message {message_id} was decided but its verdict was not stored with the"
                    f" decision (decided before migration 0008) and is not on the verdicts topic"
                    f" in the last {days:g} days ({found_in})"
                )
            raise UnknownMessage(
                f"unknown message {message_id}: no decision recorded, and no verdict in the last"
                f" {days:g} days ({found_in}; --since, --scan look further)"
            )
        recorded = Recorded(verdict, found_in, decision)
        first_day = settings.actioner.first_day == "shadow"
        store = PolicyStore(db, settings.actioner.default_preset, first_day=first_day)
        platform, community = verdict.platform.value, verdict.community
        if decision is not None:
            real, shadow, recorded.strikes_note = decision.strikes()
            recorded.strikes = (real, shadow)
            try:
                recorded.policy = await store.at(platform, community, decision.row.policy_version)
            except ValueError as exc:
                recorded.policy_note = f"policy cannot be rebuilt: {exc}"
            else:
                if recorded.policy is None:
                    recorded.policy_note = f"policy {decision.row.policy_version} is not stored"
        else:
            recorded.policy = await policy_when_scored(db, store, verdict)
            recorded.policy_note = "no decision recorded: the policy in force when it was scored"
            async with db.transaction() as cur:
                recorded.strikes = await strikes_when_scored(cur, verdict)
            recorded.strikes_note = "active when it was scored"
        recorded.flag_labels = await scorer_flag_labels(store, verdict)
        recorded.model_path = await registered_path(
            db, settings.model.registry, verdict.model_version
        )
        return recorded
    finally:
        await db.close()


async def scorer_flag_labels(store: PolicyStore, verdict: Verdict) -> tuple[str, ...] | None:
    """The flag labels of the detector thresholds the scorer applied (None: not known here)."""
    version = verdict.policy_version
    if version == DEFAULT_VERSION:
        return tuple(DetectorThresholds().flag_labels)
    if version is None:
        return ()
    try:
        found = await store.at(verdict.platform.value, verdict.community, version)
    except ValueError:
        return None
    return tuple(found.policy.detectors.flag_labels) if found is not None else None


# --- the command ------------------------------------------------------------------------------


def replay(recorded: Recorded, settings: Settings) -> list[Part]:
    """Every part made again and compared."""
    model, flagged = model_part(recorded, settings)
    detectors = detector_part(recorded.verdict, flagged, recorded.flag_labels)
    return [model, detectors, policy_part(recorded)]


def render(message_id: str, recorded: Recorded, parts: Sequence[Part]) -> str:
    v = recorded.verdict
    lines = [
        f"message {message_id} ({v.platform.value}:{v.community}:{v.user}, channel {v.channel},"
        f" scored {v.scored_at.isoformat()}); verdict from {recorded.found_in}"
    ]
    for p in parts:
        lines.append(f"{p.name:<10} {p.status:<8} {p.summary}")
        for item in p.items:
            mark = "=" if item.ok else "DIFFERS"
            stored = "" if item.stored == "-" else f"  stored {item.stored}"
            lines.append(f"           {item.name:<19} {item.replayed}{stored}  {mark}")
    every = all(p.matches for p in parts)
    lines.append(f"replay: {'MATCH' if every else 'DIFFERS'}")
    return "\n".join(lines)


def as_document(message_id: str, recorded: Recorded, parts: Sequence[Part]) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "match": all(p.matches for p in parts),
        "verdict_from": recorded.found_in,
        "model_version": recorded.verdict.model_version,
        "policy_version": recorded.decision.row.policy_version if recorded.decision else None,
        "tolerance": TOLERANCE,
        "parts": [asdict(p) | {"matches": p.matches} for p in parts],
    }


def _message_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return str(TypeAdapter(Id).validate_python(value))
    except ValidationError as exc:
        raise click.BadParameter(
            "a message id is 1-200 characters without control characters", ctx, param
        ) from exc


@click.command("replay-decision")
@click.argument("message_id", callback=_message_id)
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the report.")
@click.option(
    "--since",
    type=Age(),
    default=f"{VERDICTS.retention_ms // DAY_MS}d",
    show_default=True,
    help="A message with no decision stored: how far back to look for its verdict on "
    "moderation.verdicts.v1 (30m, 24h, 7d; default: the topic's retention).",
)
@click.option(
    "--scan",
    type=click.IntRange(1, 1_000_000_000),
    default=DEFAULT_SCAN,
    show_default=True,
    help="Read at most this many verdict records looking for it.",
)
@click.pass_context
def replay_decision(
    ctx: click.Context, message_id: str, as_json: bool, since: timedelta, scan: int
) -> None:
    """Make MESSAGE_ID's verdict and decision again from what was stored and say whether they
    match: the model (the stored model version, encoder back end and thresholds, on the stored
    text and context features; p_toxic within 0.001), the stream detectors (their labels are
    taken as stored), and the policy (the stored policy version and the user's strikes before
    the decision, against the stored rule, severity, strikes and actions).

    Exit 0 when every part matches, 1 when one differs or cannot be made again, 4 for an unknown
    message id.
    """
    settings = settings_from(ctx)
    recorded = asyncio.run(gather(settings, message_id, since, scan))
    parts = replay(recorded, settings)
    if as_json:
        click.echo(json.dumps(as_document(message_id, recorded, parts)))
    else:
        click.echo(render(message_id, recorded, parts))
    if not all(p.matches for p in parts):
        ctx.exit(1)
