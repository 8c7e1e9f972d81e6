"""The local stack: Kafka (KRaft), Redis and PostgreSQL on loopback ports, without Docker.

``up`` installs what is missing (Debian packages through apt, the Kafka jars through Maven),
starts each server detached in its own session, waits until each answers, then applies the
migrations and creates the topics. ``down`` stops only the processes ``up`` started, found by
the pid files in the stack dir; ``status`` says what runs where.

The parts, each a module of this package::

    paths            the stack dir's layout (``Paths``), the pinned Kafka version
    processes        spawn detached, recognise our pids, signal, terminate, wait until ready
    install          apt packages and the Kafka jars from Maven
    kafka_server     redis_server     postgres_server: start each server, ask whether it answers
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import signal
from collections.abc import Iterator
from typing import TypedDict

from pydantic import SecretStr

from core.errors import StackError
from core.net import ephemeral_port_range, is_ephemeral
from core.settings import Settings, StackSettings, env_name
from deploy.stack import kafka_server, postgres_server, redis_server
from deploy.stack.install import install
from deploy.stack.paths import HOST, SERVERS, Paths, kafka_version
from deploy.stack.processes import port_open, running_pid, send_signal, terminate, wait_until

__all__ = [
    "HOST",
    "SERVERS",
    "Paths",
    "ServerStatus",
    "addresses",
    "down",
    "kafka_version",
    "local_settings",
    "refuse_ephemeral_ports",
    "status",
    "up",
]

logger = logging.getLogger(__name__)


class ServerStatus(TypedDict):
    running: bool
    pid: int | None
    address: str
    log: str


def _ports(stack: StackSettings, server: str) -> dict[str, int]:
    if server == "kafka":
        return {
            "kafka_port": stack.kafka_port,
            "kafka_controller_port": stack.kafka_controller_port,
        }
    return {f"{server}_port": getattr(stack, f"{server}_port")}


def refuse_ephemeral_ports(stack: StackSettings, ephemeral: tuple[int, int] | None = None) -> None:
    """Refuse a configured port inside the kernel's ephemeral range (see core.net).

    There a client retrying a server that is down can connect to itself on the server's port,
    and the restarted server then fails to bind: one broker restart takes the stack down.
    """
    low, high = ephemeral or ephemeral_port_range()
    for server in SERVERS:
        for field, port in _ports(stack, server).items():
            if is_ephemeral(port, (low, high)):
                raise StackError(
                    f"{server}: port {port} ({env_name(('stack', field))}) is inside the "
                    f"kernel's ephemeral port range {low}-{high} "
                    f"(net.ipv4.ip_local_port_range), where a reconnecting client can take it "
                    f"as its own source port and keep the server from binding after a restart; "
                    f"choose a port below {low} or above {high}"
                )


def _refuse_foreign(stack: StackSettings, paths: Paths, server: str) -> None:
    """A port that answers although we run nothing there belongs to someone else."""
    for field, port in _ports(stack, server).items():
        if port_open(port):
            raise StackError(
                f"{server}: {HOST}:{port} is already in use by a process this stack did not "
                f"start (no live pid in {paths.pidfile(server)}); stop it, or choose another "
                f"port with {env_name(('stack', field))}"
            )


@contextlib.contextmanager
def _locked(paths: Paths) -> Iterator[None]:
    """One `up` or `down` at a time per stack dir (parallel test workers may race)."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with (paths.root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def addresses(settings: Settings) -> dict[str, str]:
    """How a client reaches each local server."""
    from psycopg.conninfo import conninfo_to_dict

    stack = settings.stack
    info = conninfo_to_dict(postgres_server.local_dsn(settings)[0])
    return {
        "kafka": f"{HOST}:{stack.kafka_port}",
        "redis": f"redis://{HOST}:{stack.redis_port}/0",
        "postgres": f"postgresql://{info['user']}@{HOST}:{stack.postgres_port}/{info['dbname']}",
    }


def local_settings(settings: Settings) -> Settings:
    """``settings`` with Kafka and Postgres pointed at this stack's servers."""
    stack = settings.stack
    kafka = settings.kafka.model_copy(
        update={
            "bootstrap_servers": f"{HOST}:{stack.kafka_port}",
            "security_protocol": "PLAINTEXT",
            "sasl_mechanism": None,
        }
    )
    postgres = settings.postgres.model_copy(
        update={"dsn": SecretStr(postgres_server.local_dsn(settings)[0])}
    )
    return settings.model_copy(update={"kafka": kafka, "postgres": postgres})


