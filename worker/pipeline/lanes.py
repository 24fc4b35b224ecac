"""Key-ordered concurrency: one lane per MSISDN, run strictly in arrival order; lanes run side by side.

A lane is a queue and, while it has work, one task. At most ``max_in_flight`` jobs that need an in-flight
slot (commands) run at once across all lanes; work that never waits on the API (review decisions,
rejections, dead letters) takes no slot, so it is never stuck behind commands waiting out an outage. A job
that waits (a command in resolution) holds only its own lane.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

__all__ = ["J", "Laned", "Lanes"]


class Laned(Protocol):
    @property
    def lane_key(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def needs_slot(self) -> bool:
        """False for work that never waits on the API (it must not queue behind commands that do)."""

    cancelled: bool


J = TypeVar("J", bound=Laned)


@dataclass
class Lanes(Generic[J]):
    run: Callable[[J], Awaitable[None]]
    max_in_flight: int
    _queues: dict[str, deque[J]] = field(default_factory=dict)
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _running: dict[str, J] = field(default_factory=dict)
    _buffered: int = 0
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    _room: asyncio.Event = field(default_factory=asyncio.Event)  # set whenever a job leaves the buffer
    _sem: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._sem = asyncio.Semaphore(self.max_in_flight)
        self._idle.set()

    def submit(self, job: J) -> None:
        queue = self._queues.get(job.lane_key)
        self._buffered += 1
        self._idle.clear()
        if queue is not None:
            queue.append(job)
            return
        self._queues[job.lane_key] = deque([job])
        self._tasks[job.lane_key] = asyncio.create_task(self._lane(job.lane_key), name=f"lane:{job.lane_key}")

    async def _lane(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                job = queue[0]
                if not job.cancelled:
                    if job.needs_slot:
                        async with self._sem:
                            await self._run_one(key, job)
                    else:
                        await self._run_one(key, job)
                queue.popleft()
                self._buffered -= 1
                self._room.set()
        finally:
            self._buffered -= len(queue)
            self._room.set()
            self._queues.pop(key, None)
            self._tasks.pop(key, None)
            if not self._queues:
                self._idle.set()

    async def _run_one(self, key: str, job: J) -> None:
        if job.cancelled:
            return
        self._running[key] = job
        try:
            await self.run(job)
        finally:
            self._running.pop(key, None)

    async def wait_room(self, below: int, timeout_s: float) -> None:
        """Return once fewer than ``below`` jobs are buffered, or after ``timeout_s``."""
        while self._buffered >= below:
            self._room.clear()
            try:
                await asyncio.wait_for(self._room.wait(), timeout_s)
            except TimeoutError:
                return

    @property
    def buffered(self) -> int:
        """Jobs held in memory: running plus waiting."""
        return self._buffered

    @property
    def in_flight(self) -> int:
        return len(self._running)

    @property
    def waiting(self) -> int:
        return max(0, self._buffered - len(self._running))

    def running_jobs(self) -> list[J]:
        return list(self._running.values())

    def cancel_partitions(self, partitions: set[int]) -> list[J]:
        """Mark every job of these partitions cancelled; return the ones running now (to be drained)."""
        for queue in self._queues.values():
            for job in queue:
                if job.partition in partitions:
                    job.cancelled = True
        return [job for job in self._running.values() if job.partition in partitions]

    def tasks_of(self, jobs: list[J]) -> list[asyncio.Task[None]]:
        return [self._tasks[job.lane_key] for job in jobs if job.lane_key in self._tasks]

    async def wait_idle(self) -> None:
        await self._idle.wait()
