"""Fenced, transactional writes: one transactional producer per owned command partition.

Ownership of a command partition is proved by Kafka, not by the consumer group's word: the producer's
``transactional_id`` is derived from the group and the partition, so when a new owner starts its producer
the broker fences the previous owner's (its next commit raises ``ProducerFenced``). Everything a worker
writes for a partition (journal intents and outcomes, results, review records, dead letters, the consumed
offset) goes through that partition's writer, in transactions:

- an intent is *committed* before its Charge or Credit may leave (``write`` returns only after the commit),
  and ``write`` returns the lease start: the monotonic time taken before the transaction's records were
  sent, which is no later than the broker's append time of those records;
- an outcome, its result and its review record are one transaction, so a ``read_committed`` reader sees
  a command's result exactly once. The consumed offset joins a transaction at most every
  ``offset_interval_s`` (``ECASH_COMMIT_INTERVAL_S``; the first at once, a deferred one by a timer, the
  last when the partition is released): a message replayed from an older committed offset finds its
  outcome in the journal, committed with its result, and only moves the offset (the processor's
  ``OffsetOnly``). Two of a transaction's five requests (``AddOffsetsToTxn``, ``TxnOffsetCommit``) are
  then paid once per interval instead of once per outcome.

Writes are batched (group commit): every caller's records join the open batch, which becomes one
transaction once its oldest write has waited ``flush_interval_s`` (Kafka's ``linger.ms``, measured from the
batch's first write) or it holds ``max_batch_records``. Writes that arrive while a transaction is being
committed have waited that long already: under load the commit itself is the linger, so the next
transaction starts as soon as the previous one ends. A failure that cannot be retried
within the same producer (fenced, a fatal transaction state, a stuck commit) loses the partition: every
waiting writer gets ``PartitionLost`` and the runner re-activates it (a new producer, which fences, then a
restore of the journal) only if the group still assigns it. A producer is never re-created without that
restore, so a worker that lost a partition can never write over its successor's records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from worker.clock import Clock
from worker.events import NULL_SINK, EventSink, TransactionCommitted

__all__ = [
    "COMMANDS",
    "DECISIONS",
    "OffsetSource",
    "OffsetTarget",
    "OutRecord",
    "PartitionLost",
    "PartitionWriter",
    "ProducerFactory",
    "TxnProducer",
    "WriterPolicy",
    "Writers",
    "transactional_id",
]

log = logging.getLogger("ecash_worker.ownership")


class PartitionLost(Exception):
    """This worker may no longer write for the partition: another owner fenced it, or its producer died."""


@dataclass(frozen=True, slots=True)
class OutRecord:
    """One record to write in a partition's transaction."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


