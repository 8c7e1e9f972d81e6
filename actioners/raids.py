"""Raid answers: ``moderation.raids.v1`` -> the community's ``raid`` section -> one RAID_MODE.

The actioner reads the raid topic in its own consumer group, next to the verdicts, and decides a
``RaidEvent`` the way it decides a verdict: the decision (keyed by ``raid_id``, which is also the
request's ``message_id``) and its ledger entry are written in one transaction before the
offsets are committed, and the entry's ``action_id`` comes from ``raid_id``. So a raid reported
twice (a scorer that published again after a crash, a redelivery) finds its decision and adds
nothing, and the raid mode reaches the platform at most once, through the same dispatcher and
executors as every other action.

Every raid gets a decision row, also the ones answered with nothing (a friendly raid under
``act_on: harmful``), so that ``warden explain <raid_id>`` says why. The raid accounts' own
lines are judged per message by the label rules (``raid`` with a harm label: a ban in the
presets), not here.

A raid mode that is to be carried out (not shadow, not skipped) is written together with its
end: a pending RAID_MODE_OFF (``<action_id>:off``, ``reverses`` the raid mode) due
``duration_s`` later, which ``actioners.timers`` carries out when its time has come.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from aiokafka import ConsumerRecord

from actioners import ledger as ledgers
from actioners.database import Database
from actioners.ledger import DecisionRow, Entry, Source, State
from actioners.policy import RAID_USER, raid_request, reference
from actioners.policy.decisions import RAID_MODEL
from actioners.policystore import PolicyStore, StoredPolicy
from schemas.events import ActionKind, ActionRequest, RaidEvent, Severity, utcnow

RaidDecoded = tuple[ConsumerRecord[bytes, bytes], RaidEvent]


async def decide_raids(
    db: Database,
    policies: PolicyStore,
    executor_for: Callable[[ActionRequest], str],
    raids: Sequence[RaidDecoded],
) -> list[Entry]:
    """Decide the raids not decided before; return the ledger entries they created to be
    settled now (not the RAID_MODE_OFFs, which wait for their time)."""
    if not raids:
        return []
    stored: dict[tuple[str, str], StoredPolicy] = {}
    for _, event in raids:
        key = (event.platform.value, event.community)
        if key not in stored:
            stored[key] = await policies.current(*key)
    ids = list(dict.fromkeys(event.raid_id for _, event in raids))
    now = utcnow()
    decisions: list[DecisionRow] = []
    intents: list[Entry] = []
    async with db.transaction() as cur:
        seen = await ledgers.decided(cur, ids)
        for record, event in raids:
            if event.raid_id in seen:
                continue  # reported again, or decided before a restart
            seen.add(event.raid_id)
            policy = stored[(event.platform.value, event.community)]
            answer = raid_request(
                policy.policy, event, policy_version=policy.version_id, requested_at=now
            )
            if answer is None:
                rule = "nothing"
                reason = (
                    f"policy {policy.version_id} ({policy.policy.preset}); "
                    f"{'harmful' if event.harmful else 'friendly'} raid: {event.size} "
                    f"first-time accounts, {event.messages} lines; raid answer "
                    f"(act_on {policy.policy.raid.act_on}) -> nothing"
                )
                shadow = False
            else:
                request, skip = answer
                rule = f"raid mode {', '.join(m.value for m in request.modes)}"
                reason = request.reason
                shadow = not policy.policy.live
                source = Source(record.topic, record.partition, record.offset)
                intents.append(
                    Entry(
                        request=request,
                        state=State.SKIPPED if skip else State.PENDING,
                        source=source,
                        detail=f"not done: {skip}" if skip else "",
                        executor=executor_for(request) if skip else "",
                        completed_at=now if skip else None,
                    )
                )
                if not skip and request.duration_s:
                    intents.append(off_entry(request, source, now))
            decisions.append(
                DecisionRow(
                    message_id=event.raid_id,
                    platform=event.platform.value,
                    community=event.community,
                    channel=event.channel,
                    user=RAID_USER,
                    policy_version=policy.version_id,
                    model_version=RAID_MODEL,
                    severity=(Severity.HIGH if event.harmful else Severity.LOW).value,
                    rule=rule,
                    strikes_added=0,
                    strikes_active=0,
                    shadow=shadow,
                    reason=reason[:2000],
                    labels=tuple(event.labels),
                )
            )
        await ledgers.record_decisions(cur, decisions, intents)
    return [e for e in intents if not e.waiting]  # a raid mode's end waits for its time


def off_request(raid_mode: ActionRequest, due_at: datetime) -> ActionRequest:
    """The end of a raid mode (deterministic id ``<action_id>:off``), requested for ``due_at``;
    its ``restore`` is filled in from the ledger when it comes due."""
    off_id = f"{raid_mode.action_id}:off"
    if len(off_id) > 200:  # ids are at most 200 characters
        off_id = f"raid-{reference(raid_mode.action_id, 40)}:off"
    return raid_mode.model_copy(
        update={
            "action_id": off_id,
            "kind": ActionKind.RAID_MODE_OFF,
            "duration_s": None,
            "notice": None,
            "reverses": raid_mode.action_id,
            "restore": None,
            "requested_at": due_at,
            "reason": f"raid mode's {raid_mode.duration_s} s are over ({raid_mode.reason})"[:2000],
        }
    )


def off_entry(raid_mode: ActionRequest, source: Source, now: datetime) -> Entry:
    """The pending RAID_MODE_OFF written with a raid mode, due ``duration_s`` after ``now``."""
    due_at = now + timedelta(seconds=raid_mode.duration_s or 0)
    return Entry(
        request=off_request(raid_mode, due_at),
        state=State.PENDING,
        source=source,
        due_at=due_at,
    )
