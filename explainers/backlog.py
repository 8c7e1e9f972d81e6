"""The explainer's bounded priority queue: what to explain next, and what to shed.

Verdicts wait here while LIME works on one at a time. Order of service:

1. requests (a dispute of a message that was not explained: someone is waiting for it);
2. HIGH, then MEDIUM, then LOW verdicts;
3. within a grade, the newest first: under load the explanations that still help a moderator
   (of what just happened) come out with a small delay, and the backlog's oldest wait.

When the queue is full, the job with the least priority is shed: the oldest of the lowest grade
present; a new job that ranks below everything queued is shed itself. So HIGH verdicts are
explained first and shed last, and what is shed is counted (``warden_explanations_shed_total``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from schemas.events import Severity, Verdict

REQUESTED = "REQUESTED"
# Grades from the most urgent; every Severity but SAFE has one.
GRADES: tuple[str, ...] = (REQUESTED, Severity.HIGH.value, Severity.MEDIUM.value, "LOW")


@dataclass(frozen=True)
class Job:
    """One verdict to explain; ``on_demand`` when a dispute asked for it."""

    verdict: Verdict
    on_demand: bool = False

    @property
    def grade(self) -> str:
        if self.on_demand:
            return REQUESTED
        # A SAFE verdict only arrives here on demand; otherwise it ranks with LOW.
        return self.verdict.severity.value if self.verdict.severity is not Severity.SAFE else "LOW"


class Backlog:
    """Jobs by grade, at most ``capacity`` in all; ``put`` sheds, ``get`` waits for one."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._grades: dict[str, deque[Job]] = {grade: deque() for grade in GRADES}
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return sum(len(jobs) for jobs in self._grades.values())

    def holds(self, message_id: str) -> bool:
        """Whether a job for ``message_id`` is waiting."""
        return any(
            job.verdict.message_id == message_id for jobs in self._grades.values() for job in jobs
        )

    def depth(self) -> dict[str, int]:
        """Jobs waiting per grade."""
        return {grade: len(jobs) for grade, jobs in self._grades.items()}

    def put(self, job: Job) -> Job | None:
        """Queue ``job``; returns the job shed to make room (maybe ``job`` itself), or None."""
        shed: Job | None = None
        if len(self) >= self.capacity:
            lowest = max(
                (i for i, grade in enumerate(GRADES) if self._grades[grade]),
                default=None,
            )
            rank = GRADES.index(job.grade)
            if lowest is None or rank > lowest:
                return job
            shed = self._grades[GRADES[lowest]].popleft()  # the oldest of the lowest grade
        self._grades[job.grade].append(job)
        self._ready.set()
        return shed

    def pop(self) -> Job | None:
        """The most urgent job (newest of the highest grade), or None when empty."""
        for grade in GRADES:
            jobs = self._grades[grade]
            if jobs:
                return jobs.pop()
        self._ready.clear()
        return None

    async def get(self) -> Job:
        """Wait for a job and take it."""
        while True:
            job = self.pop()
            if job is not None:
                return job
            await self._ready.wait()
