"""The service process helper of `warden run`, `warden bench` and the tests: readiness from the
metrics page, failing fast with the log when a service dies, stopping with its exit code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from devkit.processes import ServiceFailed, ServiceNotReady, ServiceProcess, stop_all, wait_ready

METRICS = b'# TYPE warden_ready gauge\nwarden_ready{service="scorer"} 1.0\n'


@pytest.fixture
def metrics_port() -> Iterator[int]:
    """A metrics page on a free loopback port that says the scorer is ready."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(METRICS)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def sleeper(name: str, log: Path, port: int | None) -> ServiceProcess:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    return ServiceProcess(name, process, log, metrics_port=port)


async def test_ready_reads_the_services_own_gauge(metrics_port: int, tmp_path: Path) -> None:
    scorer = sleeper("scorer", tmp_path / "scorer.log", metrics_port)
    actioner = sleeper("actioner", tmp_path / "actioner.log", metrics_port)
    try:
        assert scorer.ready()
        assert not actioner.ready()  # the page says nothing about the actioner
        await wait_ready([scorer], timeout_s=5)
        with pytest.raises(ServiceNotReady, match="actioner"):
            await wait_ready([scorer, actioner], timeout_s=1, poll_s=0.1)
    finally:
        stop_all([scorer, actioner])
    assert scorer.returncode == actioner.returncode == -signal.SIGTERM


async def test_no_answer_is_not_ready(tmp_path: Path) -> None:
    scorer = sleeper("scorer", tmp_path / "scorer.log", port=9)  # discard: nothing listens
    try:
        assert not scorer.ready()
    finally:
        assert scorer.stop(signal.SIGKILL) == -signal.SIGKILL
    assert not scorer.alive()


async def test_a_service_that_dies_fails_fast_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "broken.log"
    service = ServiceProcess.spawn("no-such-service", env=dict(os.environ), log=log, metrics_port=9)
    with pytest.raises(ServiceFailed, match="No such command") as failure:
        await wait_ready([service], timeout_s=120, poll_s=0.1)
    assert not isinstance(failure.value, ServiceNotReady)
    assert service.name == "no-such-service"
    assert service.returncode == 2  # click's usage error
    assert "No such command" in log.read_text()
