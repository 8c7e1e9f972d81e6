"""Fixtures for the ingest unit tests (no servers)."""

from __future__ import annotations

import pytest
from fakes.kafka_producer import FakeProducer


@pytest.fixture
def producer() -> FakeProducer:
    return FakeProducer()
