"""`warden ingest replay` of a CSV log, looped, on the real broker."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from kit import REPO, consume, service_env

from schemas.topics import CHAT_MESSAGES, DEADLETTER
from warden.settings import Settings
from warden.topics import topic_size

CSV = """message_id,user,text,sent_at,received_at,platform,community,channel,user_roles
c1,u1,first,2024-06-15T18:00:00+00:00,2024-06-15T18:00:00.020+00:00,twitch,stream,#main,vip
c2,u2,"second, with a comma",2024-06-15T18:00:00.500+00:00,,twitch,stream,#main,
c3,u1,third,2024-06-15T18:00:01+00:00,,,,,moderator|subscriber
bad,,no user,2024-06-15T18:00:01+00:00,,,,,
"""


async def test_a_csv_log_is_replayed_in_loops(settings: Settings, tmp_path: Path) -> None:
    log = tmp_path / "chat.csv"
    log.write_text(CSV)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "warden", "ingest", "replay", str(log), "--speed", "4", "--loop", "2"),
        env=service_env(settings),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = (await asyncio.wait_for(process.communicate(), timeout=120))[0].decode()
    assert process.returncode == 0, output
    assert "replayed 6 messages (1 rejected)" in output
    suffix = settings.kafka.topic_suffix
    records = await consume(settings, CHAT_MESSAGES.name_for(suffix), count=6)
    assert sorted(r["message_id"] for r in records) == [
        "0-c1",
        "0-c2",
        "0-c3",
        "1-c1",
        "1-c2",
        "1-c3",
    ]
    first = next(r for r in records if r["message_id"] == "0-c1")
    assert first["platform"] == "twitch" and first["user_roles"] == ["vip"]
    assert await topic_size(settings.kafka, CHAT_MESSAGES) == 6
    dead = await consume(settings, DEADLETTER.name_for(suffix), count=1)
    assert dead[0]["source_topic"] == "replay:chat.csv:5"
