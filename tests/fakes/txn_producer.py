"""A transactional producer in memory that can be fenced, stall its commit, or fail, like Kafka's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import ProducerFenced


@dataclass
class Committed:
    records: list[tuple[str, bytes | None, bytes | None, int | None]]
    offsets: dict[Any, int]
    headers: list[list[tuple[str, bytes]]] = field(default_factory=list)  # each record's, in order


@dataclass
class TxnBroker:
    """What the broker knows: committed transactions per transactional id, and the current epochs."""

    committed: list[tuple[str, Committed]] = field(default_factory=list)
    epochs: dict[str, int] = field(default_factory=dict)

    def producer(self, txn_id: str) -> FakeTxnProducer:
        return FakeTxnProducer(self, txn_id)

    def fence(self, txn_id: str) -> None:
        """A new owner started a producer with this id."""
        self.epochs[txn_id] = self.epochs.get(txn_id, 0) + 1

    def records(self, topic: str) -> list[tuple[bytes | None, bytes | None]]:
        return [(k, v) for _, c in self.committed for (t, k, v, _) in c.records if t == topic]

    def headers(self, topic: str) -> list[dict[str, bytes]]:
        """Each committed record's headers on ``topic``, in order."""
        return [
            dict(h)
            for _, c in self.committed
            for (t, *_), h in zip(c.records, c.headers, strict=True)
            if t == topic
        ]

    def offsets(self) -> list[int]:
        return [o for _, c in self.committed for o in c.offsets.values()]


def _acknowledge(record: asyncio.Future[None]) -> None:
    if not record.done():  # a transaction aborted meanwhile cancels nothing: the broker answers anyway
        record.set_result(None)


class FakeTxnProducer:
    def __init__(self, broker: TxnBroker, txn_id: str) -> None:
        self.broker = broker
        self.txn_id = txn_id
        self.epoch = -1
        self._open: Committed | None = None
        self.after_commit: Callable[[Committed], Awaitable[None] | None] | None = None
        self.stall_commit = False
        self.stall_offsets = False
        self.ack_delay_s = 0.0  # how long after its send the broker acknowledges a record
        self.offsets_before_acks = 0  # offsets joined while a record of the transaction was unacknowledged
        self._unacked: list[asyncio.Future[None]] = []

    async def start(self) -> None:
        self.broker.fence(self.txn_id)
        self.epoch = self.broker.epochs[self.txn_id]

    async def stop(self) -> None:
        self._open = None

    def _check(self) -> None:
        if self.broker.epochs.get(self.txn_id) != self.epoch:
            raise ProducerFenced()

    async def begin_transaction(self) -> None:
        self._check()
        self._open = Committed([], {})

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> Awaitable[Any]:
        assert self._open is not None, "send outside a transaction"
        self._open.records.append((topic, key, value, partition))
        self._open.headers.append(list(headers or ()))
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if self.ack_delay_s > 0:
            loop.call_later(self.ack_delay_s, _acknowledge, done)
            self._unacked.append(done)
        else:
            done.set_result(None)
        return done

    async def send_offsets_to_transaction(self, offsets: dict[Any, int], group_id: str) -> None:
        if self.stall_offsets:
            await asyncio.Event().wait()  # never: partitions that cannot be added (CONCURRENT_TRANSACTIONS)
        assert self._open is not None
        self.offsets_before_acks += any(not f.done() for f in self._unacked)
        self._open.offsets.update(offsets)

    async def commit_transaction(self) -> None:
        if self.stall_commit:
            await asyncio.Event().wait()  # never: a stuck coordinator
        self._check()  # a fenced producer cannot commit
        assert self._open is not None
        if self._unacked:  # Kafka's client flushes the transaction's records before it commits
            await asyncio.gather(*self._unacked)
            self._unacked.clear()
        committed, self._open = self._open, None
        self.broker.committed.append((self.txn_id, committed))
        if self.after_commit is not None:
            maybe = self.after_commit(committed)
            if maybe is not None:
                await maybe

    async def abort_transaction(self) -> None:
        self._open = None
