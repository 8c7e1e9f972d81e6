"""Each failure of issue #10, reproduced on the whole pipeline, with what must hold after it.

Every trial replays chat through ``warden ingest replay`` -> scorer -> actioner (against a fake
Discord) while one thing goes wrong, then checks with counts: every accepted message has a
verdict, no platform action and no action result happened twice, the services are alive and
ready, and they stop promptly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from reliability.pipeline import MUTATING, ChaosStack, Trial

from schemas.topics import CHAT_MESSAGES, VERDICTS

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.timeout(900)]


def outage(server: str, seconds: float, *, kill: bool = False) -> Callable[[Trial], Any]:
    async def fault(trial: Trial) -> None:
        await asyncio.to_thread(trial.chaos.stop, server, kill=kill)
        await asyncio.sleep(seconds)
        await asyncio.to_thread(trial.chaos.up)

    return fault


async def run(
    name: str,
    fault_name: str,
    fault: Callable[[Trial], Any],
    chaos_stack: ChaosStack,
    tmp_path: Path,
    options: dict[str, Any],
    report: Callable[[dict[str, Any]], None],
    *,
    outage_s: float,
) -> Trial:
    trial = Trial(
        name,
        chaos_stack,
        tmp_path,
        messages=options["messages"],
        rate=options["rate"],
        outage_s=outage_s,
        fault_name=fault_name,
    )
    try:
        await trial.start()
        await trial.run(fault)
    finally:
        await trial.close()
    report(trial.outcome.row())
    return trial


@pytest.mark.parametrize("kill", [False, True], ids=["stopped", "killed"])
async def test_broker_restart_under_load_loses_nothing(
    chaos_stack: ChaosStack, tmp_path: Path, chaos_options: dict[str, Any], report: Any, kill: bool
) -> None:
    seconds = chaos_options["outage_s"]
    how = "killed (SIGKILL)" if kill else "stopped (SIGTERM)"
    trial = await run(
        "broker-kill" if kill else "broker-restart",
        f"Kafka {how} for {seconds:g} s mid-replay, then started on the same port",
        outage("kafka", seconds, kill=kill),
        chaos_stack,
        tmp_path,
        chaos_options,
        report,
        outage_s=seconds,
    )
    trial.assert_nothing_lost()
    # Back-off and log rate-limiting: an outage is a few lines a second, not thousands.
    for name, lines in trial.outcome.log_lines.items():
        assert lines < 200 + 20 * seconds, (name, lines)


async def test_postgres_outage_is_ridden_out(
    chaos_stack: ChaosStack, tmp_path: Path, chaos_options: dict[str, Any], report: Any
) -> None:
    seconds = chaos_options["outage_s"]
    trial = await run(
        "postgres-outage",
        f"PostgreSQL stopped for {seconds:g} s mid-replay",
        outage("postgres", seconds),
        chaos_stack,
        tmp_path,
        chaos_options,
        report,
        outage_s=seconds,
    )
    trial.assert_nothing_lost()


async def test_redis_outage_degrades_and_recovers(
    chaos_stack: ChaosStack, tmp_path: Path, chaos_options: dict[str, Any], report: Any
) -> None:
    seconds = chaos_options["outage_s"]
    trial = await run(
        "redis-outage",
        f"Redis killed for {seconds:g} s mid-replay",
        outage("redis", seconds, kill=True),
        chaos_stack,
        tmp_path,
        chaos_options,
        report,
        outage_s=seconds,
    )
    trial.assert_nothing_lost()
    assert trial.outcome.degraded_verdicts > 0, "scored without Redis, verdicts say degraded"


POISON_CHAT = 4


async def inject_poison(trial: Trial) -> None:
    """Records that crashed a service before: too large, all quotes, NUL in ids."""
    now = "2026-11-30T12:00:00+00:00"

    def chat(message_id: str, user: str, text: str) -> bytes:
        return json.dumps(
            {
                "message_id": message_id,
                "platform": "discord",
                "community": trial.guild,
                "channel": "5000",
                "user": user,
                "text": text,
                "sent_at": now,
                "received_at": now,
            }
        ).encode()

    await trial.inject_records(
        CHAT_MESSAGES.name,
        [
            (b"poison:big", chat(f"{trial.prefix}big", "77", "x" * 1_000_000)),
            (b"poison:quotes", b'"' * 300_000),
            (b"poison:nul-id", chat(f"{trial.prefix}nul\x00id", "78", "hello")),
            (b"poison:nul-user", chat(f"{trial.prefix}nuluser", "79\x00", "you idiot")),
        ],
    )
    verdict = {
        "message_id": f"{trial.prefix}forged\x00",
        "platform": "discord",
        "community": trial.guild,
        "channel": "5000",
        "user": "80\x00",
        "text": "x",
        "p_toxic": 0.99,
        "severity": "HIGH",
        "flagged": True,
        "model_version": "m",
        "sent_at": now,
        "received_at": now,
        "scored_at": now,
    }
    await trial.inject_records(VERDICTS.name, [(b"poison:verdict", json.dumps(verdict).encode())])


async def test_poison_records_become_dead_letters_and_the_stream_goes_on(
    chaos_stack: ChaosStack, tmp_path: Path, chaos_options: dict[str, Any], report: Any
) -> None:
    trial = await run(
        "poison-records",
        "1 MB text, 300 KB of quotes, NUL in message_id and user (chat), NUL in a verdict",
        inject_poison,
        chaos_stack,
        tmp_path,
        chaos_options,
        report,
        outage_s=0,
    )
    trial.assert_nothing_lost()
    assert trial.outcome.dead_letters >= POISON_CHAT + 1, trial.outcome


WEBHOOK_TOKEN = "chaos-webhook-token"
WEBHOOK_SECRET = "chaos-webhook-hmac-secret"


async def test_a_webhook_client_cannot_get_a_discord_user_punished(
    chaos_stack: ChaosStack, tmp_path: Path, report: Any
) -> None:
    """The attack of issue #10: a webhook credential claims a Discord user (and a moderator
    role), replays a signed request, and sends 100k-deep JSON. Nothing reaches Discord."""
    import time

    import aiohttp

    from core.net import free_port
    from core.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, webhook_signature

    trial = Trial(
        "forged-identity",
        chaos_stack,
        tmp_path,
        messages=0,
        rate=1,
        outage_s=0,
        fault_name="webhook items claiming a Discord user and a moderator role; a replayed "
        "signed request; 100k-deep JSON",
    )
    port = free_port()
    victim = "424242424242"
    try:
        await trial.start()
        webhook = trial._spawn(
            "webhook",
            "ingest",
            "webhook",
            WARDEN_INGEST__WEBHOOK_TOKEN=WEBHOOK_TOKEN,
            WARDEN_INGEST__WEBHOOK_HMAC_SECRET=WEBHOOK_SECRET,
            WARDEN_INGEST__WEBHOOK_PORT=str(port),
        )
        base = f"http://127.0.0.1:{port}"
        bearer = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 120
            while True:
                assert webhook.alive(), webhook.log.read_text()[-3000:]
                try:
                    async with http.get(base + "/healthz") as reply:
                        if reply.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, "the webhook did not start"
                await asyncio.sleep(0.5)

            async def post(body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
                headers = {**headers, "Content-Type": "application/json"}
                async with http.post(base + "/v1/messages", data=body, headers=headers) as reply:
                    return reply.status, await reply.json()

            toxic = "you are a worthless idiot, go kill yourself"
            forged = [
                {
                    "id": f"{trial.prefix}forged{i}",
                    "text": toxic,
                    "platform": "discord",
                    "community": trial.guild,
                    "channel": "5000",
                    "user": victim,
                    "user_roles": ["moderator"],
                }
                for i in range(6)
            ]
            status, reply = await post(json.dumps({"messages": forged}).encode(), bearer)
            assert status == 422 and reply["accepted"] == [], reply
            refused = len(reply["errors"])

            legit = [
                {"id": f"{trial.prefix}legit{i}", "text": toxic, "user": "u1"} for i in range(3)
            ]
            body = json.dumps({"messages": legit}).encode()
            stamp = str(int(time.time()))
            signed = {
                TIMESTAMP_HEADER: stamp,
                SIGNATURE_HEADER: webhook_signature(WEBHOOK_SECRET, stamp, body),
            }
            status, reply = await post(body, signed)
            assert status == 202, reply
            replayed, reply = await post(body, signed)
            assert replayed == 401 and reply["error"] == "replayed request", reply
            deep, reply = await post(b"[" * 100_000 + b"]" * 100_000, bearer)
            assert deep == 400, reply
            assert webhook.alive()

        await trial._count_verdicts({m["id"] for m in legit})
        await asyncio.sleep(3)  # time for the actioner to act, were it to act on anything
        touched = [r for r in trial.discord.requests if victim in r.path]
        await trial._finish()
        out = trial.outcome
        out.messages = len(legit)
        out.notes.append(
            f"{refused} of {len(forged)} forged items refused (422); replay {replayed}; "
            f"deep JSON {deep}; Discord calls for the victim: {len(touched)}"
        )
        report(out.row())
        assert refused == len(forged)
        assert out.lost == 0
        assert touched == [], touched
        assert not any(r.bucket in MUTATING for r in trial.discord.requests)
    finally:
        await trial.close()
