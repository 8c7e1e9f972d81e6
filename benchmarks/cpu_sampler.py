"""The machine's CPU over a drain's scoring span: each process's share, and what stayed idle.

The scorer's stage clock says where the scorer's own CPU goes. On one machine the broker, Redis
and the benchmark's own process share its cores with it, and what none of them uses is idle
time. A thread reads ``/proc`` every 50 ms while a workload drains; the scoring span is known
only afterwards (the verdicts' stamps), so the samples nearest its ends are subtracted.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.metrics import live_children, proc_stat
from core.settings import Settings

_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    at: float  # time.time()
    total: int  # the machine's clock ticks, all cores, all states
    idle: int  # of which idle or waiting for I/O
    processes: dict[str, int]  # each named process's user + system ticks, all its threads


def machine_ticks() -> tuple[int, int]:
    """(all ticks, idle and I/O-wait ticks) of every core since boot."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    return sum(fields), fields[3] + fields[4]


def process_ticks(pid: int, children: bool = False) -> int | None:
    """User + system ticks of ``pid`` (all threads), None when it is gone. With ``children``,
    also its children's, live and ended (Redis forks one to write each snapshot)."""
    fields = proc_stat(pid)
    if fields is None:
        return None
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])  # ended children, once waited for
        for kid in live_children(pid):
            kid_fields = proc_stat(kid)
            if kid_fields is not None:
                ticks += int(kid_fields[11]) + int(kid_fields[12])
    return ticks


def stack_pids(settings: Settings) -> dict[str, int]:
    """The local stack's broker and Redis, when ``warden stack`` runs them (else none); their
    children count as theirs (see :class:`CpuSampler`)."""
    from deploy.stack.paths import Paths
    from deploy.stack.processes import running_pid

    paths = Paths.of(settings.stack)
    found = {"broker": running_pid(paths, "kafka"), "redis": running_pid(paths, "redis")}
    return {name: pid for name, pid in found.items() if pid is not None}


# Whose children's CPU counts as theirs: Redis's snapshot and rewrite forks are Redis's work,
# a scorer's encoder process (toxicity.encoder_process) the scorer's. (Not the benchmark's own
# process: its children are the scorers, rows of their own.)
WITH_CHILDREN = frozenset({"broker", "redis"})


def counts_children(name: str) -> bool:
    return name in WITH_CHILDREN or name.startswith("scorer")


class CpuSampler:
    """Samples the machine and ``pids`` every ``interval_s`` in a thread of its own."""

    def __init__(self, pids: Mapping[str, int], interval_s: float = 0.05) -> None:
        self.pids = dict(pids)
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            total, idle = machine_ticks()
            ticks = {
                name: process_ticks(pid, children=counts_children(name))
                for name, pid in self.pids.items()
            }
            self.samples.append(
                Sample(time.time(), total, idle, {n: t for n, t in ticks.items() if t is not None})
            )
            self._stop.wait(self.interval_s)

    def between(self, start: float, end: float, rate: float) -> dict[str, Any] | None:
        """Over the samples from ``start`` to ``end`` (``time.time()``), at ``rate`` messages a
        second: the idle share of all cores, and in us a message each process's CPU, the rest's
        (``other``: the kernel's own threads, other programs) and the idle cores' time. None
        with under two samples in the span."""
        inside = [s for s in self.samples if start <= s.at <= end]
        if len(inside) < 2 or rate <= 0:
            return None
        first, last = inside[0], inside[-1]
        messages = rate * (last.at - first.at)
        total = last.total - first.total
        if total <= 0 or messages <= 0:
            return None
        per_msg = 1e6 * _TICK_S / messages
        spent = {
            name: last.processes[name] - first.processes[name]
            for name in self.pids
            if name in first.processes and name in last.processes
        }
        busy = total - (last.idle - first.idle)
        us = {name: round(ticks * per_msg, 1) for name, ticks in spent.items()}
        us["other"] = round(max(0, busy - sum(spent.values())) * per_msg, 1)
        # All cores' time a message: the rows above and this add up to cores / rate.
        us["idle"] = round((last.idle - first.idle) * per_msg, 1)
        return {
            "seconds": round(last.at - first.at, 2),
            "idle_share": round((last.idle - first.idle) / total, 3),
            "cores": os.cpu_count(),
            "us_per_msg": us,
        }


# Above this share of the machine's time, what no watched process spent (other programs, the
# kernel) disturbed a drain: its rate says less about the pipeline than about the machine.
DISTURBED_SHARE = 0.05


def disturbance(reading: dict[str, Any] | None, share: float = DISTURBED_SHARE) -> str | None:
    """A one-line warning when ``other`` took more than ``share`` of all cores' time over a
    :meth:`CpuSampler.between` reading, else None."""
    if reading is None:
        return None
    us = reading["us_per_msg"]
    total = sum(us.values())
    if total <= 0 or us.get("other", 0.0) <= share * total:
        return None
    return (
        f"other processes took {us['other'] / total:.0%} of the machine over the drain "
        f"({us['other']:.0f} us a message): its rate was disturbed"
    )


def machine_table(readings: Mapping[str, dict[str, Any] | None]) -> str:
    """:meth:`CpuSampler.between` readings per column (workload) as a Markdown table."""
    columns = {name: r for name, r in readings.items() if r is not None}
    rows: list[str] = []
    for reading in columns.values():
        rows += [row for row in reading["us_per_msg"] if row not in rows]
    lines = [
        "| machine, us per message | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for row in rows:
        cells = " | ".join(f"{r['us_per_msg'].get(row, 0.0):.1f}" for r in columns.values())
        lines.append(f"| {row} | {cells} |")
    shares = " | ".join(f"{r['idle_share']:.1%}" for r in columns.values())
    lines.append(f"| idle share of the cores | {shares} |")
    return "\n".join(lines)
