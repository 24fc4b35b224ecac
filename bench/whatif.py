"""Measurement-only what-ifs of the worker: each turns one safety mechanism off to measure its cost.

Unsafe by construction and never a mode of the product: they run only as ``python -m bench.run --child``
children of the benchmark.

- ``worker-nojournal``: no journal records at all (nothing is recorded before money moves).
- ``worker-notxn``: the same records, written by an idempotent producer without transactions (no
  ``AddPartitionsToTxn``, no ``EndTxn``, no markers) and no offset commits: the cost of the transactions.
- ``worker-noclaims``: no deployment-wide trace-number claims (issue 14): the cost of a claim.
- ``worker-notracing``: every tracing call a no-op (``bench.tracing_cost``'s ``untraced``): the cost of
  tracing with no exporter (``ECASH_OTEL_EXPORTER=none``, the default) on the whole worker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from worker.cli import main as cli_main


def run_worker_without_journal() -> int:
    from worker.pipeline.effects import Effects
    from worker.pipeline.job import Job
    from worker.pipeline.journal import JournalRecord
    from worker.pipeline.ownership import OutRecord

    async def write(self: Effects, job: Job, record: JournalRecord) -> float:
        return self.clock.monotonic_s()

    commit = Effects.commit

    async def commit_without_journal(
        self: Effects, job: Job, records: list[OutRecord], journal: JournalRecord | None = None
    ) -> None:
        topic = self.journal.topic
        await commit(self, job, [r for r in records if r.topic != topic], None)

    setattr(Effects, "write", write)  # noqa: B010 - a what-if build: patched on purpose, for measurement only
    setattr(Effects, "commit", commit_without_journal)  # noqa: B010 - a what-if build: patched on purpose, for measurement only
    return cli_main(["run"])


class NonTransactional:
    """The TxnProducer port over an idempotent producer: transactions become a flush, offsets are dropped."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._pending: list[Awaitable[Any]] = []

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def begin_transaction(self) -> None:
        self._pending = []

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> Awaitable[Any]:
        sent: Awaitable[Any] = await self._producer.send(
            topic, value=value, key=key, partition=partition, headers=headers
        )
        self._pending.append(sent)
        return sent

    async def send_offsets_to_transaction(self, offsets: dict[Any, int], group_id: str) -> None:
        return None

    async def commit_transaction(self) -> None:
        for sent in self._pending:
            await sent

    async def abort_transaction(self) -> None:
        self._pending = []


def run_worker_without_transactions() -> int:
    from worker.service import Worker

    def producer(self: Worker, transactional_id: str) -> NonTransactional:
        settings = self.settings
        return NonTransactional(
            AIOKafkaProducer(
                bootstrap_servers=settings.kafka_bootstrap_servers,
                enable_idempotence=True,
                acks="all",
                linger_ms=2,
                max_batch_size=256 * 1024,
                client_id="ecash-worker",
                **self.kafka_kwargs,
            )
        )

    setattr(Worker, "_transactional_producer", producer)  # noqa: B010 - a what-if build: patched on purpose, for measurement only
    return cli_main(["run"])


def run_worker_without_claims() -> int:
    """The worker without deployment-wide claims (issue 14): what a claim costs per command."""
    from worker.service import Worker

    original = Worker.__init__

    def init(self: Worker, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        # Every place the worker holds its claims index; a rename in the worker must fail here, loudly,
        # rather than measure a worker that still claims.
        for holder, name in (
            (self.processor, "_claimant"),
            (self.processor.effects, "claims"),
            (self.runner, "_claims"),
        ):
            if getattr(holder, name) is None:
                raise AttributeError(f"{type(holder).__name__}.{name} is not the claims: the worker changed")
            setattr(holder, name, None)

    setattr(Worker, "__init__", init)  # noqa: B010 - a what-if build: patched on purpose, for measurement only
    return cli_main(["run"])


def run_worker_without_tracing() -> int:
    """The worker with every tracing call a no-op, as if ``worker.tracing`` were not there."""
    from bench.tracing_cost import mode

    with mode("untraced"):
        return cli_main(["run"])


CHILDREN = {
    "worker-nojournal": run_worker_without_journal,
    "worker-notxn": run_worker_without_transactions,
    "worker-noclaims": run_worker_without_claims,
    "worker-notracing": run_worker_without_tracing,
}
