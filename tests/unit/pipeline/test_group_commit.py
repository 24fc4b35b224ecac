"""The partition writer's group commit: a batch lingers ``flush_interval_s`` from its first write, and
writes that waited through a commit go into the next transaction at once (worker/pipeline/ownership.py)."""

from __future__ import annotations

import asyncio

from tests.fakes.txn_producer import Committed, TxnBroker
from worker.clock import FakeClock
from worker.events import NULL_SINK, EventSink, Recorder, TransactionCommitted
from worker.pipeline.ownership import OutRecord, PartitionWriter, WriterPolicy

LINGER_S = 0.02


async def writer(
    broker: TxnBroker, clock: FakeClock, max_records: int = 500, sink: EventSink = NULL_SINK
) -> PartitionWriter:
    w = PartitionWriter(
        partition=0,
        txn_id="g.commands.0",
        group_id="g",
        producer_factory=broker.producer,
        clock=clock,
        policy=WriterPolicy(flush_interval_s=LINGER_S, max_batch_records=max_records),
        mark_done=lambda _stream, _offset: None,
        committable=dict,
        offset_key=lambda _stream: ("commands", 0),
        on_lost=lambda _partition, _reason: None,
        sink=sink,
    )
    await w.start()
    return w


def committed(events: Recorder) -> list[TransactionCommitted]:
    return [e for e in events.events if isinstance(e, TransactionCommitted)]


def record(n: int) -> OutRecord:
    return OutRecord("journal", str(n).encode(), b"v")


async def test_a_write_from_idle_lingers_the_whole_interval_so_concurrent_writes_share_it() -> None:
    broker, clock = TxnBroker(), FakeClock()
    w = await writer(broker, clock)
    await asyncio.gather(w.write([record(1)]), w.write([record(2)]))
    assert clock.slept_s == [LINGER_S]
    assert [len(c.records) for _, c in broker.committed] == [2]  # one transaction for both
    await w.close(flush=False, timeout_s=1)


async def test_writes_that_waited_through_a_commit_are_committed_next_without_a_second_linger() -> None:
    broker, clock, events = TxnBroker(), FakeClock(), Recorder()
    w = await writer(broker, clock, sink=events)
    producer = w._producer
    assert producer is not None
    late: list[asyncio.Task[float]] = []

    async def slow_commit(_committed: Committed) -> None:  # the commit takes 30 ms; a write arrives meanwhile
        if not late:
            late.append(asyncio.create_task(w.write([record(2)])))
            await asyncio.sleep(0)
            clock.advance(0.03)

    producer.after_commit = slow_commit  # type: ignore[attr-defined]
    await w.write([record(1)])
    await late[0]
    assert clock.slept_s == [LINGER_S]  # only the first batch lingered: the second had waited 30 ms
    assert [len(c.records) for _, c in broker.committed] == [1, 1]
    # what ecash_transaction_wait_seconds and ecash_transaction_duration_seconds show
    seen = [(e.records, round(e.waited_s, 6), round(e.commit_s, 6)) for e in committed(events)]
    assert seen == [(1, LINGER_S, 0.03), (1, 0.03, 0.0)]
    await w.close(flush=False, timeout_s=1)


async def test_a_write_that_waited_part_of_the_interval_lingers_only_the_rest() -> None:
    broker, clock = TxnBroker(), FakeClock()
    w = await writer(broker, clock)
    producer = w._producer
    assert producer is not None
    late: list[asyncio.Task[float]] = []

    async def quick_commit(_committed: Committed) -> None:  # a 5 ms commit; a write arrives at its start
        if not late:
            late.append(asyncio.create_task(w.write([record(2)])))
            await asyncio.sleep(0)
            clock.advance(0.005)

    producer.after_commit = quick_commit  # type: ignore[attr-defined]
    await w.write([record(1)])
    await late[0]
    assert clock.slept_s[0] == LINGER_S
    assert abs(clock.slept_s[1] - (LINGER_S - 0.005)) < 1e-9
    await w.close(flush=False, timeout_s=1)


async def test_a_full_batch_does_not_linger() -> None:
    broker, clock = TxnBroker(), FakeClock()
    w = await writer(broker, clock, max_records=2)
    await w.write([record(1), record(2)])
    assert clock.slept_s == []
    await w.close(flush=False, timeout_s=1)
