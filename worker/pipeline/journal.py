"""The write-ahead journal: a compacted topic, co-partitioned with the commands, keyed by trace number.

Before a Charge or Credit is sent its intent is committed in the partition's transaction; the outcome is
committed together with the result and the consumed offset (worker/pipeline/ownership.py). A worker that is
assigned a partition fences the previous owner, then restores the partition's journal (``read_committed``)
before it processes any of its commands.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import BaseModel, ConfigDict, Field

from worker.contracts import Attempt, Command, Result
from worker.core.resolution import ResolutionRecord
from worker.pipeline.journal_store import PartitionStore, open_store
from worker.pipeline.ownership import OutRecord

__all__ = ["ANSWERED", "Journal", "JournalRecord", "JournalState", "RestoreReport"]

ANSWERED = b'{"state":"done","answered":true}'  # a final record (journal_store.is_final)


def _marker(stream: str, offset: int) -> str:
    return f"#{stream[0]}:{offset}"


class JournalState(StrEnum):
    INTENT = "intent"  # about to send (or sent): money may have moved
    RESOLVING = "resolving"  # the answer was ambiguous; Status Inquiry is deciding
    DONE = "done"  # the outcome is known and recorded in ``result``


class JournalRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    trace_number: str
    fingerprint: str
    state: JournalState
    command: Command
    partition: int
    offset: int
    timestamp_ms: int | None = None
    sends: int = 0
    resubmits: int = 0
    attempts: list[Attempt] = Field(default_factory=list)
    resolution: ResolutionRecord | None = None  # while resolving (and kept once done): the schedule's state
    result: Result | None = None
    updated_at: datetime
    # The command's W3C trace context (headers.trace_context: one valid traceparent, its tracestate), so a
    # result published later for another message (a review decision) continues the command's trace. Left
    # out of the JSON when there is none, so a record written before it existed is written back unchanged.
    trace_context: list[tuple[str, str]] = Field(default_factory=list, exclude_if=lambda value: not value)
    # When the record entered the journal: the broker's append time (LogAppendTime) for a restored record,
    # the commit time for one this worker wrote. Not part of the record's JSON.
    appended_at_ms: int | None = Field(default=None, exclude=True)

    def trace_headers(self) -> list[tuple[str, bytes]]:
        """The command's trace context as Kafka headers, for a result published on its behalf."""
        return [(name, value.encode()) for name, value in self.trace_context]


@dataclass
class RestoreReport:
    partition: int
    records: int
    duration_s: float
    from_offset: int
    to_offset: int
    expired: list[str] = field(default_factory=list)  # final records past the dedupe window: tombstone them


