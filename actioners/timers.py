"""Ledger entries that wait for their time: a raid mode's end (RAID_MODE_OFF) after ``duration_s``.

The RAID_MODE_OFF is written pending, with its ``due_at``, in the transaction that decides the
raid (``actioners.raids``), so it survives any crash. ``Ledger.unfinished`` (restart recovery)
leaves pending entries with a ``due_at`` out; every ``due_check_s`` the actioner asks ``due`` for
those of the raid partitions it owns whose time has come, and settles them like any entry: the
dispatcher claims each (pending -> in flight, atomically), so two actioners never run one twice,
and the result is published on ``moderation.actions.v1``.

An off is only carried out when the raid mode it reverses is done: it then carries what that raid
mode's executor said to restore (the settings it found). A raid mode that failed or was skipped
turned nothing on, so its off is finished skipped, saying why, with no platform call; one still
under way is left for the next look.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from actioners.ledger import Entry, Ledger, State, result_of
from schemas.events import ActionStatus, utcnow

logger = logging.getLogger(__name__)

# No platform is called for an off whose raid mode was never on.
NOTHING_TO_UNDO = "none"


async def due(ledger: Ledger, topic: str, partitions: Sequence[int]) -> list[Entry]:
    """The entries of ``topic``'s ``partitions`` to settle now: the due ones whose original is
    done (with its restore data), and those finished here as skipped (to be published)."""
    if not partitions:
        return []
    ready: list[Entry] = []
    for entry, original in await ledger.due(topic, partitions):
        if original == State.DONE.value:
            ready.append(entry)
        elif original in (State.PENDING.value, State.IN_FLIGHT.value):
            continue  # the raid mode is still being turned on: look again next time
        else:
            skipped = await _skip(ledger, entry, original)
            if skipped is not None:
                ready.append(skipped)
    if ready:
        logger.info("%d actions due in %s%s", len(ready), topic, sorted(partitions))
    return ready


async def _skip(ledger: Ledger, entry: Entry, original: str | None) -> Entry | None:
    """Finish ``entry`` skipped without a platform call (None: another actioner took it)."""
    reverses = entry.request.reverses
    why = "not found" if original is None else original
    started = await ledger.start([entry], NOTHING_TO_UNDO)
    if not started:
        return None
    result = result_of(
        entry.request,
        executor=NOTHING_TO_UNDO,
        status=ActionStatus.SKIPPED,
        detail=f"nothing to turn off: {reverses} was {why}, so it turned nothing on",
        completed_at=utcnow(),
    )
    return await ledger.finish(started[0], result, 0)