def up(settings: Settings) -> None:
    """Install, start and prepare the local Kafka, Redis and PostgreSQL; harmless when running.

    Servers already running from this stack dir are left alone; a port taken by anything else,
    or inside the kernel's ephemeral port range, is an error. Then the migrations run and the
    topics are created.
    """
    stack = settings.stack
    refuse_ephemeral_ports(stack)
    # Before Paths.of: whether the postgres user can enter the stack dir decides where
    # PostgreSQL's data goes, so the dir must exist with its final permissions.
    stack.dir.expanduser().resolve().mkdir(parents=True, exist_ok=True)
    paths = Paths.of(stack)
    with _locked(paths):
        install(paths)
        pids: dict[str, int | None] = {}
        for server in SERVERS:
            pid = running_pid(paths, server)
            if pid is not None:
                logger.debug("%s already running (pid %d)", server, pid)
                pids[server] = pid
                continue
            paths.pidfile(server).unlink(missing_ok=True)
            _refuse_foreign(stack, paths, server)
            if server == "kafka":
                pids[server] = kafka_server.start(stack, paths)
            elif server == "redis":
                pids[server] = redis_server.start(stack, paths)
            else:
                # Kafka and Redis are starting meanwhile; pg_ctl waits until it is ready.
                pids[server] = postgres_server.start(stack, paths)
            if pids[server] is not None:
                paths.pidfile(server).write_text(f"{pids[server]}\n")
            logger.debug("started %s", server)

        local = local_settings(settings)
        wait_until(
            "postgres",
            lambda: postgres_server.answers(stack),
            paths,
            pids["postgres"],
            postgres_server.START_TIMEOUT_S,
        )
        wait_until(
            "redis",
            lambda: redis_server.answers(stack),
            paths,
            pids["redis"],
            redis_server.START_TIMEOUT_S,
        )
        wait_until(
            "kafka",
            # Probe the port first: aiokafka logs an ERROR for every refused connection.
            lambda: port_open(stack.kafka_port) and asyncio.run(kafka_server.answers(local.kafka)),
            paths,
            pids["kafka"],
            kafka_server.START_TIMEOUT_S,
        )

        from core.topic_admin import create_topics
        from deploy import migrations

        _, user, dbname = postgres_server.local_dsn(settings)
        postgres_server.ensure_database(stack, user, dbname)
        applied = migrations.apply(local)
        if applied:
            logger.info("applied migrations %s", ", ".join(applied))
        created = asyncio.run(create_topics(local.kafka))
        if created:
            logger.info("created topics %s", ", ".join(created))


def down(settings: Settings) -> None:
    """Stop the servers this stack started (by their pid files) and remove the pid files."""
    paths = Paths.of(settings.stack)
    if not paths.root.exists():
        return
    with _locked(paths):
        running = {server: running_pid(paths, server) for server in SERVERS}
        # Ask everyone first, then wait: Kafka's controlled shutdown takes a few seconds.
        for server in ("kafka", "redis"):
            pid = running[server]
            if pid is not None:
                send_signal(pid, signal.SIGTERM)
        pg_pid = running["postgres"]
        if pg_pid is not None:
            postgres_server.stop(paths, pg_pid)
        for server in ("kafka", "redis"):
            pid = running[server]
            if pid is not None:
                terminate(pid)
        for server in SERVERS:
            if running[server] is not None:
                logger.debug("stopped %s (pid %d)", server, running[server])
            paths.pidfile(server).unlink(missing_ok=True)


def status(settings: Settings) -> dict[str, ServerStatus]:
    """Per server: whether our process runs, its pid, its address and its log file."""
    paths = Paths.of(settings.stack)
    where = addresses(settings)
    result: dict[str, ServerStatus] = {}
    for server in SERVERS:
        pid = running_pid(paths, server)
        result[server] = ServerStatus(
            running=pid is not None, pid=pid, address=where[server], log=str(paths.log(server))
        )
    return result
