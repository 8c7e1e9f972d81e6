"""The actioner: moderation.verdicts.v1 -> policy -> ledger -> executor -> moderation.actions.v1.

It also reads moderation.raids.v1 (in the same consumer group) and answers each raid with the
community's raid mode (``actioners.raids``), under the same rules as a verdict.

Per batch of records:

1. decode the verdicts and raids (undecodable ones become dead letters);
2. decide: each community's policy (``actioners.policy``) and each user's active strikes give a
   decision; the decision, its strikes and its action intents (the ledger entries) are written
   in one transaction. A verdict already decided (delivered again) decides nothing new;
3. commit the offsets: from here on the ledger, not the topic, holds the work;
4. act, in the background: the dispatcher carries out the entries (``actioners.dispatch``),
   each marked in flight before the platform is called and finished with its audit row after;
   then every finished entry is published as an ``ActionResult`` (permanent failures also as
   dead letters, with the reason) and marked published.

So a slow platform (a timeout waiting on Discord's per-guild limit) never holds up the deletes
of the next batch, and a queue that builds up is served highest severity first. At most
``max_pending_actions`` wait at once; beyond that the actioner stops reading verdicts.

A crash anywhere loses nothing and repeats nothing: when partitions are assigned, whatever the
ledger holds unfinished or unpublished for them is settled first; entries left in flight are
reconciled with the platform, never blindly repeated. When partitions are taken away (or on
shutdown) the actions under way get ``drain_timeout_s`` to finish first.

No single record stops the stream: a batch whose decision fails for its data (PostgreSQL
refuses a value, the policy code raises) is decided again record by record, and only the
records that fail become dead letters, with the reason. PostgreSQL or Kafka being away is not
the data's fault: nothing is dead-lettered for it; the work waits, reconnecting with back-off
(``actioners.database``, ``actioners.publisher``), readiness drops to 0 meanwhile, and no offset
is committed for verdicts not in the ledger. SIGTERM is answered within ``drain_timeout_s``
(plus a few seconds to close the clients) in every state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import psycopg
from aiokafka import (
    AIOKafkaConsumer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import CommitFailedError, KafkaError
from pydantic import ValidationError

from actioners import ledger as ledgers
from actioners import strikes as strike_book
from actioners import timers
from actioners.chatlog import ChatLog
from actioners.database import Database, DatabaseUnavailable, is_unavailable
from actioners.dispatch import Dispatcher
from actioners.executors import Router
from actioners.ledger import DecisionRow, Entry, HoldRow, Ledger, Source, State
from actioners.modlog import ModLog
from actioners.policy import evaluate, requests_for
from actioners.policystore import PolicyStore, StoredPolicy
from actioners.publisher import Outgoing, Publisher
from actioners.raids import RaidDecoded, decide_raids
from actioners.retention import run_periodically
from actioners.strikes import NewStrike
from core import metrics
from core.clients import group_id, kafka_consumer, kafka_producer
from core.errors import ConfigError
from core.net import reachable
from core.settings import Settings
from core.stopping import until_stopped
from schemas.events import ActionKind, DeadLetter, RaidEvent, Verdict, VerdictKind, utcnow
from schemas.topics import ACTIONS, DEADLETTER, RAIDS, VERDICTS

logger = logging.getLogger(__name__)
SERVICE = "actioner"
T = TypeVar("T")
Decoded = tuple[ConsumerRecord[bytes, bytes], Verdict]
# Clients get this long each to close on shutdown (a broker that is away never answers).
CLOSE_TIMEOUT_S = 3.0


def dead_letter(record: ConsumerRecord[bytes, bytes], exc: Exception) -> DeadLetter:
    return DeadLetter.from_record(exc, record, service=SERVICE)


def failed_action_letter(entry: Entry, error: str | None = None) -> DeadLetter:
    """A permanently failed action (or one that could not be settled), with its request and
    the reason, for someone to look at."""
    return DeadLetter(
        source_topic=entry.source.topic,
        partition=entry.source.partition,
        offset=entry.source.offset,
        key=entry.request.key,
        raw=entry.request.model_dump_json(),
        error=error or f"{entry.request.kind.value} failed: {entry.detail}",
        error_type="PermanentActionError" if error is None else "SettleError",
        service=SERVICE,
        failed_at=utcnow(),
    )


def is_poison(exc: BaseException) -> bool:
    """Whether a batch that raised ``exc`` may hold a record that cannot be processed.

    PostgreSQL or Kafka being away is not (the work waits for them); neither is SQL the
    server does not understand (a bug or an unmigrated database: every record would fail, and
    a crash says so better than dead-lettering the stream). Anything else may be one record's
    fault: the batch is decided again record by record to find out.
    """
    if not isinstance(exc, Exception) or is_unavailable(exc):
        return False
    if isinstance(exc, KafkaError | ConfigError):
        return False
    return not isinstance(exc, psycopg.ProgrammingError | psycopg.NotSupportedError)


X = TypeVar("X")
Y = TypeVar("Y")


async def isolate(
    items: Sequence[X],
    work: Callable[[Sequence[X]], Awaitable[list[Y]]],
    *,
    describe: Callable[[X], str],
) -> tuple[list[Y], list[tuple[X, Exception]]]:
    """``work(items)``; if that fails for the data (``is_poison``), ``work([item])`` for each
    item in order, keeping what succeeds and returning what fails with its error.

    ``work`` must do all or nothing per call (one transaction), so that the retry of a failed
    batch record by record neither repeats nor loses anything. Errors that are not the data's
    (a dependency away, a bug in the SQL) propagate.
    """
    try:
        return await work(items), []
    except Exception as exc:
        if not is_poison(exc):
            raise
        if len(items) == 1:
            _log_poison(describe(items[0]), exc)
            return [], [(items[0], exc)]
        logger.warning(
            "a batch of %d failed (%s); trying them one by one", len(items), type(exc).__name__
        )
    done: list[Y] = []
    failed: list[tuple[X, Exception]] = []
    for item in items:
        try:
            done.extend(await work([item]))
        except Exception as exc:
            if not is_poison(exc):
                raise
            _log_poison(describe(item), exc)
            failed.append((item, exc))
    return done, failed


def _log_poison(where: str, exc: Exception) -> None:
    logger.warning(
        "cannot process %s (a dead letter): %s: %s", where, type(exc).__name__, str(exc)[:200]
    )


def where(record: ConsumerRecord[bytes, bytes]) -> str:
    return f"{record.topic}[{record.partition}]@{record.offset}"


class Readiness:
    """``warden_ready{service="actioner"}``: 1 while partitions are assigned, PostgreSQL and
    Kafka answer and no stop was asked for; 0 otherwise. ``warden_dependency_up`` says which
    dependency is away."""

    def __init__(self) -> None:
        # PostgreSQL counts as up once connected; Kafka while the probe reaches a bootstrap
        # server and the last send did not fail.
        self._parts = {
            "partitions": False,
            "postgres": False,
            "kafka": True,
            "publishing": True,
            "running": True,
        }
        self._publish()

    def set(self, part: str, ok: bool) -> None:
        self._parts[part] = ok
        self._publish()

    @property
    def ready(self) -> bool:
        return all(self._parts.values())

    def _publish(self) -> None:
        parts = self._parts
        metrics.DEPENDENCY_UP.labels(SERVICE, "postgres").set(1 if parts["postgres"] else 0)
        kafka = parts["kafka"] and parts["publishing"]
        metrics.DEPENDENCY_UP.labels(SERVICE, "kafka").set(1 if kafka else 0)
        metrics.READY.labels(SERVICE).set(1 if self.ready else 0)


PROBE_EVERY_S = 2.0


async def watch_broker(readiness: Readiness, hosts: Sequence[str]) -> None:
    """Probe the brokers every ``PROBE_EVERY_S``: aiokafka's consumer hides a broker that is
    away behind its own retries, and an idle actioner sends nothing that could fail."""
    up = True
    while True:
        now_up = await reachable(hosts)
        if now_up != up:
            if now_up:
                logger.info("Kafka answers again")
            else:
                logger.warning("Kafka unreachable (%s); not ready", ",".join(hosts))
            up = now_up
        readiness.set("kafka", up)
        await asyncio.sleep(PROBE_EVERY_S)


class ReadyListener(ConsumerRebalanceListener):
    """Publishes readiness (``warden_ready``), remembers new partitions to settle, and lets the
    actions of partitions taken away finish before another actioner gets them."""

    def __init__(self, readiness: Readiness | None = None) -> None:
        self.readiness = readiness or Readiness()
        self.assigned: set[TopicPartition] = set()
        self.on_revoke: Callable[[], Awaitable[None]] | None = None

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.readiness.set("partitions", False)
        if revoked and self.on_revoke is not None:
            await self.on_revoke()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.assigned.update(assigned)
        self.readiness.set("partitions", True)


class Actioner:
    def __init__(
        self,
        settings: Settings,
        executor: Router,
        consumer: AIOKafkaConsumer,
        publisher: Publisher,
        db: Database,
        listener: ReadyListener | None = None,
    ) -> None:
        suffix = settings.kafka.topic_suffix
        self.settings = settings
        self.executor = executor
        self.consumer = consumer
        self.publisher = publisher
        self.db = db
        self.listener = listener or ReadyListener()
        self.listener.on_revoke = self.drain
        self.policies = PolicyStore(
            db,
            settings.actioner.default_preset,
            settings.actioner.policy_cache_s,
            first_day=settings.actioner.first_day == "shadow",
        )
        self.ledger = Ledger(db)
        self.dispatcher = Dispatcher(executor, self.ledger, settings.actioner)
        self.modlog = ModLog(settings, executor)  # a line per action (off unless configured)
        self.chatlog = ChatLog(settings)  # the review page's previous lines
        self.verdicts_topic = VERDICTS.name_for(suffix)
        self.raids_topic = RAIDS.name_for(suffix)
        self.actions_topic = ACTIONS.name_for(suffix)
        self.deadletter_topic = DEADLETTER.name_for(suffix)
        # Entries being settled by this process, and the tasks settling them.
        self._active: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._paused = False
        # Set when a stop is asked for: every wait from then on ends by this time.
        self._deadline: float | None = None

    @property
    def pending(self) -> int:
        """Actions decided here and not settled yet."""
        return len(self._active)

    async def handle(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Decide a batch and record it; its actions are settled in the background.

        Returns once every verdict of the batch is in the ledger or in the dead letters (so the
        offsets may be committed), however long PostgreSQL or Kafka take to come back.
        """
        started = time.perf_counter()
        verdicts: list[Decoded] = []
        raids: list[RaidDecoded] = []
        dead: list[DeadLetter] = []
        for record in records:
            try:
                if record.value is None:
                    raise ValueError("empty payload (tombstone)")
                if record.topic == self.raids_topic:
                    raids.append((record, RaidEvent.model_validate_json(record.value)))
                else:
                    verdicts.append((record, Verdict.model_validate_json(record.value)))
            except (ValidationError, ValueError) as exc:
                logger.warning(
                    "dead letter from %s[%d]@%d: %s",
                    record.topic,
                    record.partition,
                    record.offset,
                    type(exc).__name__,
                )
                dead.append(dead_letter(record, exc))
        metrics.MESSAGES_IN.labels(SERVICE, VERDICTS.name).inc(len(records) - len(raids))
        if raids:
            metrics.MESSAGES_IN.labels(SERVICE, RAIDS.name).inc(len(raids))
        if dead:
            metrics.ERRORS.labels(SERVICE, "invalid_payload").inc(len(dead))
            await self.publish([], dead)

        await self.chatlog.record([v for _, v in verdicts])
        entries, poisoned = await self.decide_batch(verdicts)
        letters = [dead_letter(item[0], exc) for item, exc in poisoned]
        if raids:
            raid_entries, raids_poisoned = await isolate(
                raids, self.decide_raids_durably, describe=lambda item: where(item[0])
            )
            entries.extend(raid_entries)
            letters.extend(dead_letter(item[0], exc) for item, exc in raids_poisoned)
        if letters:
            metrics.ERRORS.labels(SERVICE, "unprocessable").inc(len(letters))
            await self.publish([], letters)
        self.spawn(entries)
        metrics.PROCESSING_SECONDS.labels(SERVICE).observe(time.perf_counter() - started)

    async def decide_batch(
        self, verdicts: Sequence[Decoded]
    ) -> tuple[list[Entry], list[tuple[Decoded, Exception]]]:
        """Decide a batch; if it fails for its data, record by record (see ``isolate``)."""
        return await isolate(verdicts, self.decide_durably, describe=lambda item: where(item[0]))

    async def decide_durably(self, verdicts: Sequence[Decoded]) -> list[Entry]:
        """``decide``, tried again through PostgreSQL outages until it is in the ledger.

        A transaction cut off at its commit may have committed: tried again, ``decide`` finds
        the verdicts decided and creates nothing, so their unsettled entries are read back from
        the ledger to be settled here (those settled already are left alone).
        """
        ids = [v.message_id for _, v in verdicts]
        return await self._durably(lambda: self.decide(verdicts), ids)

    async def decide_raids_durably(self, raids: Sequence[RaidDecoded]) -> list[Entry]:
        """``actioners.raids.decide_raids``, tried again through PostgreSQL outages (as
        ``decide_durably``)."""
        ids = [event.raid_id for _, event in raids]
        return await self._durably(
            lambda: decide_raids(self.db, self.policies, self.executor.executor_for, raids), ids
        )

    async def _durably(
        self, decide: Callable[[], Awaitable[list[Entry]]], message_ids: Sequence[str]
    ) -> list[Entry]:
        attempt = 0
        while True:
            try:
                entries = await decide()
            except DatabaseUnavailable:
                attempt += 1
                await asyncio.sleep(self.db.backoff(attempt))
                continue
            if not attempt:
                return entries
            ids = list(dict.fromkeys(message_ids))
            found = {e.action_id: e for e in entries}
            for entry in await self.ledger.entries(ids):
                unsettled = not entry.waiting and (entry.open or not entry.published)
                if entry.action_id not in found and unsettled:
                    found[entry.action_id] = entry
            return list(found.values())

    async def decide(
        self, verdicts: Sequence[tuple[ConsumerRecord[bytes, bytes], Verdict]]
    ) -> list[Entry]:
        """Decide the verdicts not decided before; return the ledger entries they created.

        Verdicts decided before (a redelivery) add nothing: their entries, if unfinished, are
        settled from the ledger when the partition is assigned.
        """
        if not verdicts:
            return []
        policies: dict[tuple[str, str], StoredPolicy] = {}
        for _, verdict in verdicts:
            key = (verdict.platform.value, verdict.community)
            if key not in policies:
                policies[key] = await self.policies.current(*key)
        # One decision per verdict: a message's text verdict and its image verdict each get one.
        message_ids = list(dict.fromkeys(v.decision_id for _, v in verdicts))
        now = utcnow()
        intents: list[Entry] = []
        async with self.db.transaction() as cur:
            seen = await ledgers.decided(cur, message_ids)
            if len(seen) == len(message_ids):
                metrics.ERRORS.labels(SERVICE, "duplicate_verdict").inc(len(verdicts))
                return []
            counts = await strike_book.active_counts(
                cur, [(v.platform.value, v.community, v.user) for _, v in verdicts]
            )
            decisions: list[DecisionRow] = []
            holds: list[HoldRow] = []
            new_strikes: list[NewStrike] = []
            for record, verdict in verdicts:
                if verdict.decision_id in seen:
                    # Decided before (a restart, a redelivery, a repeat in this batch).
                    metrics.ERRORS.labels(SERVICE, "duplicate_verdict").inc()
                    continue
                seen.add(verdict.decision_id)
                stored = policies[(verdict.platform.value, verdict.community)]
                user = (verdict.platform.value, verdict.community, verdict.user)
                real, shadow = counts[user]
                decision = evaluate(
                    stored.policy,
                    verdict,
                    policy_version=stored.version_id,
                    active_strikes=real,
                    shadow_strikes=shadow,
                )
                if decision is None:
                    continue
                if decision.strikes_added:
                    counts[user] = (
                        (real, shadow + decision.strikes_added)
                        if decision.shadow
                        else (real + decision.strikes_added, shadow)
                    )
                    new_strikes.append(
                        NewStrike(
                            *user,
                            message_id=verdict.decision_id,
                            points=decision.strikes_added,
                            shadow=decision.shadow,
                            reason=decision.reason,
                            policy_version=decision.policy_version,
                            decay_days=stored.policy.strike_decay_s / 86400,
                        )
                    )
                decisions.append(
                    ledgers.decision_row(
                        verdict, decision, active_strikes=real, shadow_strikes=shadow
                    )
                )
                source = Source(record.topic, record.partition, record.offset)
                for request, skip in requests_for(verdict, decision, now):
                    if request.kind is ActionKind.HOLD:
                        held = decision.held
                        holds.append(
                            HoldRow(
                                request=request,
                                text=review_text(verdict),
                                labels=decision.labels,
                                held_action=(held.held if held and held.held else "review"),
                                shadow=decision.shadow,
                            )
                        )
                        intents.append(ledgers.hold_entry(request, skip, source, now))
                        continue
                    intents.append(
                        Entry(
                            request=request,
                            state=State.SKIPPED if skip else State.PENDING,
                            source=source,
                            detail=f"not done: {skip}" if skip else "",
                            executor=self.executor.executor_for(request) if skip else "",
                            completed_at=now if skip else None,
                        )
                    )
            await strike_book.add(cur, new_strikes)
            await ledgers.record_decisions(cur, decisions, intents, holds)
        return intents

    def spawn(self, entries: Sequence[Entry]) -> None:
        """Settle ``entries`` in the background (those not already being settled here)."""
        mine = [e for e in entries if e.action_id not in self._active]
        if not mine:
            return
        ids = {e.action_id for e in mine}
        self._active.update(ids)
        task = asyncio.create_task(self.settle(mine))
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            self._active.difference_update(ids)

        task.add_done_callback(done)

    async def settle(self, entries: Sequence[Entry]) -> None:
        """Carry out the open entries, then publish every result not published yet.

        PostgreSQL and Kafka outages are waited out inside (the ledger's and the publisher's
        retries). Anything else that fails here is this batch's alone: it is logged and its
        entries dead-lettered with the reason; they stay unsettled in the ledger, to be settled
        when their partition is next assigned. The stream goes on either way.
        """
        try:
            finished = await self.dispatcher.run(entries)
            unpublished = [e for e in finished if not e.published and not e.open]
            letters = [failed_action_letter(e) for e in unpublished if e.state is State.FAILED]
            await self.publish(unpublished, letters)
            # Retried through reconnects: a result published is recorded as such before this
            # process moves on, so only a crash right here publishes it a second time.
            await self.ledger.mark_published([e.action_id for e in unpublished])
            self.modlog.post(unpublished)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the per-batch boundary of the background work
            logger.exception("settling %d actions failed; left to the ledger", len(entries))
            metrics.ERRORS.labels(SERVICE, "settle_failed").inc(len(entries))
            error = f"settling failed: {type(exc).__name__}: {exc}"[:2000]
            await self.publish([], [failed_action_letter(e, error) for e in entries])

    async def publish(self, entries: Sequence[Entry], letters: Sequence[DeadLetter]) -> None:
        """Produce the results and dead letters, and wait until the broker has them all
        (through broker outages; see ``actioners.publisher``)."""
        outgoing: list[Outgoing] = []
        for entry in entries:
            result = entry.result()
            outgoing.append(
                Outgoing(self.actions_topic, result.to_json_bytes(), result.key.encode())
            )
        for letter in letters:
            outgoing.append(
                Outgoing(
                    self.deadletter_topic, letter.to_json_bytes(), letter.source_topic.encode()
                )
            )
        if not outgoing:
            return
        await self.publisher.send_all(outgoing)
        now = time.time()
        metrics.MESSAGES_OUT.labels(SERVICE, self.actions_topic).inc(len(entries))
        metrics.DEAD_LETTERS.labels(SERVICE).inc(len(letters))
        for entry in entries:
            if entry.due_at is not None:
                continue  # waited for its time on purpose (a raid mode's end): not latency
            sent_at = entry.request.sent_at.timestamp()
            metrics.END_TO_END_SECONDS.labels(SERVICE).observe(now - sent_at)

    async def settle_due(self) -> None:
        """Settle the entries of the raid partitions held here whose time has come (a raid
        mode's end: ``actioners.timers``)."""
        mine = [tp.partition for tp in self.consumer.assignment() if tp.topic == self.raids_topic]
        self.spawn(await timers.due(self.ledger, self.raids_topic, mine))

    async def recover(self, assigned: Sequence[TopicPartition]) -> None:
        """Settle what the ledger holds unfinished for newly assigned partitions."""
        leftovers: list[Entry] = []
        for topic in sorted({tp.topic for tp in assigned}):
            mine = sorted(tp.partition for tp in assigned if tp.topic == topic)
            leftovers.extend(await self.ledger.unfinished(topic, mine))
        if leftovers:
            in_flight = sum(e.state is State.IN_FLIGHT for e in leftovers)
            where_ = sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned)
            logger.info(
                "settling %d unfinished actions of %s (%d in flight)",
                len(leftovers),
                where_,
                in_flight,
            )
            self.spawn(leftovers)

    def _time_left(self) -> float:
        """Seconds the actions under way may still take: ``drain_timeout_s``, or what is left
        of it once a stop was asked for."""
        timeout = self.settings.actioner.drain_timeout_s
        if self._deadline is None:
            return timeout
        return max(0.0, self._deadline - time.monotonic())

    async def drain(self) -> None:
        """Let the actions under way finish (up to ``drain_timeout_s``); cancel the rest."""
        if not self._tasks:
            return
        timeout = self._time_left()
        logger.info("waiting up to %.0f s for %d actions under way", timeout, self.pending)
        _, left = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in left:
            task.cancel()
        if left:
            # What was cancelled stays pending or in flight in the ledger: whoever gets the
            # partitions next finishes it (in-flight entries are reconciled, not repeated).
            logger.warning("left %d unfinished batches to the ledger", len(left))
            await asyncio.gather(*left, return_exceptions=True)

    def _back_pressure(self) -> None:
        """Stop reading verdicts while too many actions wait; read again below half of it."""
        limit = self.settings.actioner.max_pending_actions
        partitions = self.consumer.assignment()
        if self.pending >= limit:
            self.consumer.pause(*partitions)  # again: partitions may have come since
            if not self._paused:
                logger.warning("%d actions pending: not reading verdicts for now", self.pending)
            self._paused = True
        elif self._paused and self.pending < limit / 2:
            self.consumer.resume(*partitions)
            self._paused = False

    async def _unless_stopped(
        self, work: Coroutine[Any, Any, T], stopping: asyncio.Future[Any], *, grace: bool
    ) -> tuple[bool, T | None]:
        """Run ``work`` until it ends or a stop is asked for; then, with ``grace``, give it
        until the shutdown deadline. Returns (finished, its result)."""
        task = asyncio.ensure_future(work)
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done() and grace:
            self._stopping_now()
            await asyncio.wait({task}, timeout=self._time_left())
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return False, None
        return True, task.result()

    def _stopping_now(self) -> None:
        if self._deadline is None:
            timeout = self.settings.actioner.drain_timeout_s
            logger.info("stopping: work under way gets up to %.0f s to finish", timeout)
            self.listener.readiness.set("running", False)
            self._deadline = time.monotonic() + timeout

    async def _commit(self) -> None:
        try:
            await self.consumer.commit()
        except CommitFailedError as exc:
            logger.warning("offsets not committed (a rebalance): %s", exc)
        except KafkaError as exc:
            # The next commit covers these offsets; a redelivery finds the verdicts decided.
            logger.warning("offsets not committed (Kafka: %r); committed with the next batch", exc)

    async def run(self, stop: asyncio.Event) -> None:
        """Read, decide and commit until ``stop``; then drain, within ``drain_timeout_s``."""
        max_records = self.settings.actioner.max_batch
        stopping = asyncio.ensure_future(stop.wait())
        next_due = 0.0
        try:
            while not stop.is_set():
                self._back_pressure()
                batches = await self.consumer.getmany(timeout_ms=200, max_records=max_records)
                if self.listener.assigned:
                    partitions = sorted(self.listener.assigned)
                    self.listener.assigned.clear()
                    done, _ = await self._unless_stopped(
                        self.recover(partitions), stopping, grace=False
                    )
                    if not done:
                        break
                if time.monotonic() >= next_due:
                    next_due = time.monotonic() + self.settings.actioner.due_check_s
                    done, _ = await self._unless_stopped(self.settle_due(), stopping, grace=False)
                    if not done:
                        break
                records = [record for batch in batches.values() for record in batch]
                if not records:
                    continue
                done, _ = await self._unless_stopped(self.handle(records), stopping, grace=True)
                if not done:
                    # Not all in the ledger: no commit; the next owner decides the batch again
                    # and finds what was decided.
                    break
                # After the decisions and their intents are in the ledger: a crash before
                # this line decides the batch again, which finds them and adds nothing.
                done, _ = await self._unless_stopped(self._commit(), stopping, grace=True)
                if not done:
                    break
        finally:
            stopping.cancel()
            self._stopping_now()
            await self.drain()
            await _close("Redis", self.chatlog.close())