class Journal:
    """The journal's local stores; writes go through the partition's transactional writer (ownership.py).

    ``out(record)`` is the record to put in the partition's transaction; ``remember(record)`` puts it in
    the local store once that transaction is committed.
    """

    def __init__(
        self,
        *,
        topic: str,
        group_id: str,
        state_dir: Path | None,
        consumer_factory: Callable[[], AIOKafkaConsumer],
        dedupe_window_s: float,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.topic = topic
        self._group_id = group_id
        self._state_dir = state_dir
        self._consumer_factory = consumer_factory
        self._dedupe_window_ms = int(dedupe_window_s * 1000)
        self._now_ms = now_ms
        self._stores: dict[int, PartitionStore] = {}
        self._end_offsets: dict[int, int] = {}

    # --- reading ---------------------------------------------------------------------------
    def get(self, partition: int, trace_number: str) -> JournalRecord | None:
        store = self._stores.get(partition)
        found = store.get(trace_number) if store else None
        if found is None:
            return None
        record = JournalRecord.model_validate_json(found[0])
        record.appended_at_ms = found[1]
        return record

    def owns(self, partition: int) -> bool:
        return partition in self._stores

    def open_reviews(self) -> tuple[int, int | None]:
        """Open review items (``unresolved`` outcomes no decision has closed) in the partitions held here,
        and the time (ms) the oldest of them entered the journal."""
        count, oldest = 0, None
        for store in self._stores.values():
            n, ts_ms = store.open_reviews()
            count += n
            if ts_ms is not None and (oldest is None or ts_ms < oldest):
                oldest = ts_ms
        return count, oldest

    def pending_records(self, partition: int) -> int:
        store = self._stores.get(partition)
        return store.count() if store else 0

    # --- writing ---------------------------------------------------------------------------
    def out(self, record: JournalRecord) -> OutRecord:
        return OutRecord(
            self.topic, record.trace_number.encode(), record.model_dump_json().encode(), record.partition
        )

    def tombstone(self, partition: int, trace_number: str) -> OutRecord:
        return OutRecord(self.topic, trace_number.encode(), None, partition)

    # --- answered messages -------------------------------------------------------------------
    # A message answered without a journal record of its own (a rejection, a dead letter, a duplicate or a
    # loser answered from another command's record) leaves a marker, keyed ``#<stream>:<offset>`` (never a
    # trace number: those are alphanumeric), in the transaction that publishes its answer. A message read
    # again (its partition's committed offset was held back by an earlier command still in flight, and the
    # partition moved) is then recognised and only its offset moves: a reader never sees its answer twice.
    # Markers are final records: they age out with the dedupe window like any other.
    def answered(self, partition: int, stream: str, offset: int) -> bool:
        store = self._stores.get(partition)
        return store is not None and store.get(_marker(stream, offset)) is not None

    def answer_marker(self, partition: int, stream: str, offset: int) -> OutRecord:
        return OutRecord(self.topic, _marker(stream, offset).encode(), ANSWERED, partition)

    def remember_answer(self, partition: int, stream: str, offset: int) -> None:
        store = self._stores.get(partition)
        if store is not None:
            store.put(_marker(stream, offset), ANSWERED, self._now_ms())

    def remember(self, record: JournalRecord, value: bytes | None = None) -> None:
        """After the transaction holding ``record`` committed: the local store sees it at once. ``value``:
        the record's JSON as it was written (``out``), so it is not made twice."""
        store = self._stores.get(record.partition)
        if store is not None:
            store.put(record.trace_number, value or record.model_dump_json().encode(), self._now_ms())

    # --- ownership -------------------------------------------------------------------------
    def open_in_memory(self, partition: int) -> None:
        """Own ``partition`` with an empty in-memory store and no restore: for in-memory fakes and tests."""
        self._stores[partition] = PartitionStore(None)

    def seed(self, record: JournalRecord, appended_at_ms: int) -> None:
        """Put a record as a restore would have found it (appended at ``appended_at_ms``): for fakes."""
        self._stores[record.partition].put(
            record.trace_number, record.model_dump_json().encode(), appended_at_ms
        )

    async def restore(self, partition: int) -> RestoreReport:
        started = time.perf_counter()
        store = open_store(self._state_dir, self._group_id, self.topic, partition)
        consumer = self._consumer_factory()
        try:
            await consumer.start()
        except BaseException:
            store.close()
            raise
        try:
            tp = TopicPartition(self.topic, partition)
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            begin = (await consumer.beginning_offsets([tp]))[tp]
            checkpoint = store.checkpoint()
            if checkpoint is None or checkpoint > end or checkpoint < begin:
                store.wipe()
                start = begin
            else:
                start = checkpoint
            consumer.seek(tp, start)
            records = await self._replay(consumer, tp, store, start, end)
            expired = store.purge_older_than(self._now_ms() - self._dedupe_window_ms)
            store.set_checkpoint(end)
        except BaseException:
            store.close()  # a failed or cancelled restore releases the store's lock (it is retried)
            raise
        finally:
            await consumer.stop()
        self._stores[partition] = store
        self._end_offsets[partition] = end
        return RestoreReport(partition, records, time.perf_counter() - started, start, end, expired)

    async def _replay(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, store: PartitionStore, start: int, end: int
    ) -> int:
        position, records, empty_polls = start, 0, 0
        while position < end:
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=10_000)
            rows: list[tuple[str, bytes | None, int]] = []
            for message in batch.get(tp, []):
                position = message.offset + 1
                if message.key is not None:
                    rows.append((message.key.decode(), message.value, message.timestamp))
            if rows:
                store.apply_batch(rows)
                records += len(rows)
            # The consumer's position passes the commit markers (and, under read_committed, aborted
            # records) that came with the batch. The journal is written in transactions, so its last
            # offset is a marker: judged by the last record alone, the loop polled once more after the
            # last batch, and that fetch, with nothing left to return, was held by the broker for 500 ms
            # at every restore (docs/performance.md, "Taking a partition").
            position = max(position, await consumer.position(tp))
            if batch:
                empty_polls = 0
                continue
            # Compaction can leave the tail of the log without records below the end offset.
            empty_polls += 1
            if empty_polls >= 20:
                raise RuntimeError(
                    f"journal restore of {self.topic}[{tp.partition}] stalled at {position} of {end}"
                )
            await asyncio.sleep(0)
        return records

    def release(self, partition: int) -> None:
        """Forget a partition. Its checkpoint stays where the restore put it: the next restore replays what
        came after (an upsert, harmless twice), including what other owners wrote meanwhile."""
        store = self._stores.pop(partition, None)
        if store is not None:
            store.close()
        self._end_offsets.pop(partition, None)

    def release_all(self) -> None:
        for partition in list(self._stores):
            self.release(partition)
