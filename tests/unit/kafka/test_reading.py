"""read_to_end's stop rule against an in-memory consumer: what is read, when it stops, when it gives up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pytest
from aiokafka import TopicPartition

from worker.clock import FakeClock
from worker.kafka.reading import STALL_TIMEOUT_S, ReadStalled, read_to_end

TOPIC = "t"


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int


@dataclass
class Log:
    """One partition: offsets in [start, end); an offset without a record is a commit marker or an aborted
    transaction's record (skipped under read_committed)."""

    start: int = 0
    end: int = 0
    records: dict[int, Rec] = field(default_factory=dict)
    stuck: bool = False  # the broker answers nothing for this partition


def tp(partition: int) -> TopicPartition:
    return TopicPartition(TOPIC, partition)


class FakeConsumer:
    """What read_to_end uses of AIOKafkaConsumer. ``getmany`` hands out at most ``per_fetch`` offsets of a
    partition per call; an empty answer costs the poll time on the fake clock; ``on_fetch`` runs before
    every fetch (a writer appending meanwhile)."""

    def __init__(self, logs: Mapping[int, Log], clock: FakeClock, per_fetch: int = 3) -> None:
        self.logs = dict(logs)
        self.clock = clock
        self.per_fetch = per_fetch
        self.positions: dict[TopicPartition, int] = {}
        self.assigned: list[TopicPartition] = []
        self.fetched: list[tuple[int, ...]] = []
        self.on_fetch: Callable[[], None] = lambda: None

    def append(self, partition: int, count: int = 1) -> None:
        log = self.logs[partition]
        for _ in range(count):
            log.records[log.end] = Rec(TOPIC, partition, log.end)
            log.end += 1

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {p: self.logs[p.partition].end for p in partitions}

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = list(partitions)
        self.positions = {}

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for p in partitions:
            self.positions[p] = self.logs[p.partition].start

    async def position(self, partition: TopicPartition) -> int:
        return self.positions[partition]

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Rec]]:
        self.on_fetch()
        self.fetched.append(tuple(p.partition for p in partitions))
        batch: dict[TopicPartition, list[Rec]] = {}
        for p in partitions:
            log = self.logs[p.partition]
            if log.stuck:
                continue
            position = self.positions[p]
            upto = min(log.end, position + self.per_fetch)
            records = [log.records[o] for o in range(position, upto) if o in log.records]
            self.positions[p] = max(position, upto)
            if records:
                batch[p] = records
        if not batch:
            self.clock.advance(timeout_ms / 1000)
        await asyncio.sleep(0)
        return batch


def full(partition: int, end: int, start: int = 0) -> Log:
    return Log(start, end, {o: Rec(TOPIC, partition, o) for o in range(start, end)})


async def read(
    consumer: FakeConsumer, partitions: Sequence[int], stall_timeout_s: float = STALL_TIMEOUT_S
) -> list[Rec]:
    got: list[Rec] = []
    count = await read_to_end(
        consumer,
        [tp(p) for p in partitions],
        got.append,
        clock=consumer.clock,
        stall_timeout_s=stall_timeout_s,
    )
    assert count == len(got)
    return got


@pytest.mark.parametrize(
    ("logs", "expected"),
    [
        pytest.param({0: full(0, 7)}, {0: list(range(7))}, id="one partition, several fetches"),
        pytest.param({0: full(0, 2), 1: full(1, 9)}, {0: [0, 1], 1: list(range(9))}, id="uneven partitions"),
        pytest.param({0: Log(), 1: full(1, 4)}, {0: [], 1: [0, 1, 2, 3]}, id="an empty partition"),
        pytest.param({0: Log(start=5, end=5)}, {0: []}, id="everything deleted by retention"),
        pytest.param({0: full(0, 10, start=6)}, {0: [6, 7, 8, 9]}, id="from the log start, not 0"),
        pytest.param(
            {0: Log(0, 8, {0: Rec(TOPIC, 0, 0), 3: Rec(TOPIC, 0, 3), 6: Rec(TOPIC, 0, 6)})},
            {0: [0, 3, 6]},
            id="markers and aborted records: done when the position reaches the end",
        ),
        pytest.param(
            {0: Log(0, 6, {0: Rec(TOPIC, 0, 0)})},
            {0: [0]},
            id="the end is a run of markers after the last record",
        ),
    ],
)
async def test_every_record_below_the_end_is_read_once_in_order(
    logs: dict[int, Log], expected: dict[int, list[int]]
) -> None:
    got = await read(FakeConsumer(logs, FakeClock()), sorted(logs))
    assert {p: [r.offset for r in got if r.partition == p] for p in logs} == expected


