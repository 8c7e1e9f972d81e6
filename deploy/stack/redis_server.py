"""The local Redis: ``redis-server`` in the foreground of its own session, append-only data."""

from __future__ import annotations

from core.settings import StackSettings
from deploy.stack.paths import HOST, Paths
from deploy.stack.processes import spawn

START_TIMEOUT_S = 20.0


def start(stack: StackSettings, paths: Paths) -> int:
    """Start the server detached on the configured port; its pid."""
    paths.redis.mkdir(parents=True, exist_ok=True)
    return spawn(
        [
            "redis-server",
            "--bind",
            HOST,
            "--port",
            str(stack.redis_port),
            "--dir",
            str(paths.redis),
            "--appendonly",
            "yes",
            "--daemonize",
            "no",
            "--logfile",
            str(paths.redis_log),
        ],
        cwd=paths.redis,
        out=paths.redis_log,
    )


def answers(stack: StackSettings) -> bool:
    """Whether the server answers PING."""
    import redis

    client = redis.Redis(host=HOST, port=stack.redis_port, socket_timeout=1)
    try:
        return bool(client.ping())
    finally:
        client.close()
