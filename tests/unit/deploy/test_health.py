"""`warden health SERVICE`: the containers' healthcheck and the Kubernetes probes.

A real metrics endpoint (prometheus_client's server, as every service runs it) on a free port;
the probe is the command the compose file and the manifests run.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from core.net import free_port
from core.settings import MetricsSettings
from deploy.health import SERVICES, metrics_port, probe

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def endpoint() -> Iterator[tuple[int, Gauge]]:
    registry = CollectorRegistry()
    ready = Gauge("warden_ready", "ready", ["service"], registry=registry)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield port, ready
    server.shutdown()
    thread.join(5)


def test_ready_only_when_the_gauge_says_1(endpoint: tuple[int, Gauge]) -> None:
    port, ready = endpoint
    assert probe("127.0.0.1", port, "scorer", live=False, timeout_s=2) == (
        f'scorer: http://127.0.0.1:{port}/metrics has no warden_ready{{service="scorer"}}'
    )
    ready.labels("scorer").set(0)
    assert probe("127.0.0.1", port, "scorer", live=False, timeout_s=2) == (
        "scorer: not ready (warden_ready 0)"
    )
    # Liveness: it answers, ready or not (a lost broker is no reason to restart it).
    assert probe("127.0.0.1", port, "scorer", live=True, timeout_s=2) is None
    ready.labels("scorer").set(1)
    ready.labels("actioner").set(0)
    assert probe("127.0.0.1", port, "scorer", live=False, timeout_s=2) is None
    assert "not ready" in str(probe("127.0.0.1", port, "actioner", live=False, timeout_s=2))


def test_nothing_listening_is_unhealthy_and_not_alive() -> None:
    port = free_port()
    for live in (False, True):
        problem = probe("127.0.0.1", port, "drift", live=live, timeout_s=1)
        assert problem is not None and problem.startswith(
            f"drift: no metrics at http://127.0.0.1:{port}"
        )


def test_every_service_has_its_metrics_port_setting() -> None:
    ports = {service: metrics_port(MetricsSettings(), service) for service in SERVICES}
    assert len(set(ports.values())) == len(SERVICES)


def test_the_command_exits_1_with_one_line_then_0_when_ready(endpoint: tuple[int, Gauge]) -> None:
    port, ready = endpoint
    ready.labels("actioner").set(0)
    command = [sys.executable, "-m", "warden", "health", "actioner", "--port", str(port)]
    down = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert (down.returncode, down.stderr) == (1, "warden: actioner: not ready (warden_ready 0)\n")
    ready.labels("actioner").set(1)
    up = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert (up.returncode, up.stdout) == (0, "actioner: ready\n")
