"""The local stack: Kafka (KRaft), Redis and PostgreSQL on loopback ports, without Docker.

``up`` installs what is missing (Debian packages through apt, the Kafka jars through Maven),
starts each server detached in its own session, waits until each answers, then applies the
migrations and creates the topics. ``down`` stops only the processes ``up`` started, found by
the pid files in the stack dir; ``status`` says what runs where.

Layout of the stack dir (``WARDEN_STACK__DIR``, default ``<repo>/.stack``)::

    kafka.pid  redis.pid  postgres.pid  install.log
    kafka/     server.properties, log4j.properties, kafka.log, kafka.out, data/
    redis/     appendonly data, redis.log
    postgres/  data/, run/ (unix socket), postgres.log

The Kafka jars live in ``<cache dir>/kafka-<version>/libs`` and are fetched once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import glob
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import string
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from pydantic import SecretStr

from core.errors import StackError
from core.net import ephemeral_port_range, is_ephemeral
from core.settings import KafkaSettings, Settings, StackSettings, env_name

logger = logging.getLogger(__name__)

DEPLOY_DIR = Path(__file__).resolve().parent
POM = DEPLOY_DIR / "pom.xml"
KAFKA_TEMPLATES = DEPLOY_DIR / "kafka"
HOST = "127.0.0.1"
SERVERS = ("kafka", "redis", "postgres")

KAFKA_HEAP = ("-Xms512m", "-Xmx512m")
PG_VERSION = "15"
# Where Debian's postgresql packages put the server binaries (not on PATH).
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
# Used only when running as root and the postgres user cannot reach the stack dir (see _pg_root).
PG_FALLBACK_ROOT = Path("/var/lib/chatwarden")

START_TIMEOUT_S = {"kafka": 90.0, "redis": 20.0, "postgres": 60.0}
STOP_TIMEOUT_S = 30.0

# Binary -> the Debian package that provides it.
PACKAGES = {
    "redis-server": "redis-server",
    "initdb": "postgresql",
    "kcat": "kcat",
    "java": "openjdk-17-jre-headless",
    "mvn": "maven",
}

# Children started by this process, so that they are reaped (no zombies) when a long-lived
# caller such as a test session runs both `up` and `down`.
_children: dict[int, subprocess.Popen[bytes]] = {}
_apt_updated = False


class ServerStatus(TypedDict):
    running: bool
    pid: int | None
    address: str
    log: str


# --------------------------------------------------------------------------------------------
# Paths


def kafka_version() -> str:
    """The Kafka version pinned in deploy/pom.xml (the single place that names it)."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if match is None:
        raise StackError(f"{POM} does not define <kafka.version>")
    return match.group(1).strip()


@dataclass(frozen=True)
class Paths:
    root: Path
    libs: Path
    pg_root: Path

    @classmethod
    def of(cls, stack: StackSettings) -> Paths:
        root = stack.dir.expanduser().resolve()
        libs = stack.cache_dir.expanduser().resolve() / f"kafka-{kafka_version()}" / "libs"
        return cls(root=root, libs=libs, pg_root=_pg_root(root))

    def pidfile(self, server: str) -> Path:
        return self.root / f"{server}.pid"

    @property
    def kafka(self) -> Path:
        return self.root / "kafka"

    @property
    def kafka_data(self) -> Path:
        return self.kafka / "data"

    @property
    def kafka_log(self) -> Path:
        return self.kafka / "kafka.log"

    @property
    def kafka_out(self) -> Path:
        return self.kafka / "kafka.out"

    @property
    def redis(self) -> Path:
        return self.root / "redis"

    @property
    def redis_log(self) -> Path:
        return self.redis / "redis.log"

    @property
    def pg_data(self) -> Path:
        return self.pg_root / "data"

    @property
    def pg_socket(self) -> Path:
        return self.pg_root / "run"

    @property
    def pg_log(self) -> Path:
        return self.pg_root / "postgres.log"

    @property
    def install_log(self) -> Path:
        return self.root / "install.log"

    def log(self, server: str) -> Path:
        return {"kafka": self.kafka_log, "redis": self.redis_log, "postgres": self.pg_log}[server]

    def workdir(self, server: str) -> Path:
        """The working directory of a server we started: how we recognise it by pid."""
        return {"kafka": self.kafka, "redis": self.redis, "postgres": self.pg_data}[server]


