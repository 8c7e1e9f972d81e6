"""Ports for servers we start: never inside the kernel's ephemeral range."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from core.net import ephemeral_port_range, free_port, is_ephemeral, reachable
from core.settings import StackSettings


def test_free_ports_are_outside_the_ephemeral_range_and_bindable() -> None:
    low, high = ephemeral_port_range()
    ports = {free_port() for _ in range(50)}
    assert all(not low <= port <= high for port in ports)
    # Random, so that parallel test workers rarely collide.
    assert len(ports) > 40
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports.pop()))


def test_a_port_in_use_is_not_handed_out() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        busy = taken.getsockname()[1]
        assert all(free_port() != busy for _ in range(300))


def test_the_range_is_read_from_the_kernel(tmp_path: Path) -> None:
    sysctl = tmp_path / "ip_local_port_range"
    sysctl.write_text("1024\t65000\n")
    assert ephemeral_port_range(sysctl) == (1024, 65000)
    assert ephemeral_port_range(tmp_path / "missing") == (32768, 60999)
    assert is_ephemeral(39092, (32768, 60999))
    assert not is_ephemeral(29092, (32768, 60999))


def test_the_local_stack_defaults_are_outside_the_range() -> None:
    stack = StackSettings()
    low, high = ephemeral_port_range()
    for port in (
        stack.kafka_port,
        stack.kafka_controller_port,
        stack.redis_port,
        stack.postgres_port,
    ):
        assert not low <= port <= high, port


async def test_the_broker_probe_sees_a_listener_come_and_go() -> None:
    port = free_port()
    hosts = [f"127.0.0.1:{port}"]
    assert not await reachable(hosts)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    try:
        assert await reachable([f"127.0.0.1:{free_port()}", *hosts])  # any host will do
    finally:
        server.close()
        await server.wait_closed()
    assert not await reachable(hosts)