async def test_empty_partitions_are_never_fetched() -> None:
    consumer = FakeConsumer({0: Log(), 1: Log(start=3, end=3), 2: full(2, 2)}, FakeClock())
    await read(consumer, [0, 1, 2])
    assert all(fetch == (2,) for fetch in consumer.fetched)


async def test_nothing_to_read_makes_no_fetch() -> None:
    consumer = FakeConsumer({0: Log(), 1: Log()}, FakeClock())
    assert await read(consumer, [0, 1]) == []
    assert consumer.fetched == []


async def test_no_partitions_is_an_empty_read() -> None:
    assert await read(FakeConsumer({}, FakeClock()), []) == []


async def test_records_written_during_the_read_are_left_out() -> None:
    """The end offsets are taken once, at the start: a busy topic does not make the read endless."""
    consumer = FakeConsumer({0: full(0, 5), 1: Log()}, FakeClock())

    def writer() -> None:
        consumer.append(0, 2)
        consumer.append(1, 1)

    consumer.on_fetch = writer
    got = await read(consumer, [0, 1])
    assert [(r.partition, r.offset) for r in got] == [(0, o) for o in range(5)]
    assert consumer.logs[0].end > 5  # the writer did write meanwhile
    assert consumer.logs[1].end > 0


async def test_a_partition_that_never_moves_raises_after_the_stall_timeout() -> None:
    clock = FakeClock()
    consumer = FakeConsumer({0: full(0, 3), 1: Log(0, 4, stuck=True)}, clock)
    started_s = clock.monotonic_s()
    with pytest.raises(ReadStalled) as raised:
        await read(consumer, [0, 1])
    assert raised.value.behind == {tp(1): (0, 4)}  # partition 0 was read to its end first
    assert STALL_TIMEOUT_S <= clock.monotonic_s() - started_s < STALL_TIMEOUT_S + 1
    assert str(raised.value) == "reading t: nothing arrived for 30 s (partitions 1 at 0 of 4)"


async def test_the_stall_timeout_counts_from_the_last_move_not_from_the_start() -> None:
    """A slow read that keeps moving is never cut off, however long it takes in all."""
    clock = FakeClock()
    consumer = FakeConsumer({0: full(0, 40)}, clock, per_fetch=1)
    consumer.on_fetch = lambda: clock.advance(5.0)  # each record takes 5 s: 200 s in all
    got = await read(consumer, [0], stall_timeout_s=10.0)
    assert len(got) == 40


async def test_markers_alone_are_progress() -> None:
    """A long run of aborted records delivers nothing but moves the position: not a stall."""
    clock = FakeClock()
    consumer = FakeConsumer({0: Log(0, 50, {49: Rec(TOPIC, 0, 49)})}, clock, per_fetch=1)
    consumer.on_fetch = lambda: clock.advance(1.0)
    got = await read(consumer, [0], stall_timeout_s=3.0)
    assert [r.offset for r in got] == [49]


async def test_progress_is_reported_with_the_running_count() -> None:
    consumer = FakeConsumer({0: full(0, 7)}, FakeClock())
    counts: list[int] = []
    await read_to_end(consumer, [tp(0)], lambda _r: None, clock=consumer.clock, on_progress=counts.append)
    assert counts == [3, 6, 7]