def _is_root() -> bool:
    return os.geteuid() == 0


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; as root, run its tools as the postgres OS user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if _is_root() else cmd


def _pg_root(root: Path) -> Path:
    """Where PostgreSQL keeps its data: ``<stack dir>/postgres`` when the server can reach it.

    As root the server runs as the ``postgres`` user, which cannot traverse a stack dir under a
    private folder such as /root (mode 700). Then the data goes to
    /var/lib/chatwarden/<hash of the stack dir>/postgres instead: still one per stack dir, and
    still kept across `down`/`up`. Without root, the server runs as the caller and can always
    reach the caller's stack dir.
    """
    preferred = root / "postgres"
    if not _is_root() or _postgres_can_enter(root):
        return preferred
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return PG_FALLBACK_ROOT / digest / "postgres"


def _postgres_can_enter(directory: Path) -> bool:
    # The closest existing ancestor decides, so this also works before the stack dir exists.
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        check = subprocess.run(
            ["runuser", "-u", "postgres", "--", "test", "-x", str(probe)],
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        return False
    return check.returncode == 0


# --------------------------------------------------------------------------------------------
# Processes


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _ours(pid: int, workdir: Path) -> bool:
    """Whether ``pid`` is a live process started by this stack (it runs in our workdir)."""
    if not _alive(pid):
        return False
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")).resolve() == workdir.resolve()
    except OSError:
        return False


def _running_pid(paths: Paths, server: str) -> int | None:
    """The pid of our live ``server``, or None (also when the pid file is stale)."""
    candidates = [_read_pid(paths.pidfile(server))]
    if server == "postgres":
        # pg_ctl forks the server; postmaster.pid knows it even if `up` did not record it.
        candidates.append(_read_pid(paths.pg_data / "postmaster.pid"))
    for pid in candidates:
        if pid is not None and _ours(pid, paths.workdir(server)):
            return pid
    return None


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


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
        if _port_open(port):
            raise StackError(
                f"{server}: {HOST}:{port} is already in use by a process this stack did not "
                f"start (no live pid in {paths.pidfile(server)}); stop it, or choose another "
                f"port with {env_name(('stack', field))}"
            )


def _spawn(cmd: list[str], cwd: Path, out: Path, append: bool = True) -> int:
    """Start ``cmd`` detached (own session, no terminal), its output going to ``out``."""
    with out.open("ab" if append else "wb") as sink:
        child = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children[child.pid] = child
    return child.pid


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return not _alive(pid)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        return ""
    return "\n    ".join(["", *text]) if text else ""


def _run(
    cmd: list[str], what: str, log: Path, cwd: Path | None = None, see: Path | None = None
) -> None:
    """Run a set-up step quietly; on failure raise StackError naming the step and its log.

    ``see`` is a log that explains the failure better than the command's own output.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as sink:
        sink.write(f"\n$ {' '.join(cmd)}\n".encode())
        sink.flush()
        try:
            result = subprocess.run(
                cmd,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                check=False,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise StackError(f"{what} failed: {exc.filename} not found") from exc
    if result.returncode != 0:
        logs = f"{see} and {log}" if see else str(log)
        raise StackError(f"{what} failed (exit {result.returncode}); see {logs}{_tail(see or log)}")


# --------------------------------------------------------------------------------------------
# Installation


def _pg_bindir() -> Path | None:
    """The PostgreSQL server binaries: version 15 if there, else the newest, else PATH."""
    candidates = sorted(
        (Path(p) for p in glob.glob(PG_BIN_GLOB) if (Path(p) / "initdb").exists()),
        key=lambda p: (p.parent.name == PG_VERSION, _version_key(p.parent.name)),
    )
    if candidates:
        return candidates[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name))


def _missing_binaries(paths: Paths) -> list[str]:
    missing = [b for b in ("redis-server", "kcat", "java") if shutil.which(b) is None]
    if _pg_bindir() is None:
        missing.append("initdb")
    if not _libs_complete(paths) and shutil.which("mvn") is None:
        missing.append("mvn")
    return missing


def _apt_install(packages: list[str], paths: Paths) -> None:
    global _apt_updated
    if _is_root():
        sudo: list[str] = []
    elif shutil.which("sudo"):
        sudo = ["sudo", "-n"]
    else:
        raise StackError(
            "missing packages and no root to install them; run: "
            f"apt-get install -y {' '.join(packages)}"
        )
    if shutil.which("apt-get") is None:
        raise StackError(f"missing packages and no apt-get; install: {' '.join(packages)}")
    # Through env(1): sudo drops the caller's environment.
    apt_get = [*sudo, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q"]
    if not _apt_updated:
        _run([*apt_get, "update"], "apt-get update", paths.install_log)
        _apt_updated = True
    _run(
        [*apt_get, "install", "-y", *packages],
        f"apt-get install {' '.join(packages)}",
        paths.install_log,
    )


def _libs_marker(paths: Paths) -> Path:
    return paths.libs / ".complete"


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def _libs_complete(paths: Paths) -> bool:
    try:
        return _libs_marker(paths).read_text().strip() == _pom_digest()
    except FileNotFoundError:
        return False


def _fetch_kafka_libs(paths: Paths) -> None:
    """Copy the broker's jars from Maven Central into the cache, once per pom.xml."""
    if _libs_complete(paths):
        return
    staging = paths.libs.with_name("libs.partial")
    shutil.rmtree(staging, ignore_errors=True)
    _run(
        [
            "mvn",
            "-B",
            "-q",
            "-Dstyle.color=never",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
        ],
        f"fetching the Kafka {kafka_version()} jars with Maven",
        paths.install_log,
    )
    shutil.rmtree(paths.libs, ignore_errors=True)
    staging.rename(paths.libs)
    _libs_marker(paths).write_text(_pom_digest() + "\n")


def install(paths: Paths) -> None:
    """Install whatever the stack needs and is missing; quiet when nothing is."""
    missing = _missing_binaries(paths)
    if missing:
        packages = sorted({PACKAGES[binary] for binary in missing})
        logger.info("installing %s", " ".join(packages))
        _apt_install(packages, paths)
        still = _missing_binaries(paths)
        if still:
            raise StackError(f"still missing after apt-get install: {', '.join(still)}")
    _fetch_kafka_libs(paths)


# --------------------------------------------------------------------------------------------
# Kafka


def _render(template: Path, target: Path, **values: object) -> None:
    text = string.Template(template.read_text()).substitute(
        {key: str(value) for key, value in values.items()}
    )
    target.write_text(text)


def _kafka_cluster_id() -> str:
    # Kafka's Uuid.toString(): 16 random bytes, URL-safe base64 without padding; like
    # `kafka-storage random-uuid`, never starting with "-" (it would read as an option).
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not value.startswith("-"):
            return value


def _start_kafka(stack: StackSettings, paths: Paths) -> int:
    java = shutil.which("java")
    if java is None:
        raise StackError("java not found on PATH")
    paths.kafka_data.mkdir(parents=True, exist_ok=True)
    config = paths.kafka / "server.properties"
    log4j = paths.kafka / "log4j.properties"
    _render(
        KAFKA_TEMPLATES / "server.properties",
        config,
        kafka_port=stack.kafka_port,
        controller_port=stack.kafka_controller_port,
        data_dir=paths.kafka_data,
    )
    _render(KAFKA_TEMPLATES / "log4j.properties", log4j, log_file=paths.kafka_log)
    classpath = f"{paths.libs}/*"
    jvm = [java, *KAFKA_HEAP, "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true"]
    logging_opts = [f"-Dlog4j.configuration=file:{log4j}", f"-Dkafka.logs.dir={paths.kafka}"]

    if not (paths.kafka_data / "meta.properties").exists():
        # Format once: a single-voter KRaft metadata log. Later starts reuse the data.
        _run(
            [
                java,
                *logging_opts,
                "-cp",
                classpath,
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                _kafka_cluster_id(),
                "--config",
                str(config),
            ],
            f"formatting Kafka storage in {paths.kafka_data}",
            paths.install_log,
        )
    return _spawn(
        [*jvm, *logging_opts, "-cp", classpath, "kafka.Kafka", str(config)],
        cwd=paths.kafka,
        # Only this run's JVM output, so that a start-up failure shows just its own error.
        out=paths.kafka_out,
        append=False,
    )


async def _kafka_answers(kafka: KafkaSettings) -> bool:
    from core.clients import kafka_admin

    admin = kafka_admin(kafka)
    try:
        await asyncio.wait_for(admin.start(), timeout=5)
        await asyncio.wait_for(admin.list_topics(), timeout=5)
        return True
    finally:
        await admin.close()


# --------------------------------------------------------------------------------------------
# Redis


def _start_redis(stack: StackSettings, paths: Paths) -> int:
    paths.redis.mkdir(parents=True, exist_ok=True)
    return _spawn(
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


def _redis_answers(stack: StackSettings) -> bool:
    import redis

    client = redis.Redis(host=HOST, port=stack.redis_port, socket_timeout=1)
    try:
        return bool(client.ping())
    finally:
        client.close()


# --------------------------------------------------------------------------------------------
# PostgreSQL


def _chown_to_postgres(*directories: Path) -> None:
    if not _is_root():
        return
    import pwd

    user = pwd.getpwnam("postgres")
    for directory in directories:
        os.chown(directory, user.pw_uid, user.pw_gid)


def _start_postgres(stack: StackSettings, paths: Paths) -> int | None:
    """initdb once, then start the server and wait until it accepts connections."""
    bindir = _pg_bindir()
    if bindir is None:
        raise StackError("PostgreSQL server binaries (initdb, pg_ctl) not found")
    for directory in (paths.pg_root, paths.pg_socket):
        directory.mkdir(parents=True, exist_ok=True)
    _chown_to_postgres(paths.pg_root, paths.pg_socket)
    pointer = paths.root / "postgres"
    if paths.pg_root != pointer and not pointer.is_symlink() and not pointer.exists():
        # The data had to live elsewhere (see _pg_root); leave a signpost in the stack dir.
        pointer.symlink_to(paths.pg_root, target_is_directory=True)
    if not (paths.pg_data / "PG_VERSION").exists():
        _run(
            _as_postgres(
                [
                    str(bindir / "initdb"),
                    "--pgdata",
                    str(paths.pg_data),
                    "--username",
                    "postgres",
                    "--auth",
                    "trust",
                    "--encoding",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                    "--no-instructions",
                ]
            ),
            f"initdb {paths.pg_data}",
            paths.install_log,
            cwd=paths.pg_root,
        )
    options = " ".join(
        [
            f"-c listen_addresses={HOST}",
            f"-p {stack.postgres_port}",
            f"-k {paths.pg_socket}",
            # A local, disposable database: speed over surviving a power cut. A clean
            # `stack down` still writes everything to disk.
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
        ]
    )
    _run(
        _as_postgres(
            [
                str(bindir / "pg_ctl"),
                "start",
                "--pgdata",
                str(paths.pg_data),
                "--log",
                str(paths.pg_log),
                # pg_ctl notices a server that dies during start-up and says so at once.
                "--wait",
                "--timeout",
                str(int(START_TIMEOUT_S["postgres"])),
                "--silent",
                "-o",
                options,
            ]
        ),
        "pg_ctl start",
        paths.install_log,
        cwd=paths.pg_root,
        see=paths.pg_log,
    )
    return _read_pid(paths.pg_data / "postmaster.pid")


def _pg_admin_dsn(stack: StackSettings) -> str:
    return f"host={HOST} port={stack.postgres_port} user=postgres dbname=postgres connect_timeout=2"


def _postgres_answers(stack: StackSettings) -> bool:
    import psycopg

    with psycopg.connect(_pg_admin_dsn(stack)) as conn:
        conn.execute("SELECT 1")
    return True


def _local_postgres_dsn(settings: Settings) -> tuple[str, str, str]:
    """(dsn, user, database) of the configured DSN, pointed at the local server."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    info = conninfo_to_dict(settings.postgres.dsn.get_secret_value())
    user = str(info.get("user") or "warden")
    dbname = str(info.get("dbname") or user)
    dsn = make_conninfo(host=HOST, port=settings.stack.postgres_port, user=user, dbname=dbname)
    return dsn, user, dbname


def _ensure_database(stack: StackSettings, user: str, dbname: str) -> None:
    import psycopg
    from psycopg import sql

    role, database = sql.Identifier(user), sql.Identifier(dbname)
    with psycopg.connect(_pg_admin_dsn(stack), autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
        if found is None:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
            logger.debug("created role %s", user)
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if found is None:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(database, role))
            logger.debug("created database %s", dbname)


def _stop_postgres(paths: Paths, pid: int) -> None:
    bindir = _pg_bindir()
    if bindir is not None:
        with contextlib.suppress(StackError):
            _run(
                _as_postgres(
                    [
                        str(bindir / "pg_ctl"),
                        "stop",
                        "--pgdata",
                        str(paths.pg_data),
                        "--mode",
                        "fast",
                        "--timeout",
                        str(int(STOP_TIMEOUT_S)),
                    ]
                ),
                "pg_ctl stop",
                paths.install_log,
                cwd=paths.pg_root,
            )
    _terminate(pid)


# --------------------------------------------------------------------------------------------
# up / down / status


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
    info = conninfo_to_dict(_local_postgres_dsn(settings)[0])
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
        update={"dsn": SecretStr(_local_postgres_dsn(settings)[0])}
    )
    return settings.model_copy(update={"kafka": kafka, "postgres": postgres})


def _wait_until(
    server: str, check: Callable[[], bool], paths: Paths, pid: int | None, timeout_s: float
) -> None:
    log = paths.log(server)
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        if pid is not None and not _alive(pid):
            paths.pidfile(server).unlink(missing_ok=True)
            jvm_out = _tail(paths.kafka_out) if server == "kafka" else ""
            extra = f"\n  and {paths.kafka_out}{jvm_out}" if jvm_out else ""
            raise StackError(f"{server} exited during start-up; see {log}{_tail(log)}{extra}")
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"; reported below
            last_error = exc
        time.sleep(0.25)
    raise StackError(
        f"{server} did not answer within {timeout_s:.0f} s ({last_error!r}); see {log}{_tail(log)}"
    )


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
            pid = _running_pid(paths, server)
            if pid is not None:
                logger.debug("%s already running (pid %d)", server, pid)
                pids[server] = pid
                continue
            paths.pidfile(server).unlink(missing_ok=True)
            _refuse_foreign(stack, paths, server)
            if server == "kafka":
                pids[server] = _start_kafka(stack, paths)
            elif server == "redis":
                pids[server] = _start_redis(stack, paths)
            else:
                # Kafka and Redis are starting meanwhile; pg_ctl waits until it is ready.
                pids[server] = _start_postgres(stack, paths)
            if pids[server] is not None:
                paths.pidfile(server).write_text(f"{pids[server]}\n")
            logger.debug("started %s", server)

        local = local_settings(settings)
        _wait_until(
            "postgres",
            lambda: _postgres_answers(stack),
            paths,
            pids["postgres"],
            START_TIMEOUT_S["postgres"],
        )
        _wait_until(
            "redis", lambda: _redis_answers(stack), paths, pids["redis"], START_TIMEOUT_S["redis"]
        )
        _wait_until(
            "kafka",
            # Probe the port first: aiokafka logs an ERROR for every refused connection.
            lambda: _port_open(stack.kafka_port) and asyncio.run(_kafka_answers(local.kafka)),
            paths,
            pids["kafka"],
            START_TIMEOUT_S["kafka"],
        )

        from core.topics import create_topics
        from deploy import migrations

        _, user, dbname = _local_postgres_dsn(settings)
        _ensure_database(stack, user, dbname)
        applied = migrations.apply(local)
        if applied:
            logger.info("applied migrations %s", ", ".join(applied))
        created = asyncio.run(create_topics(local.kafka))
        if created:
            logger.info("created topics %s", ", ".join(created))


def _terminate(pid: int) -> None:
    """SIGTERM, a grace period, then SIGKILL."""
    if not _alive(pid):
        return
    _signal(pid, signal.SIGTERM)
    if not _wait_gone(pid, STOP_TIMEOUT_S):
        logger.warning("pid %d ignored SIGTERM for %.0f s; killing it", pid, STOP_TIMEOUT_S)
        _signal(pid, signal.SIGKILL)
        _wait_gone(pid, 5)


def down(settings: Settings) -> None:
    """Stop the servers this stack started (by their pid files) and remove the pid files."""
    paths = Paths.of(settings.stack)
    if not paths.root.exists():
        return
    with _locked(paths):
        running = {server: _running_pid(paths, server) for server in SERVERS}
        # Ask everyone first, then wait: Kafka's controlled shutdown takes a few seconds.
        for server in ("kafka", "redis"):
            pid = running[server]
            if pid is not None:
                _signal(pid, signal.SIGTERM)
        pg_pid = running["postgres"]
        if pg_pid is not None:
            _stop_postgres(paths, pg_pid)
        for server in ("kafka", "redis"):
            pid = running[server]
            if pid is not None:
                _terminate(pid)
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
        pid = _running_pid(paths, server)
        result[server] = ServerStatus(
            running=pid is not None, pid=pid, address=where[server], log=str(paths.log(server))
        )
    return result
