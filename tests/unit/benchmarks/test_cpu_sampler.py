"""The benchmark's machine CPU: each process's share over a span, and the idle rest."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from benchmarks.cpu_sampler import CpuSampler, disturbance, machine_ticks, process_ticks


def test_a_busy_process_is_charged_its_cpu_and_a_gone_one_nothing() -> None:
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # up to one core
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    try:
        with CpuSampler({"spin": spin.pid, "gone": gone.pid}, interval_s=0.02) as sampler:
            time.sleep(0.3)
            start, ticks_at_start = time.time(), process_ticks(spin.pid)
            time.sleep(1.5)
            end, ticks_at_end = time.time(), process_ticks(spin.pid)
            time.sleep(0.1)
    finally:
        spin.kill()
        spin.wait()
    assert ticks_at_start is not None and ticks_at_end is not None
    # What the spinning process got, read directly (all of a core, or less on a loaded machine).
    cores_used = (ticks_at_end - ticks_at_start) / 100 / (end - start)
    # At 100 "messages" a second, a process using one core spends 10,000 us on each.
    found = sampler.between(start, end, 100.0)
    assert found is not None
    us = found["us_per_msg"]
    assert "gone" not in us
    assert 0.1 <= us["spin"] / 10_000 <= 1.05
    assert abs(us["spin"] / 10_000 - cores_used) <= 0.15
    assert 1.0 <= found["seconds"] <= 1.5
    # The rows add up to every core's time: cores / rate.
    cores = os.cpu_count() or 1
    assert abs(sum(us.values()) - cores * 10_000) <= 0.1 * cores * 10_000
    assert 0.0 <= found["idle_share"] <= 1 - 0.1 / cores
    # Outside the samples, or without a rate, there is nothing to say.
    assert sampler.between(end + 10, end + 20, 100.0) is None
    assert sampler.between(start, end, 0.0) is None


def test_ticks_are_read_from_proc() -> None:
    total, idle = machine_ticks()
    assert total > idle >= 0
    mine = process_ticks(os.getpid())
    assert mine is not None and mine >= 0
    assert process_ticks(2**22 + 12345) is None  # above pid_max's default ceiling


def test_the_machine_table_has_a_row_per_process_and_the_idle_share() -> None:
    from benchmarks.cpu_sampler import machine_table

    unique = {"idle_share": 0.125, "us_per_msg": {"scorer": 2177.1, "idle": 343.8}}
    replay = {"idle_share": 0.03, "us_per_msg": {"scorer_1": 300.0, "scorer": 600.0}}
    table = machine_table({"unique": unique, "replay": replay, "none": None}).splitlines()
    assert table[0] == "| machine, us per message | unique | replay |"
    assert "| scorer | 2177.1 | 600.0 |" in table
    assert "| scorer_1 | 0.0 | 300.0 |" in table
    assert table[-1] == "| idle share of the cores | 12.5% | 3.0% |"


def test_a_server_is_charged_its_childrens_cpu_too() -> None:
    # A parent that forks a busy child, as Redis does for a snapshot: live, then ended.
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', "
            "'import time\\nt = time.time()\\nwhile time.time() - t < 0.8: pass'])\n"
            "child.wait()\n"
            "time.sleep(30)\n",
        ]
    )
    kids = f"/proc/{parent.pid}/task/{parent.pid}/children"

    def children() -> str:
        with open(kids, encoding="ascii") as f:
            return f.read().strip()

    try:
        deadline = time.monotonic() + 20
        while not children() and time.monotonic() < deadline:  # a loaded machine starts slowly
            time.sleep(0.02)
        time.sleep(0.3)
        alone = process_ticks(parent.pid)
        live = process_ticks(parent.pid, children=True)
        assert alone is not None and live is not None and live > alone
        while children() and time.monotonic() < deadline:  # ended and waited for
            time.sleep(0.02)
        assert not children()
        ended = process_ticks(parent.pid, children=True)
        # Its CPU (up to 0.8 s; less on a loaded machine) stays counted once it has ended.
        assert ended is not None and ended - (process_ticks(parent.pid) or 0) >= 20
    finally:
        parent.kill()
        parent.wait()


def test_a_drain_other_programs_took_from_is_called_disturbed() -> None:
    def reading(other: float) -> dict[str, object]:
        # Two cores at 1,000 msg/s: 2,000 us of the machine a message.
        rest = {"scorer": 1_500.0, "broker": 100.0, "redis": 100.0}
        return {"us_per_msg": {**rest, "other": other, "idle": 300.0 - other}}

    assert disturbance(reading(20.0)) is None  # 1 %: the kernel, the sampler's neighbours
    assert disturbance(reading(100.0)) is None  # 5 %: not above the line
    warning = disturbance(reading(200.0))
    assert warning is not None and "10%" in warning and "200 us" in warning
    assert disturbance(None) is None


def test_a_scorers_child_process_is_charged_to_the_scorer() -> None:
    """A scorer's encoder runs in a child process: its CPU is the scorer's row."""
    code = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'while True: pass']); time.sleep(60)"
    )
    for name in ("scorer", "harness"):
        parent = subprocess.Popen([sys.executable, "-c", code])
        try:
            time.sleep(0.5)
            with CpuSampler({name: parent.pid}, interval_s=0.02) as sampler:
                time.sleep(0.3)
                start = time.time()
                time.sleep(1.0)
                end = time.time()
                time.sleep(0.1)
        finally:
            with open(f"/proc/{parent.pid}/task/{parent.pid}/children", encoding="ascii") as kids:
                children = [int(k) for k in kids.read().split()]
            for pid in children:
                os.kill(pid, 9)
            parent.kill()
            parent.wait()
        found = sampler.between(start, end, 100.0)
        assert found is not None
        share = found["us_per_msg"].get(name, 0.0) / 10_000  # cores' worth
        if name == "scorer":
            assert share >= 0.1  # the spinning child's core, or a share of it
        else:
            assert share < 0.05  # the parent only sleeps
