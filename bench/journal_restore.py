"""How long a worker takes to restore one journal partition holding N entries (default 1,000,000).

    python -m bench.journal_restore [--entries 1000000] [--records-per-transaction 50] [--bootstrap HOST:PORT]

Writes N realistic journal records (a finished charge: ~1 KB of JSON each) into a one-partition
compacted journal topic in transactions, as the worker writes its journal (about 50 records each under
a backlog, docs/performance.md; 0: without transactions, as this benchmark wrote before 2026-12-07),
so that the log holds a commit marker after every transaction and ends in one. Then it times
``Journal.restore`` three ways: cold (no local store: a full replay into SQLite), warm (the store's
checkpoint is current: nothing to replay), and after 10,000 more records (the incremental replay a
restart after kill -9 does). Starts its own local broker unless --bootstrap.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from worker.contracts import Command, CommandType, Outcome, ResolvedBy, Result, event_id_for
from worker.kafka.admin import TopicSpec, ensure_topics, journal_topic_spec
from worker.pipeline.journal import Journal, JournalRecord, JournalState


def sample_record(trace: str) -> bytes:
    now = datetime.now(UTC)
    command = Command(
        type=CommandType.CHARGE,
        trace_number=trace,
        msisdn="081312345678",
        amount=Decimal("150000"),
        metadata={"order_id": "A-88123", "channel": "app"},
    )
    result = Result(
        event_id=event_id_for(trace, 0, 1),
        trace_number=trace,
        type=CommandType.CHARGE,
        msisdn=command.msisdn,
        amount=command.amount,
        outcome=Outcome.SUCCEEDED,
        response_code="PROCESSED",
        transaction_number="20151234560989110928",
        trx_datetime="2015-08-13T14:05:31.346+07:00",
        resolved_by=ResolvedBy.RESPONSE,
        attempts=1,
        detail="charge processed",
        completed_at=now,
        metadata=command.metadata,
    )
    record = JournalRecord(
        trace_number=trace,
        fingerprint="0" * 32,
        state=JournalState.DONE,
        command=command,
        partition=0,
        offset=1,
        timestamp_ms=int(now.timestamp() * 1000),
        sends=1,
        result=result,
        updated_at=now,
    )
    return record.model_dump_json().encode()


async def fill(bootstrap: str, topic: str, start: int, count: int, per_transaction: int) -> float:
    """Write ``count`` records from trace number ``start``: ``per_transaction`` to a transaction (0: none)."""
    transactional = {"transactional_id": f"{topic}-fill-{start}"} if per_transaction else {}
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=0 if per_transaction else 20,
        max_batch_size=1024 * 1024,
        compression_type=None,
        **transactional,
    )
    await producer.start()
    began = time.perf_counter()
    try:
        template = sample_record("T0000000000")
        keys = (f"T{i:010d}".encode() for i in range(start, start + count))
        values = ((key, template.replace(b"T0000000000", key)) for key in keys)
        if per_transaction:
            for _ in range(0, count, per_transaction):
                async with producer.transaction():
                    for key, value in itertools.islice(values, per_transaction):
                        await producer.send(topic, value=value, key=key, partition=0)
        else:
            pending = []
            for key, value in values:
                pending.append(await producer.send(topic, value=value, key=key, partition=0))
                if len(pending) >= 20_000:
                    await asyncio.gather(*pending)
                    pending.clear()
            await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - began


async def timed_restore(bootstrap: str, topic: str, state_dir: Path) -> tuple[float, int]:
    journal = Journal(
        topic=topic,
        group_id="bench",
        state_dir=state_dir,
        consumer_factory=lambda: AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            isolation_level="read_committed",
            enable_auto_commit=False,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=16 * 1024 * 1024,
        ),
        dedupe_window_s=7 * 86_400,
    )
    report = await journal.restore(0)
    records = journal.pending_records(0)
    journal.release(0)
    return report.duration_s, records


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


async def main(entries: int, bootstrap: str | None, per_transaction: int = 50) -> dict[str, float | int]:
    broker = None
    if bootstrap is None:
        from ecash_dev.kafka import LocalKafka, LocalKafkaConfig, default_cache_dir, free_ports

        port, controller = free_ports(2)
        broker = LocalKafka(
            LocalKafkaConfig(
                data_dir=Path(tempfile.mkdtemp(prefix="restore-kafka-")),
                cache_dir=default_cache_dir(os.environ),
                port=port,
                controller_port=controller,
            )
        )
        await asyncio.to_thread(broker.start)
        bootstrap = broker.bootstrap
    try:
        topic = f"bench-journal-{uuid.uuid4().hex[:8]}"
        spec: TopicSpec = journal_topic_spec(topic, 1, 1, retention_s=7 * 86_400)
        await ensure_topics(bootstrap, [spec], client_kwargs={})
        fill_s = await fill(bootstrap, topic, 0, entries, per_transaction)
        state_dir = Path(tempfile.mkdtemp(prefix="restore-state-"))
        cold_s, records = await timed_restore(bootstrap, topic, state_dir)
        warm_s, _ = await timed_restore(bootstrap, topic, state_dir)
        await fill(bootstrap, topic, entries, 10_000, per_transaction)
        incremental_s, records_after = await timed_restore(bootstrap, topic, state_dir)
        store_bytes = await asyncio.to_thread(directory_bytes, state_dir)
    finally:
        if broker is not None:
            await asyncio.to_thread(broker.stop)
    return {
        "entries": entries,
        "records_per_transaction": per_transaction,
        "record_bytes": len(sample_record("T0000000000")),
        "fill_s": round(fill_s, 2),
        "cold_restore_s": round(cold_s, 2),
        "cold_records_per_s": round(records / cold_s),
        "warm_restore_s": round(warm_s, 3),
        "incremental_10k_restore_s": round(incremental_s, 3),
        "records_in_store": records_after,
        "store_mib": round(store_bytes / 2**20, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument(
        "--records-per-transaction", type=int, default=50, help="0: write without transactions"
    )
    parser.add_argument("--bootstrap", default=None)
    args = parser.parse_args()
    figures = asyncio.run(main(args.entries, args.bootstrap, args.records_per_transaction))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    cli()
