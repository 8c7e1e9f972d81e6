"""`warden stack up` refuses a port where a reconnecting client could connect to itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import StackError
from core.settings import StackSettings
from deploy.stack import refuse_ephemeral_ports


def test_a_port_inside_the_range_names_its_variable() -> None:
    stack = StackSettings(redis_port=36379)
    with pytest.raises(StackError) as info:
        refuse_ephemeral_ports(stack, (32768, 60999))
    assert "WARDEN_STACK__REDIS_PORT" in str(info.value)
    assert "32768-60999" in str(info.value)
    refuse_ephemeral_ports(StackSettings(), (32768, 60999))


def test_stack_up_refuses_before_starting_anything(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    low, high = (int(p) for p in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    env.update(
        {
            # Its own stack dir and cache: nothing shared is touched even if the check failed.
            "WARDEN_STACK__DIR": str(tmp_path / "stack"),
            "WARDEN_STACK__CACHE_DIR": str(tmp_path / "cache"),
            "WARDEN_STACK__KAFKA_CONTROLLER_PORT": str(high),
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "warden", "stack", "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "WARDEN_STACK__KAFKA_CONTROLLER_PORT" in done.stderr
    assert f"{low}-{high}" in done.stderr
    assert not (tmp_path / "cache").exists()
