"""Read a whole topic (from a time on) as JSON records: for offline jobs, never for services.

The shadow comparison, ``warden retrain`` and ``warden policy calibrate`` read the verdicts and
the feedback of a period this way: no consumer group (nothing is committed), from the offsets
of ``since`` (or the beginning) to the end offsets as they were when the read began.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from core.clients import kafka_consumer
from core.settings import Settings
from schemas.topics import TopicSpec

# A read keeps at most this many records per topic (the newest).
MAX_RECORDS = 2_000_000


async def read_topic(
    settings: Settings, spec: TopicSpec, since: datetime | None
) -> list[dict[str, Any]]:
    """Every record of ``spec`` from ``since`` (or the beginning) to the end offsets of now."""
    from aiokafka import TopicPartition

    topic = spec.name_for(settings.kafka.topic_suffix)
    consumer = kafka_consumer(settings.kafka, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    records: list[dict[str, Any]] = []
    try:
        partitions = [TopicPartition(topic, p) for p in range(spec.partitions)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        if since is not None:
            starts = await consumer.offsets_for_times(
                {tp: int(since.timestamp() * 1000) for tp in partitions}
            )
            for tp in partitions:
                found = starts.get(tp)
                consumer.seek(tp, found.offset if found is not None else ends[tp])
        else:
            await consumer.seek_to_beginning(*partitions)
        remaining = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, batch in batches.items():
                for record in batch:
                    if record.offset >= ends[tp]:
                        break
                    if record.value is not None:
                        try:
                            records.append(json.loads(record.value))
                        except ValueError:
                            continue  # not ours to judge: the dead-letter topic has it
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            if len(records) > MAX_RECORDS:
                records = records[-MAX_RECORDS:]
    finally:
        await consumer.stop()
    return records
