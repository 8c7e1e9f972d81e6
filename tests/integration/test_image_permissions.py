"""The image's services start as its unprivileged user, with its paths, on the local stack.

No Docker engine runs here, so this test recreates what the container gives a service and runs
the image's entrypoint (``warden`` + the compose service's command) under it:

- the user: the Dockerfile's numeric ``USER`` (uid 10001), no supplementary groups;
- the environment: the Dockerfile's ``ENV`` and the compose service's ``environment``, with the
  servers swapped for the local stack's (plaintext Kafka: no SASL) and every absolute path
  moved under a scratch root owned by root;
- writable paths: only the service's volumes and tmpfs mounts (created there, owned by the
  uid); HOME (``/nonexistent``), the code (this checkout, like /app) and everything else are
  not writable by the uid, as under ``read_only: true``.

The one liberty: the virtualenv lives under root's home (mode 700) here, so the process keeps
CAP_DAC_READ_SEARCH, which lets it read and search anything (the image's site-packages are
world-readable) and writes nothing: a write outside the mounts still fails with EACCES. The
healthcheck is the compose service's own ``test`` command, run as the same user.

What it caught: the scorer wrote its int8 encoder under ``~/.cache`` whatever its settings
said (load_model ignored the cache setting) and faust's data under the checkout's ``.stack``,
so in the image it crash-looped with PermissionError.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploykit import IMAGE_DIR, compose, image_env, image_user, interpolate, mount_targets
from deploykit import service_environment as compose_env
from kit import REPO, service_env

from core.net import free_port
from core.settings import Settings

SETPRIV = shutil.which("setpriv")
CONNECTIONS = ("WARDEN_KAFKA__", "WARDEN_REDIS__", "WARDEN_POSTGRES__")
READY_TIMEOUT_S = 90.0

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or SETPRIV is None,
    reason="switching to the image's uid needs root and setpriv (util-linux)",
)


class Container:
    """One compose service's start-up, as the image's user, with its paths under ``root``."""

    def __init__(self, name: str, root: Path, settings: Settings, log: Path) -> None:
        self.name = name
        self.root = root
        self.service: dict[str, Any] = compose()["services"][name]
        self.uid, self.gid = image_user()
        self.port = free_port()
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.env = self._environment(settings)

    def path(self, inside: str) -> Path:
        """Where a path of the container lies here."""
        if inside == IMAGE_DIR or inside.startswith(IMAGE_DIR + "/"):
            return REPO / inside[len(IMAGE_DIR) :].lstrip("/")
        return self.root / inside.lstrip("/")

    def _environment(self, settings: Settings) -> dict[str, str]:
        env: dict[str, str] = {}
        for name, value in [*image_env().items(), *compose_env(self.service).items()]:
            if value is None or name.startswith(CONNECTIONS):
                continue  # unset pass-through / the servers: the local stack's below
            value = interpolate(value)
            env[name] = str(self.path(value)) if value.startswith("/") else value
        stack = service_env(settings)
        env.update({k: v for k, v in stack.items() if k.startswith(CONNECTIONS)})
        env.update(
            {
                "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
                "WARDEN_KAFKA__TOPIC_SUFFIX": settings.kafka.topic_suffix,
                "WARDEN_METRICS__HOST": "127.0.0.1",
                f"WARDEN_METRICS__{self.metrics_name.upper()}_PORT": str(self.port),
                # The tmpfs /tmp of the container (tempfile, torch's compile cache).
                "TMPDIR": str(self.path("/tmp")),
            }
        )
        return env

    @property
    def metrics_name(self) -> str:
        return str(self.service["healthcheck"]["test"][-1])

    def prepare(self) -> list[Path]:
        """The scratch root (root's, not writable by the uid) and the service's mounts."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        mounts = [self.path(target) for target in mount_targets(self.service)]
        for mount in mounts:
            mount.mkdir(parents=True, exist_ok=True)
            os.chown(mount, self.uid, self.gid)
        return mounts

    def as_user(self, argv: list[str]) -> list[str]:
        assert SETPRIV is not None
        return [
            SETPRIV,
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--clear-groups",
            "--inh-caps=+dac_read_search",
            "--ambient-caps=+dac_read_search",
            "--",
            *argv,
        ]

    def entrypoint(self) -> list[str]:
        """``ENTRYPOINT ["warden"]`` + the service's command, with the virtualenv's warden."""
        command = [interpolate(str(part)) for part in self.service["command"]]
        command = [str(self.path(p)) if p.startswith(IMAGE_DIR + "/") else p for p in command]
        return [str(Path(sys.executable).parent / "warden"), *command]

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.as_user(self.entrypoint()),
                env=self.env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def healthy(self) -> subprocess.CompletedProcess[str]:
        """The compose healthcheck's ``test`` (CMD form), as the same user."""
        test = self.service["healthcheck"]["test"]
        assert test[0] == "CMD", test
        argv = [str(Path(sys.executable).parent / test[1]), *test[2:]]
        return subprocess.run(
            self.as_user(argv),
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def containers(
    migrated: Settings, settings: Settings, tmp_path: Path
) -> Iterator[dict[str, Container]]:
    root = tmp_path / "image"
    made = {
        name: Container(name, root / name, settings, tmp_path / f"{name}.log")
        for name in ("scorer", "actioner")
    }
    yield made
    for container in made.values():
        container.stop()


def wait_healthy(containers: list[Container], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    waiting = list(containers)
    while waiting:
        for container in list(waiting):
            assert container.process is not None
            if container.process.poll() is not None:
                pytest.fail(
                    f"{container.name} exited with {container.process.returncode} as uid "
                    f"{container.uid}:\n{container.log_tail()}"
                )
            if container.healthy().returncode == 0:
                waiting.remove(container)
        if waiting and time.monotonic() > deadline:
            why = {c.name: c.healthy().stderr.strip() for c in waiting}
            pytest.fail(f"not healthy after {timeout_s:.0f} s: {why}\n{waiting[0].log_tail()}")
        time.sleep(0.5)


def test_scorer_and_actioner_get_ready_as_the_image_user(
    containers: dict[str, Container],
) -> None:
    scorer, actioner = containers["scorer"], containers["actioner"]
    scorer_mounts = scorer.prepare()
    actioner.prepare()
    # As the image: HOME does not exist and the uid can create nothing outside the mounts.
    assert not scorer.path(image_env()["HOME"]).exists()
    for container in (scorer, actioner):
        container.start()
    wait_healthy([scorer, actioner], READY_TIMEOUT_S)

    # The int8 encoder was built into the shared model-cache volume, whole and under its
    # final name (no temporary file left), and faust's state went to its tmpfs.
    cache = Path(scorer.env["WARDEN_MODEL__CACHE_DIR"])
    assert cache in scorer_mounts
    built = list(cache.glob("encoders/*/model.*qint8*.onnx"))
    assert built, f"no int8 encoder in {cache}: {sorted(p.name for p in cache.rglob('*'))}"
    assert not list(cache.rglob("*.tmp*")), sorted(cache.rglob("*.tmp*"))
    assert all(path.stat().st_uid == scorer.uid for path in built)
    assert any(Path(scorer.env["WARDEN_SCORER__DATA_DIR"]).iterdir())
    for container in (scorer, actioner):
        assert "PermissionError" not in container.log_tail()
        assert container.stop() == 0, container.log_tail()


def test_a_cache_volume_the_user_cannot_write_fails_at_start_naming_it(
    containers: dict[str, Container],
) -> None:
    scorer = containers["scorer"]
    scorer.prepare()
    cache = Path(scorer.env["WARDEN_MODEL__CACHE_DIR"])
    os.chown(cache, 0, 0)  # a volume that was created by (and for) root
    scorer.start()
    assert scorer.process is not None
    code = scorer.process.wait(timeout=60)
    log = scorer.log_tail()
    assert code == 2, log
    assert f"WARDEN_MODEL__CACHE_DIR: cannot write to {cache}" in log
    assert "Traceback" not in log
