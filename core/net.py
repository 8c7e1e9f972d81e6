"""Small network helpers shared by the local stack, the benchmark and the tests.

Servers we start locally listen below the kernel's ephemeral port range. Inside it, a client
that reconnects in a loop to a server that is down may be handed the server's own port as its
source port and connect to itself (TCP self-connect, "simultaneous open"); the restarted server
then finds its port taken and cannot bind.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import Sequence
from pathlib import Path

PORT_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Linux's default, for systems without /proc (the check is then only as good as this guess).
DEFAULT_EPHEMERAL = (32768, 60999)
# Where free_port() looks: above the well-known and most registered service ports, below the
# default ephemeral range.
FREE_PORT_RANGE = (20000, 32000)


def ephemeral_port_range(path: Path = PORT_RANGE_FILE) -> tuple[int, int]:
    """The kernel's ephemeral (source) port range, inclusive: net.ipv4.ip_local_port_range."""
    try:
        low, high = (int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL
    return low, high


def is_ephemeral(port: int, ephemeral: tuple[int, int] | None = None) -> bool:
    low, high = ephemeral or ephemeral_port_range()
    return low <= port <= high


def free_port(host: str = "127.0.0.1", *, attempts: int = 200) -> int:
    """A TCP port nothing uses right now, outside the ephemeral range (for servers started next).

    Random rather than the kernel's choice (bind to port 0), which always comes from the
    ephemeral range; random also keeps parallel test workers from picking the same port.
    """
    ephemeral = ephemeral_port_range()
    low, high = FREE_PORT_RANGE
    candidates = [p for p in range(low, high + 1) if not is_ephemeral(p, ephemeral)]
    if not candidates:
        # An unusual kernel setting covers all of FREE_PORT_RANGE: look below it instead.
        candidates = [p for p in range(10000, low) if not is_ephemeral(p, ephemeral)]
    rng = random.SystemRandom()
    for port in rng.sample(candidates, min(attempts, len(candidates))):
        with socket.socket() as sock:
            try:
                # No SO_REUSEADDR: a port with connections lingering in TIME_WAIT counts as used.
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(
        f"no free TCP port on {host} in {low}-{high} outside the ephemeral range "
        f"{ephemeral[0]}-{ephemeral[1]} after {attempts} tries"
    )


async def reachable(hosts: Sequence[str], timeout_s: float = 1.0) -> bool:
    """True when one of ``hosts`` (host:port) accepts a TCP connection.

    A readiness probe for the broker: aiokafka hides a broker that is away behind its own
    retries, and an idle service sends nothing that could fail.
    """
    for host in hosts:
        name, _, port = host.rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(name, int(port)), timeout_s)
        except (OSError, TimeoutError):
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False