class TxnProducer(Protocol):
    """What the writer needs of a transactional producer (aiokafka's ``AIOKafkaProducer``)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def begin_transaction(self) -> None: ...

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> Awaitable[Any]: ...

    async def send_offsets_to_transaction(self, offsets: dict[Any, int], group_id: str) -> None: ...

    async def commit_transaction(self) -> None: ...

    async def abort_transaction(self) -> None: ...


ProducerFactory = Callable[[str], TxnProducer]  # transactional_id -> a producer, not started
COMMANDS = "commands"  # the stream a job came from: the commands partition, or its review decisions
DECISIONS = "decisions"
OffsetSource = Callable[[], dict[str, int]]  # stream -> the committable offset now (streams seen only)
OffsetTarget = Callable[[str], Any]  # stream -> the consumed topic-partition, as the producer wants it


def transactional_id(group_id: str, topic: str, partition: int) -> str:
    """Stable per (group, consumed partition): what fences a previous owner (Kafka Streams' first EOS)."""
    return f"{group_id}.{topic}.{partition}"


@dataclass
class _Pending:
    records: list[OutRecord] = field(default_factory=list)
    done_offsets: list[tuple[str, int]] = field(default_factory=list)
    waiters: list[asyncio.Future[float]] = field(default_factory=list)
    first_at_s: float = 0.0  # monotonic time of its first write


@dataclass(frozen=True)
class WriterPolicy:
    flush_interval_s: float = 0.005
    max_batch_records: int = 500
    start_timeout_s: float = 30.0  # InitProducerId loops without a deadline in aiokafka 0.14
    # a stuck commit (aiokafka#1145) or offsets that cannot join it: the partition is lost, re-activated
    commit_timeout_s: float = 30.0
    offset_interval_s: float = 0.0  # 0: every transaction commits the offset it frees


class PartitionWriter:
    """The transactional writer of one owned command partition."""

    def __init__(
        self,
        *,
        partition: int,
        txn_id: str,
        group_id: str,
        producer_factory: ProducerFactory,
        clock: Clock,
        policy: WriterPolicy,
        mark_done: Callable[[str, int], None],
        committable: OffsetSource,
        offset_key: OffsetTarget,
        on_lost: Callable[[int, str], None],
        sink: EventSink = NULL_SINK,
    ) -> None:
        self.partition = partition
        self._sink = sink
        self.txn_id = txn_id
        self._group_id = group_id
        self._factory = producer_factory
        self._clock = clock
        self._policy = policy
        self._mark_done = mark_done
        self._committable = committable
        self._offset_key = offset_key
        self._on_lost = on_lost
        self._producer: TxnProducer | None = None
        self._pending = _Pending()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._committed: dict[str, int] = {}
        self._offsets_at_s: float | None = None  # monotonic time of the last offset commit
        self._offsets_timer: asyncio.Task[None] | None = None  # wakes the loop for deferred offsets
        self._offsets_due = False  # the timer fired: commit the offsets even with nothing else to write
        self._final = False  # closing: the last transaction commits the offsets whatever the interval
        self.lost: str | None = None
        self.transactions = 0

    # --- life -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the producer: this fences every earlier producer with the same transactional id."""
        producer = self._factory(self.txn_id)
        try:
            await asyncio.wait_for(producer.start(), self._policy.start_timeout_s)
        except BaseException:
            await _quietly(producer.stop())
            raise
        self._producer = producer
        self._task = asyncio.create_task(self._flush_loop(), name=f"txn-writer-{self.partition}")

    async def close(self, *, flush: bool, timeout_s: float) -> None:
        """Flush what is pending (bounded), then stop the producer. Waiters left get ``PartitionLost``."""
        self._final = True
        pending = self._pending.records or self._pending.done_offsets or self._offsets_behind()
        if flush and self.lost is None and pending:
            self._wake.set()
            done = asyncio.get_running_loop().create_future()
            if not self._pending.waiters:
                self._pending.first_at_s = self._clock.monotonic_s()
            self._pending.waiters.append(done)
            with contextlib.suppress(TimeoutError, PartitionLost):
                await asyncio.wait_for(asyncio.shield(done), timeout_s)
        if self.lost is None:
            self.lost = "the partition was released"  # nothing more is written through this writer
        for task in (self._task, self._offsets_timer):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._fail_waiters(self._pending, "the partition was released")
        self._pending = _Pending()
        if self._producer is not None:
            await _quietly(self._producer.stop())
            self._producer = None

    # --- writing ----------------------------------------------------------------------------
    async def write(
        self, records: Sequence[OutRecord], *, done_offset: int | None = None, stream: str = COMMANDS
    ) -> float:
        """Add to the next transaction; return once it is committed, with the lease start (monotonic s).

        ``done_offset``: the consumed message at this offset of ``stream`` (the commands partition, or its
        review decisions) is finished by these records; its offset is committed in the same transaction, or
        in a later one if an offset was committed less than ``offset_interval_s`` ago.
        """
        if self.lost is not None:
            raise PartitionLost(self.lost)
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if not self._pending.waiters:
            self._pending.first_at_s = self._clock.monotonic_s()
        self._pending.records.extend(records)
        if done_offset is not None:
            self._pending.done_offsets.append((stream, done_offset))
        self._pending.waiters.append(waiter)
        self._wake.set()  # the flush loop lingers unless the batch is already full (_flush_loop)
        return await waiter

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            # Linger so that concurrent writers share one transaction, counted from the batch's first write.
            if len(self._pending.records) < self._policy.max_batch_records:
                waited_s = self._clock.monotonic_s() - self._pending.first_at_s
                if waited_s < self._policy.flush_interval_s:
                    await self._clock.sleep_s(self._policy.flush_interval_s - waited_s)
            self._wake.clear()
            batch, self._pending = self._pending, _Pending()
            offsets_only = self._offsets_due and self._offsets_behind()
            self._offsets_due = False
            if not batch.waiters and not offsets_only:
                continue
            waited_s = self._clock.monotonic_s() - batch.first_at_s if batch.waiters else 0.0
            try:
                lease_start_s = await self._transaction(batch)
            except asyncio.CancelledError:
                self._fail_waiters(batch, "the partition was released")
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of the transaction loses the partition, never the worker
                reason = f"transaction failed: {type(exc).__name__}: {exc}"[:300]
                self._lose(reason, batch)
                return
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_result(lease_start_s)
            commit_s = self._clock.monotonic_s() - lease_start_s
            self._sink.emit(TransactionCommitted(self.partition, len(batch.records), waited_s, commit_s))

    async def _transaction(self, batch: _Pending) -> float:
        producer = self._producer
        if producer is None:
            raise PartitionLost("no producer")
        lease_start_s = self._clock.monotonic_s()
        await producer.begin_transaction()
        try:
            sends = [
                await producer.send(
                    r.topic, value=r.value, key=r.key, partition=r.partition, headers=list(r.headers) or None
                )
                for r in batch.records
            ]
            for stream, done in batch.done_offsets:
                self._mark_done(stream, done)
            moved = self._moved_offsets()
            wait_s = 0.0 if self._final else self._offsets_wait_s()
            if moved and wait_s > 0:
                moved = {}  # within the interval: a later transaction, or the timer's, carries it
                self._defer_offsets(wait_s)
            if moved:
                if sends:
                    # Acknowledged first. A produce the broker checks against the transaction (KIP-890's
                    # verification) while the coordinator adds the offsets' partition to it
                    # (AddOffsetsToTxn) is refused as NOT_ENOUGH_REPLICAS ("unable to verify the
                    # partition has been added") and retried 20 ms later, and the retries were logged as
                    # a Kafka outage: measured, 0.4 to 5% of the transactions that carry offsets. The
                    # price is one produce round trip on those transactions (docs/performance.md).
                    await asyncio.wait_for(asyncio.gather(*sends), self._policy.commit_timeout_s)
                # A fresh dict every time: aiokafka#1098 (a reused offsets dict breaks its handler).
                offsets = {self._offset_key(s): o for s, o in moved.items()}
                # bounded too: it waits for the transaction's partitions to be added, which a coordinator
                # that keeps answering CONCURRENT_TRANSACTIONS (or none) would put off for ever
                joined = producer.send_offsets_to_transaction(offsets, self._group_id)
                await asyncio.wait_for(joined, self._policy.commit_timeout_s)
            await asyncio.wait_for(producer.commit_transaction(), self._policy.commit_timeout_s)
        except BaseException:
            await _quietly(producer.abort_transaction())
            raise
        for sent in sends:
            await sent  # resolved by the commit; surfaces a per-record error
        if moved:
            self._committed.update(moved)
            self._offsets_at_s = lease_start_s
        self.transactions += 1
        return lease_start_s

    # --- the consumed offsets -----------------------------------------------------------------
    def _moved_offsets(self) -> dict[str, int]:
        """Each stream's committable offset that is not committed yet."""
        return {s: o for s, o in self._committable().items() if self._committed.get(s) != o}

    def _offsets_behind(self) -> bool:
        return bool(self._moved_offsets())

    def _offsets_wait_s(self) -> float:
        """How long until an offset may be committed again (0: now; the first one always may)."""
        if self._offsets_at_s is None:
            return 0.0
        return max(0.0, self._offsets_at_s + self._policy.offset_interval_s - self._clock.monotonic_s())

    def _defer_offsets(self, wait_s: float) -> None:
        """Wake the flush loop once the interval is over, so that a partition that goes quiet still
        commits its last offsets (a restart would otherwise replay more than one interval of them)."""
        if self._offsets_timer is not None and not self._offsets_timer.done():
            return
        self._offsets_timer = asyncio.create_task(
            self._offsets_later(wait_s), name=f"txn-offsets-{self.partition}"
        )

    async def _offsets_later(self, wait_s: float) -> None:
        await self._clock.sleep_s(wait_s)
        self._offsets_due = True
        self._wake.set()

    # --- losing -----------------------------------------------------------------------------
    def _lose(self, reason: str, batch: _Pending) -> None:
        self.lost = reason
        self._fail_waiters(batch, reason)
        self._fail_waiters(self._pending, reason)
        self._pending = _Pending()
        log.warning("partition %d lost: %s", self.partition, reason)
        self._on_lost(self.partition, reason)

    @staticmethod
    def _fail_waiters(batch: _Pending, reason: str) -> None:
        for waiter in batch.waiters:
            if not waiter.done():
                waiter.set_exception(PartitionLost(reason))


async def _quietly(awaitable: Awaitable[Any]) -> None:
    """Best effort on the way out: the producer may already be fenced or closed."""
    try:
        await asyncio.wait_for(awaitable, 10.0)
    except Exception as exc:  # noqa: BLE001 - best effort on the way out: the producer may already be fenced or closed
        log.debug("ignored on producer cleanup: %s", exc)


class Writers:
    """The writers of the partitions this worker owns now: the processor writes only through these."""

    def __init__(self) -> None:
        self._by_partition: dict[int, PartitionWriter] = {}

    def get(self, partition: int) -> PartitionWriter:
        writer = self._by_partition.get(partition)
        if writer is None or writer.lost is not None:
            raise PartitionLost(f"partition {partition} is not owned by this worker")
        return writer

    def add(self, writer: PartitionWriter) -> None:
        self._by_partition[writer.partition] = writer

    def pop(self, partition: int) -> PartitionWriter | None:
        return self._by_partition.pop(partition, None)

    def __contains__(self, partition: int) -> bool:
        return partition in self._by_partition
