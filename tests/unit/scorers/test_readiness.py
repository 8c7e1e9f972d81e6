"""Readiness: 1 only while joined, the broker answers and no stop was asked for."""

from __future__ import annotations

from prometheus_client import REGISTRY

from scorers.readiness import Readiness


def ready(service: str) -> float | None:
    return REGISTRY.get_sample_value("warden_ready", {"service": service})


def test_ready_needs_the_group_the_broker_and_no_stop() -> None:
    state = Readiness("test-readiness")
    state.set()
    assert ready("test-readiness") == 0  # not joined yet
    state.set(joined=True)
    assert ready("test-readiness") == 1
    state.set(broker=False)
    assert ready("test-readiness") == 0
    state.set(broker=True)
    assert ready("test-readiness") == 1
    state.set(stopping=True)
    assert ready("test-readiness") == 0