async def _retrying(
    what: str, start: Callable[[], Awaitable[T]], backoff: Callable[[int], float]
) -> T:
    """``start()`` tried again with back-off while its dependency is away (cancel to give up)."""
    attempt = 0
    while True:
        try:
            return await start()
        except (DatabaseUnavailable, KafkaError) as exc:
            attempt += 1
            wait = backoff(attempt)
            log = logger.warning if attempt == 1 else logger.debug
            log("%s: %r; trying again in %.1f s", what, exc, wait)
            await asyncio.sleep(wait)


async def _close(what: str, closing: Awaitable[Any]) -> None:
    """Wait up to ``CLOSE_TIMEOUT_S`` for a client to close, whatever it raises: a client
    closing while its server is away may fail in any way (aiokafka's consumer re-raises the
    CancelledError of its own fetch task), and the process is on its way out."""
    task = asyncio.ensure_future(closing)
    done, _ = await asyncio.wait({task}, timeout=CLOSE_TIMEOUT_S)
    if not done:
        task.cancel()
        logger.warning("%s did not close within %.0f s", what, CLOSE_TIMEOUT_S)
    elif task.cancelled():
        logger.warning("%s did not close cleanly (cancelled inside)", what)
    elif task.exception() is not None:
        logger.warning("%s did not close cleanly: %r", what, task.exception())


