"""Where the local stack keeps its files, and the names every part of it shares.

Layout of the stack dir (``WARDEN_STACK__DIR``, default ``<repo>/.stack``)::

    kafka.pid  redis.pid  postgres.pid  install.log
    kafka/     server.properties, log4j.properties, kafka.log, kafka.out, data/
    redis/     appendonly data, redis.log
    postgres/  data/, run/ (unix socket), postgres.log

The Kafka jars live in ``<cache dir>/kafka-<version>/libs`` and are fetched once.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from core.errors import StackError
from core.settings import StackSettings

DEPLOY_DIR = Path(__file__).resolve().parent.parent
POM = DEPLOY_DIR / "pom.xml"
HOST = "127.0.0.1"
SERVERS = ("kafka", "redis", "postgres")

# Used only when running as root and the postgres user cannot reach the stack dir (see pg_root).
PG_FALLBACK_ROOT = Path("/var/lib/chatwarden")


def kafka_version() -> str:
    """The Kafka version pinned in deploy/pom.xml (the single place that names it)."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if match is None:
        raise StackError(f"{POM} does not define <kafka.version>")
    return match.group(1).strip()


@dataclass(frozen=True)
class Paths:
    """The files of one stack dir: pid files, per-server directories and logs."""

    root: Path
    libs: Path
    pg_root: Path

    @classmethod
    def of(cls, stack: StackSettings) -> Paths:
        """The paths of the stack dir that ``stack`` configures."""
        root = stack.dir.expanduser().resolve()
        libs = stack.cache_dir.expanduser().resolve() / f"kafka-{kafka_version()}" / "libs"
        return cls(root=root, libs=libs, pg_root=pg_root(root))

    def pidfile(self, server: str) -> Path:
        """Where ``up`` records the pid of ``server``."""
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
        """The log file of ``server``."""
        return {"kafka": self.kafka_log, "redis": self.redis_log, "postgres": self.pg_log}[server]

    def workdir(self, server: str) -> Path:
        """The working directory of a server we started: how we recognise it by pid."""
        return {"kafka": self.kafka, "redis": self.redis, "postgres": self.pg_data}[server]


def is_root() -> bool:
    """Whether this process runs as root (then PostgreSQL runs as the postgres OS user)."""
    return os.geteuid() == 0


def pg_root(root: Path) -> Path:
    """Where PostgreSQL keeps its data: ``<stack dir>/postgres`` when the server can reach it.

    As root the server runs as the ``postgres`` user, which cannot traverse a stack dir under a
    private folder such as /root (mode 700). Then the data goes to
    /var/lib/chatwarden/<hash of the stack dir>/postgres instead: still one per stack dir, and
    still kept across `down`/`up`. Without root, the server runs as the caller and can always
    reach the caller's stack dir.
    """
    preferred = root / "postgres"
    if not is_root() or _postgres_can_enter(root):
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
