"""The write-ahead journal: a compacted topic, co-partitioned with the commands, keyed by trace number.

Before a Charge or Credit is sent its intent is written (acks=all, awaited); after the outcome is known the
outcome is written, then the result is published. A worker that is assigned a partition restores that
partition's journal before it processes any of its commands.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import BaseModel, ConfigDict, Field

from worker.contracts import Attempt, Command, Result
from worker.pipeline.journal_store import PartitionStore, open_store


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
    resolution: dict[str, Any] | None = None
    result: Result | None = None
    updated_at: datetime


class Sender(Protocol):
    async def send_journal(self, partition: int, key: bytes, value: bytes) -> int:
        """Write durably (acks=all); return the record's offset in the journal partition."""


@dataclass
class RestoreReport:
    partition: int
    records: int
    duration_s: float
    from_offset: int
    to_offset: int


class Journal:
    def __init__(
        self,
        *,
        topic: str,
        group_id: str,
        state_dir: Path | None,
        sender: Sender,
        consumer_factory: Callable[[], AIOKafkaConsumer],
        dedupe_window_s: float,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.topic = topic
        self._group_id = group_id
        self._state_dir = state_dir
        self._sender = sender
        self._consumer_factory = consumer_factory
        self._dedupe_window_ms = int(dedupe_window_s * 1000)
        self._now_ms = now_ms
        self._stores: dict[int, PartitionStore] = {}
        self._end_offsets: dict[int, int] = {}

    # --- reading ---------------------------------------------------------------------------
    def get(self, partition: int, trace_number: str) -> JournalRecord | None:
        store = self._stores.get(partition)
        raw = store.get(trace_number) if store else None
        return None if raw is None else JournalRecord.model_validate_json(raw)

    def owns(self, partition: int) -> bool:
        return partition in self._stores

    def pending_records(self, partition: int) -> int:
        store = self._stores.get(partition)
        return store.count() if store else 0

    # --- writing ---------------------------------------------------------------------------
    async def write(self, record: JournalRecord) -> None:
        value = record.model_dump_json().encode()
        offset = await self._sender.send_journal(record.partition, record.trace_number.encode(), value)
        self._end_offsets[record.partition] = max(self._end_offsets.get(record.partition, 0), offset + 1)
        store = self._stores.get(record.partition)
        if store is not None:
            store.put(record.trace_number, value, self._now_ms())

    # --- ownership -------------------------------------------------------------------------
    async def restore(self, partition: int) -> RestoreReport:
        started = time.perf_counter()
        store = open_store(self._state_dir, self._group_id, self.topic, partition)
        consumer = self._consumer_factory()
        await consumer.start()
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
            store.purge_older_than(self._now_ms() - self._dedupe_window_ms)
            store.set_checkpoint(end)
        finally:
            await consumer.stop()
        self._stores[partition] = store
        self._end_offsets[partition] = end
        return RestoreReport(partition, records, time.perf_counter() - started, start, end)

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
            if batch:
                empty_polls = 0
                continue
            # Compaction can leave the tail of the log without records below the end offset.
            position = max(position, await consumer.position(tp))
            empty_polls += 1
            if empty_polls >= 20:
                raise RuntimeError(
                    f"journal restore of {self.topic}[{tp.partition}] stalled at {position} of {end}"
                )
            await asyncio.sleep(0)
        return records

    def release(self, partition: int, *, clean: bool) -> None:
        """Forget a partition. After a clean drain every write is acknowledged, so checkpoint there."""
        store = self._stores.pop(partition, None)
        if store is None:
            return
        if clean and partition in self._end_offsets:
            store.set_checkpoint(self._end_offsets[partition])
        store.close()
        self._end_offsets.pop(partition, None)

    def release_all(self, *, clean: bool) -> None:
        for partition in list(self._stores):
            self.release(partition, clean=clean)
