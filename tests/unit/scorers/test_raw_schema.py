"""RawSchema: the source topic's events are what faust's raw serializers make, made directly."""

from __future__ import annotations

import asyncio

import faust
import pytest
from faust.types import TP, Message

from scorers.consumer import RawSchema


def message(key: bytes | None, value: bytes | None) -> Message:
    return Message(
        topic="chat.messages.v1",
        partition=3,
        offset=41,
        timestamp=1_700_000_000.0,
        timestamp_type=0,
        headers=[("trace", b"abc")],
        key=key,
        value=value,
        checksum=None,
        tp=TP("chat.messages.v1", 3),
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (b"twitch:chan:ana", b'{"text": "hi"}'),
        (None, b"not json at all \xff"),  # the scorer, not the schema, rejects bad values
        (b"k", b""),
        (b"k", None),  # a tombstone
    ],
)
def test_events_match_fausts_raw_serializers(key: bytes | None, value: bytes | None) -> None:
    app = faust.App("raw-schema-test", broker="kafka://127.0.0.1:1")
    msg = message(key, value)

    async def both() -> tuple[faust.types.EventT, faust.types.EventT]:
        faust_raw = faust.Schema(key_serializer="raw", value_serializer="raw").compile(app)
        return await faust_raw(msg), await RawSchema().compile(app)(msg)

    expected, got = asyncio.run(both())
    assert type(got) is type(expected)
    assert (got.key, got.value, got.headers, got.message) == (
        expected.key,
        expected.value,
        expected.headers,
        expected.message,
    )
    assert got.app is app
