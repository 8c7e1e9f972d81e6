"""Replay of JSONL and CSV logs: the CSV columns, bad rows, loops and opt-out counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes.kafka_producer import FakeProducer

from core.errors import PayloadError
from core.settings import IngestSettings, KafkaSettings
from ingest.publisher import Publisher
from ingest.replay import csv_record, read_records, replay

HEADER = "message_id,user,text,sent_at,user_roles,platform,community,channel,reply_to,edited"
CSV = (
    HEADER
    + """,attachments,extra
c1,u1,"hello, world",2024-06-15T18:00:00+00:00,moderator|vip,twitch,chan,#live,,false,,x
c2,u2,gg,1718474401.5,,,,,c1,TRUE,https://a/1.png https://a/2.png,
c3,u3,no zone,2024-06-15T18:00:02,,,,,,,,
c4,,no user,2024-06-15T18:00:03+00:00,,,,,,,,
"""
)


def test_csv_rows_become_chat_messages(tmp_path: Path) -> None:
    path = tmp_path / "chat.csv"
    path.write_text(CSV)
    rows = list(read_records(path))
    assert [n for n, _, _ in rows] == [2, 3, 4, 5]
    first, second = rows[0][2], rows[1][2]
    assert isinstance(first, dict) and isinstance(second, dict)
    assert first["text"] == "hello, world" and first["user_roles"] == ["moderator", "vip"]
    assert (first["platform"], first["community"], first["channel"]) == ("twitch", "chan", "#live")
    assert first["received_at"] == first["sent_at"]
    assert (second["platform"], second["community"], second["channel"]) == (
        "replay",
        "replay",
        "#main",
    )
    assert second["reply_to"] == "c1" and second["edited"] is True
    assert [a["url"] for a in second["attachments"]] == ["https://a/1.png", "https://a/2.png"]
    assert second["sent_at"].startswith("2024-06-15T18:00:01.5")
    assert isinstance(rows[2][2], ValueError) and "zone" in str(rows[2][2])
    assert isinstance(rows[3][2], ValueError) and "user" in str(rows[3][2])
    assert rows[3][1].startswith(b"c4,")


def test_a_csv_without_the_required_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,text\n1,hi\n")
    with pytest.raises(PayloadError, match=r"bad\.csv:1: .*message_id"):
        list(read_records(path))
    with pytest.raises(ValueError, match="edited"):
        csv_record({"message_id": "1", "user": "u", "text": "t", "sent_at": "1", "edited": "maybe"})


async def test_replay_csv_loops_and_reports_bad_rows_once(tmp_path: Path) -> None:
    path = tmp_path / "chat.csv"
    path.write_text(CSV)
    producer = FakeProducer()
    producer.auto_ack = True
    async with Publisher(KafkaSettings(), producer, ingest=IngestSettings()) as pub:
        stats = await replay(pub, path, speed=0, loops=2, id_prefix="r-")
    assert (stats.published, stats.rejected) == (4, 2)
    chat = [json.loads(v) for t, _, v, _ in producer.sent if t == "chat.messages.v1"]
    assert sorted(m["message_id"] for m in chat) == ["r-0-c1", "r-0-c2", "r-1-c1", "r-1-c2"]
    assert {m["reply_to"] for m in chat if m["message_id"].endswith("c2")} == {"r-0-c1", "r-1-c1"}


async def test_pacing_follows_the_log_clock_times_the_speed(tmp_path: Path) -> None:
    lines = [
        {
            "message_id": f"p{i}",
            "platform": "replay",
            "community": "c",
            "channel": "#main",
            "user": "u",
            "text": "t",
            "sent_at": f"2024-06-15T18:00:0{i}+00:00",
            "received_at": f"2024-06-15T18:00:0{i}+00:00",
        }
        for i in range(3)
    ]
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    producer = FakeProducer()
    producer.auto_ack = True
    async with Publisher(KafkaSettings(), producer, ingest=IngestSettings()) as pub:
        paced = await replay(pub, path, speed=4)  # 2 s of log -> 0.5 s
        fast = await replay(pub, path, speed=0, id_prefix="f-")
        fixed = await replay(pub, path, rate=10, id_prefix="r-")  # 3 messages at 10/s
    assert 0.45 <= paced.seconds < 1.5
    assert fast.seconds < 0.3
    assert 0.18 <= fixed.seconds < 1.2


def test_a_csv_line_that_is_not_utf8_is_named_by_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes(
        b"message_id,user,text,sent_at\nm1,u1,ok,1718474401\nm2,u1,caf\xe9,1718474402\n"
    )
    rows = read_records(path)
    assert next(rows)[0] == 2  # the lines before it are replayed
    with pytest.raises(PayloadError, match=r"log\.csv:3: not UTF-8 \(byte 0xe9 at column 10\)"):
        next(rows)
