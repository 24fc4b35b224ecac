"""``Journal.restore`` reads a journal partition to its end offset: it stops at the last commit marker at
once instead of polling again, and a fetch with nothing to return is held by the broker (500 ms per
restore, measured at every rebalance)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from worker.pipeline.journal import Journal

MARKER = None  # a transaction's commit marker: an offset that is no record


@dataclass
class Message:
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


class LogConsumer:
    """One partition's log as a ``read_committed`` aiokafka consumer reads it: ``getmany`` hands out the
    records from the position on and moves the position past the markers that follow them (they come in
    the same fetch); with nothing left, the fetch is held for ``timeout_ms``, counted here in
    ``held_ms``."""

    def __init__(self, log: list[Message | None]) -> None:
        self.log = log
        self.end = len(log)
        self.pos = 0
        self.held_ms = 0
        self.polls = 0

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def assign(self, tps: list[TopicPartition]) -> None: ...

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, self.end)

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 0)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.pos = offset

    async def position(self, tp: TopicPartition) -> int:
        return self.pos

    async def getmany(
        self, tp: TopicPartition, *, timeout_ms: int, max_records: int
    ) -> dict[Any, list[Message]]:
        self.polls += 1
        handed: list[Message] = []
        while self.pos < self.end and len(handed) < max_records:
            entry = self.log[self.pos]
            if entry is not MARKER:
                handed.append(entry)
            self.pos += 1
        if not handed:
            self.held_ms += timeout_ms
            return {}
        return {tp: handed}


def transaction(first: int, count: int) -> list[Message | None]:
    """``count`` journal records from offset ``first``, then the transaction's commit marker."""
    records: list[Message | None] = [
        Message(offset, f"T{offset:06d}".encode(), b'{"state":"intent"}', 1_000 + offset)
        for offset in range(first, first + count)
    ]
    return [*records, MARKER]


def journal_over(consumer: LogConsumer, state_dir: Path | None = None) -> Journal:
    return Journal(
        topic="ecash.journal",
        group_id="g",
        state_dir=state_dir,
        consumer_factory=lambda: consumer,
        dedupe_window_s=86_400,
        now_ms=lambda: 2_000,
    )


async def test_a_restore_stops_at_the_last_commit_marker_without_another_fetch() -> None:
    consumer = LogConsumer([*transaction(0, 5), *transaction(6, 5)])  # offsets 0-4, 5, 6-10, 11

    report = await journal_over(consumer).restore(0)

    assert (report.records, report.from_offset, report.to_offset) == (10, 0, 12)
    assert consumer.polls == 1
    assert consumer.held_ms == 0  # no fetch left waiting for records that will never come


async def test_a_partition_of_only_markers_and_aborted_records_is_restored_empty() -> None:
    """A fetch that hands out no record can still move the position (markers, aborted records skipped
    under read_committed): the restore follows the position to the end instead of waiting for records."""
    consumer = LogConsumer([MARKER, MARKER, MARKER])

    report = await journal_over(consumer).restore(0)

    assert (report.records, report.to_offset) == (0, 3)
    assert consumer.polls == 1


async def test_a_restart_with_its_state_directory_replays_only_what_came_after(tmp_path: Path) -> None:
    """The first restore of a fresh state directory is cold (the whole partition); the store it leaves
    is warm for the next restore, which reads only the records written after its checkpoint. (The cold
    restore's wipe used to delete the store's schema mark with its checkpoint, so every later open took
    the store for an older layout and dropped it: every restart replayed the whole partition.)"""
    consumer = LogConsumer([*transaction(0, 5), *transaction(6, 5)])
    first = journal_over(consumer, tmp_path)
    cold = await first.restore(0)
    first.release(0)
    consumer.log += transaction(12, 3)  # written by the next owner while this worker was away
    consumer.end = len(consumer.log)

    second = journal_over(consumer, tmp_path)
    warm = await second.restore(0)

    assert (cold.records, cold.from_offset) == (10, 0)
    assert (warm.records, warm.from_offset, warm.to_offset) == (3, 12, 16)
    assert second.pending_records(0) == 13
    second.release(0)