async def serve(settings: Settings, executor: Router, stop: asyncio.Event) -> None:
    """Run one actioner until ``stop`` is set.

    PostgreSQL and Kafka may be away at start-up as later: the actioner waits for them (not
    ready meanwhile) rather than exiting, and a stop ends the wait.
    """
    readiness = Readiness()
    db = Database(settings.postgres, on_change=lambda ok: readiness.set("postgres", ok))
    publisher = Publisher(
        lambda: kafka_producer(settings.kafka),
        service=SERVICE,
        on_change=lambda ok: readiness.set("publishing", ok),
    )
    topic = VERDICTS.name_for(settings.kafka.topic_suffix)
    raids_topic = RAIDS.name_for(settings.kafka.topic_suffix)
    listener = ReadyListener(readiness)
    consumer: AIOKafkaConsumer | None = None
    purger: asyncio.Task[None] | None = None

    async def start_consumer() -> AIOKafkaConsumer:
        candidate = kafka_consumer(settings.kafka, group_id=group_id(settings.kafka, SERVICE))
        candidate.subscribe([topic, raids_topic], listener=listener)
        try:
            await candidate.start()
        except BaseException:
            await _close("a consumer that did not start", candidate.stop())
            raise
        return candidate

    async def start() -> AIOKafkaConsumer:
        await _retrying("PostgreSQL", db.check_schema, db.backoff)
        await executor.start()
        await publisher.start()
        return await _retrying("Kafka consumer", start_consumer, db.backoff)

    probe = asyncio.create_task(watch_broker(readiness, settings.kafka.bootstrap_list))
    try:
        started, consumer = await until_stopped(stop, start())
        if not started or consumer is None:
            return
        actioner = Actioner(settings, executor, consumer, publisher, db, listener)
        logger.info(
            "actioner consuming %s and %s, acting through %s", topic, raids_topic, executor.name
        )
        # The retention job (actioners.retention), every WARDEN_PRIVACY__PURGE_EVERY_S.
        purger = asyncio.create_task(run_periodically(settings, stop), name="retention")
        await actioner.run(stop)
    finally:
        readiness.set("running", False)
        probe.cancel()
        if purger is not None:
            purger.cancel()
        if consumer is not None:
            await _close("the Kafka consumer", consumer.stop())
        await _close("the Kafka producer", publisher.stop())
        await _close("the executor", executor.close())
        await _close("PostgreSQL", db.close())


def review_text(verdict: Verdict) -> str:
    """What a moderator reads of a held verdict: the text, and for an image verdict the
    pictures it judged (the caption alone would say nothing)."""
    if verdict.kind is VerdictKind.TEXT:
        return verdict.text
    pictures = "; ".join(
        f"{image.url} ({', '.join(f'{k} {v:.2f}' for k, v in image.detections.items()) or '-'})"
        for image in verdict.images
    )
    return f"{verdict.text}\n[image verdict: {pictures}]"[:40_000]
