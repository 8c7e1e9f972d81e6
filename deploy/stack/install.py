"""Installing what the stack needs: Debian packages through apt, the Kafka jars through Maven.

Quiet when nothing is missing; every command's output goes to ``<stack dir>/install.log``.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import re
import shutil
from pathlib import Path

from core.errors import StackError
from deploy.stack.paths import POM, Paths, is_root, kafka_version
from deploy.stack.processes import run_step

logger = logging.getLogger(__name__)

PG_VERSION = "15"
# Where Debian's postgresql packages put the server binaries (not on PATH).
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"

# Binary -> the Debian package that provides it.
PACKAGES = {
    "redis-server": "redis-server",
    "initdb": "postgresql",
    "kcat": "kcat",
    "java": "openjdk-17-jre-headless",
    "mvn": "maven",
    # The review queue's pages are tested in a real headless browser (selenium drives it).
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
    # `make test` checks the alert rules (promtool) and the Alertmanager config (amtool).
    "promtool": "prometheus",
    "amtool": "prometheus-alertmanager",
}

_apt_updated = False


def pg_bindir() -> Path | None:
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
    missing = [
        b
        for b in ("redis-server", "kcat", "java", "chromium", "chromedriver", "promtool", "amtool")
        if shutil.which(b) is None
    ]
    if pg_bindir() is None:
        missing.append("initdb")
    if not _libs_complete(paths) and shutil.which("mvn") is None:
        missing.append("mvn")
    return missing


def _apt_install(packages: list[str], paths: Paths) -> None:
    global _apt_updated
    if is_root():
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
        run_step([*apt_get, "update"], "apt-get update", paths.install_log)
        _apt_updated = True
    run_step(
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
    run_step(
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
