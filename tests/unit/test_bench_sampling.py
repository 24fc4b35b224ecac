"""``bench.sampling.watch_until``: the run's end is seen between two samples, and the last sample shows it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, cast

from bench.sampling import Watch, watch_until
from bench.scenarios import Context


class RisingEnds:
    """End offsets that grow by ``step`` each time they are read (the results arriving)."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.reads = 0

    async def total(self) -> int:
        self.reads += 1
        return self.reads * self.step


class Running:
    running = True

    def cpu_s(self) -> float | None:
        return 1.0

    def kib(self, name: str) -> int | None:
        return 1024


class NoSandbox:
    pid = None


def watching(
    tmp_path: Path, ends: RisingEnds, *, sample_interval_s: float, expected: int, timeout_s: float
) -> Coroutine[Any, Any, tuple[Watch, bool]]:
    """``watch_until`` of a design that keeps running, with no sandbox process to sample."""
    ctx = Context(
        bootstrap="127.0.0.1:1",
        broker_pid=None,
        work_dir=tmp_path,
        max_in_flight=8,
        extra_env={},
        log_level="INFO",
        restore=False,
        profile="none",
        seed=1,
        sample_interval_s=sample_interval_s,
        timeout_s=None,
    )
    return watch_until(ctx, Running(), cast(Any, NoSandbox()), cast(Any, ends), expected, timeout_s)


async def test_a_run_that_ends_between_two_samples_is_seen_before_the_next_one(tmp_path: Path) -> None:
    ends = RisingEnds(step=10)
    watch, complete = await asyncio.wait_for(  # a whole interval would be 60 s
        watching(tmp_path, ends, sample_interval_s=60.0, expected=30, timeout_s=600.0), timeout=10.0
    )

    assert complete
    assert [sample.results for sample in watch.samples] == [10, 40]  # the first sample, then the end's
    assert ends.reads == 4  # two polls between the samples, the second of which saw 30


async def test_a_run_short_of_its_results_is_sampled_until_its_deadline_then_reported_incomplete(
    tmp_path: Path,
) -> None:
    ends = RisingEnds(step=0)  # nothing ever arrives
    watch, complete = await watching(tmp_path, ends, sample_interval_s=0.25, expected=1, timeout_s=0.6)

    assert not complete
    assert len(watch.samples) >= 2
    assert {sample.results for sample in watch.samples} == {0}
    assert ends.reads > len(watch.samples)  # the end offsets were looked at between the samples too
