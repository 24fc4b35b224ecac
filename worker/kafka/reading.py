"""Read a topic to its end: the one stop rule, for every reader that wants "everything there is now".

**The stop rule.** The partitions' end offsets are taken once, when the read starts (the high watermark;
the last stable offset under ``read_committed``). Each partition is read from its beginning until the
consumer's *position* reaches the end offset taken then; the read returns when every partition has.

- A record at or past that end (written while the read goes on) is not handed on: the read is the topic as
  it was when the read started, however busy the topic is.
- The position decides, not the last record's offset: the last offsets of a transactional topic are commit
  markers, and under ``read_committed`` an aborted transaction's records are skipped, so a partition can be
  complete with no record at ``end - 1``.
- An empty partition (end offset at its beginning, or 0) is complete at once, and never fetched.
- There is no overall deadline (a large topic takes as long as it takes). A read that stops *moving* fails:
  when no partition's position has advanced for ``stall_timeout_s`` (default 30 s), ``ReadStalled`` names
  the partitions short of their end. Progress is a position moving, not a record arriving, so a long run
  of aborted records or markers is progress too. A read is never silently partial.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from aiokafka import TopicPartition

from worker.clock import Clock, SystemClock

__all__ = ["STALL_TIMEOUT_S", "ReadConsumer", "ReadStalled", "read_to_end", "seek_to_log_start"]

STALL_TIMEOUT_S = 30.0
POLL_MS = 200


class ReadStalled(Exception):
    """No partition moved towards its end for ``stall_timeout_s``: the broker is away or stuck."""

    def __init__(self, topic: str, stall_timeout_s: float, behind: Mapping[TopicPartition, tuple[int, int]]):
        self.topic = topic
        self.stall_timeout_s = stall_timeout_s
        self.behind = dict(behind)  # partition -> (position, end)
        where = ", ".join(f"{tp.partition} at {pos} of {end}" for tp, (pos, end) in sorted(behind.items()))
        super().__init__(f"reading {topic}: nothing arrived for {stall_timeout_s:g} s (partitions {where})")


class ReadConsumer(Protocol):
    """What ``read_to_end`` needs of a consumer (``AIOKafkaConsumer`` without a group, started)."""

    async def end_offsets(self, partitions: list[TopicPartition]) -> Mapping[TopicPartition, int]: ...

    def assign(self, partitions: list[TopicPartition]) -> None: ...

    async def seek_to_beginning(self, *partitions: TopicPartition) -> Any: ...

    async def position(self, partition: TopicPartition) -> int: ...

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = ..., max_records: int | None = ...
    ) -> Mapping[TopicPartition, Sequence[Any]]: ...


def seek_to_log_start(consumer: Any, tp: TopicPartition) -> None:
    """Put ``tp``'s position at the partition's log start, at once, on a consumer already reading others.

    Not aiokafka's ``seek_to_beginning``, nor ``beginning_offsets``: the first hands the reset to the
    consumer's fetch task, and the second sends a request on the same connection as that task's fetches;
    both wait for the fetch in flight, which the broker holds for ``fetch_max_wait_ms`` (500 ms by
    default) when it has nothing to return. A partition taken while others were read stood idle that long
    (docs/performance.md, "Taking a partition"). Offset 0 is the log start unless retention has deleted
    the first records; then the first fetch is answered OFFSET_OUT_OF_RANGE and ``auto_offset_reset``
    (``earliest`` on every consumer of the worker, worker/kafka/clients.py) moves it to the log start."""
    consumer.seek(tp, 0)


async def read_to_end(
    consumer: ReadConsumer,
    partitions: Sequence[TopicPartition],
    handle: Callable[[Any], None],
    *,
    stall_timeout_s: float = STALL_TIMEOUT_S,
    clock: Clock | None = None,
    max_records: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Hand every record of ``partitions`` below the end offsets taken now to ``handle``, in offset order
    per partition; return how many. ``on_progress(count)`` after each fetch that delivered records.

    ``consumer`` is started and has no group; its assignment is replaced. Raises ``ReadStalled`` (the stop
    rule: module docstring)."""
    clock = clock or SystemClock()
    tps = list(partitions)
    ends = dict(await consumer.end_offsets(tps))
    consumer.assign(tps)
    if tps:
        await consumer.seek_to_beginning(*tps)
    positions = {tp: await consumer.position(tp) for tp in tps}
    pending = {tp for tp in tps if positions[tp] < ends[tp]}
    count = 0
    last_moved_s = clock.monotonic_s()
    while pending:
        batch = await consumer.getmany(*sorted(pending), timeout_ms=POLL_MS, max_records=max_records)
        delivered = _hand_on(batch, ends, handle)
        count += delivered
        if delivered and on_progress is not None:
            on_progress(count)
        moved = False
        for tp in sorted(pending):
            position = await consumer.position(tp)
            moved |= position != positions[tp]
            positions[tp] = position
            if position >= ends[tp]:
                pending.discard(tp)
        if moved:
            last_moved_s = clock.monotonic_s()
        elif pending and clock.monotonic_s() - last_moved_s >= stall_timeout_s:
            behind = {tp: (positions[tp], ends[tp]) for tp in pending}
            raise ReadStalled(tps[0].topic, stall_timeout_s, behind)
    return count


def _hand_on(
    batch: Mapping[TopicPartition, Sequence[Any]],
    ends: Mapping[TopicPartition, int],
    handle: Callable[[Any], None],
) -> int:
    delivered = 0
    for tp, records in batch.items():
        end = ends.get(tp, 0)
        for record in records:
            if record.offset < end:
                handle(record)
                delivered += 1
    return delivered
