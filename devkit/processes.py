"""A ChatWarden service as a child process: spawn it, wait until it is ready, stop it.

``warden run``, ``warden bench`` and the tests each start ``python -m warden <service>`` the way
production does (its own process, configured only through the environment) and need the same
three things: start it with its output in a log file, know when it is ready (its metrics
endpoint says ``warden_ready{service="..."} 1.0``, which the service sets once it has joined
its consumer group and reached its dependencies) and stop it, with its exit code.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Self

from core.errors import WardenError

__all__ = ["ServiceFailed", "ServiceNotReady", "ServiceProcess", "stop_all", "wait_ready"]


class ServiceFailed(WardenError):
    """A service process exited before it was asked to, or did not become ready in time."""


class ServiceNotReady(ServiceFailed):
    """Still running, but not ready when the caller stopped waiting."""


class ServiceProcess:
    """One ``python -m warden <args>`` process and its log file.

    ``metrics_port`` is where the service serves Prometheus metrics (the caller chooses it
    through the service's ``WARDEN_METRICS__*_PORT``); ``ready_label`` is the ``service`` label
    of its ``warden_ready`` gauge, by default ``name``.
    """

    def __init__(
        self,
        name: str,
        process: subprocess.Popen[bytes],
        log: Path,
        *,
        metrics_port: int | None = None,
        ready_label: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.name = name
        self.process = process
        self.log = log
        self.metrics_port = metrics_port
        self.ready_label = ready_label or name
        self.host = host

    @classmethod
    def spawn(
        cls,
        *args: str,
        env: Mapping[str, str],
        log: Path,
        name: str | None = None,
        cwd: Path | None = None,
        append_log: bool = False,
        new_session: bool = False,
        metrics_port: int | None = None,
        ready_label: str | None = None,
        host: str = "127.0.0.1",
    ) -> Self:
        """Start ``python -m warden *args`` with exactly ``env``, stdout and stderr to ``log``.

        ``new_session`` puts it in its own session, so that a Ctrl-C in the caller's terminal
        reaches only the caller, which then stops it in order.
        """
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab" if append_log else "wb") as out:
            process = subprocess.Popen(  # noqa: S603 - our own entry point
                [sys.executable, "-m", "warden", *args],
                env=dict(env),
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=new_session,
            )
        return cls(
            name or args[0],
            process,
            log,
            metrics_port=metrics_port,
            ready_label=ready_label,
            host=host,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        """The exit code, or None while it runs."""
        return self.process.poll()

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        """The end of its log (what a failure report shows)."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def metrics(self, timeout_s: float = 2.0) -> str:
        """Its Prometheus metrics page; raises ``OSError`` when it does not answer."""
        if self.metrics_port is None:
            raise ValueError(f"{self.name}: no metrics port given")
        url = f"http://{self.host}:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            return str(reply.read().decode())

    def ready(self) -> bool:
        """Whether its metrics endpoint says ``warden_ready{service=...} 1.0`` right now."""
        try:
            text = self.metrics()
        except OSError:
            return False
        return f'warden_ready{{service="{self.ready_label}"}} 1.0' in text

    def check_alive(self) -> None:
        """Raise :class:`ServiceFailed`, with the end of its log, if it has exited."""
        code = self.process.poll()
        if code is not None:
            raise ServiceFailed(
                f"{self.name} (pid {self.pid}) exited with {code}; log {self.log}:\n"
                + self.log_tail()
            )

    async def wait_ready(self, timeout_s: float, poll_s: float = 0.5) -> None:
        """Return once it is ready; fail fast if it exits, or after ``timeout_s``."""
        await wait_ready([self], timeout_s, poll_s)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        """Send ``sig`` (if it still runs), wait up to ``timeout_s``, then kill; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self._wait_or_kill(timeout_s)

    def _wait_or_kill(self, timeout_s: float) -> int:
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.process.returncode


async def wait_ready(
    services: Iterable[ServiceProcess], timeout_s: float, poll_s: float = 0.5
) -> None:
    """Return once every service is ready; :class:`ServiceFailed` as soon as one exits, or
    when they are not all ready after ``timeout_s``."""
    services = list(services)
    deadline = time.monotonic() + timeout_s
    while True:
        for service in services:
            service.check_alive()
        if all(service.ready() for service in services):
            return
        if time.monotonic() >= deadline:
            waiting = ", ".join(s.name for s in services if not s.ready())
            raise ServiceNotReady(f"not ready after {timeout_s:.0f} s: {waiting}")
        await asyncio.sleep(poll_s)


def stop_all(
    services: Iterable[ServiceProcess], sig: int = signal.SIGTERM, timeout_s: float = 20.0
) -> None:
    """Signal every service first, then wait for each: they shut down in parallel."""
    services = list(services)
    for service in services:
        if service.alive():
            service.process.send_signal(sig)
    for service in services:
        service._wait_or_kill(timeout_s)
