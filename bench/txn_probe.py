"""How long one Kafka transaction takes, phase by phase, with aiokafka's waits as they are or as we set them.

    python -m bench.txn_probe                      # the worker's settings (worker/kafka/clients.py)
    python -m bench.txn_probe --aiokafka-defaults  # aiokafka's: 20 ms and 100 ms waits, 2 ms linger
    python -m bench.txn_probe --producers 12       # twelve partitions' writers in one loop
    python -m bench.txn_probe --offsets-while-producing  # the order before: offsets join while records fly

Each producer runs ``--transactions`` transactions back to back, each of ``--records`` records and an
offset commit, as a partition writer does (docs/performance.md, "Before and after this round"), on a
broker started here (or ``--bootstrap``). Printed per phase: begin, the sends, ``send_offsets_to_transaction``
(where the ``AddPartitionsToTxn`` wait shows, and, as the writer does, the records' acknowledgements before
it), the commit, and the whole transaction, p50/p90/mean in ms; and how many produce answers were refusals
that aiokafka retried (``NOT_ENOUGH_REPLICAS`` on one broker: a partition checked against the transaction
while the offsets' partition was being added, docs/performance.md, "Kafka's transaction check").
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiokafka.producer.sender
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from bench.run import broker
from worker.kafka.clients import CONCURRENT_TRANSACTIONS_BACKOFF_S, TXN_RETRY_BACKOFF_MS

__all__ = ["main"]

PHASES = ("begin", "sends", "offsets", "commit", "total")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.txn_probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--producers", type=int, default=1, help="transactional producers in one loop")
    parser.add_argument("--transactions", type=int, default=200, help="per producer")
    parser.add_argument("--records", type=int, default=20, help="per transaction")
    parser.add_argument("--aiokafka-defaults", action="store_true", help="aiokafka's waits, not ours")
    parser.add_argument(
        "--offsets-while-producing",
        action="store_true",
        help="add the offsets while the records are in flight (the writer's order before 2026-12-07)",
    )
    parser.add_argument("--bootstrap", default=None, help="an existing broker (default: one started here)")
    return parser.parse_args(argv)


async def _topics(bootstrap: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("probe-out", partitions, 1), NewTopic("probe-in", partitions, 1)])
    except TopicAlreadyExistsError:
        pass  # a broker the probe ran on before (--bootstrap)
    finally:
        await admin.close()
    group = AIOKafkaConsumer("probe-in", bootstrap_servers=bootstrap, group_id="probe")
    await group.start()  # the group exists, so that offsets can be committed to it
    await group.stop()


async def _one(bootstrap: str, n: int, args: argparse.Namespace, phases: dict[str, list[float]]) -> None:
    ours = not args.aiokafka_defaults
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=f"probe-{n}",
        enable_idempotence=True,
        acks="all",
        linger_ms=0 if ours else 2,
        retry_backoff_ms=TXN_RETRY_BACKOFF_MS if ours else 100,
    )
    await producer.start()
    try:
        for i in range(args.transactions):
            marks = [time.perf_counter()]
            await producer.begin_transaction()
            marks.append(time.perf_counter())
            sent = [
                await producer.send("probe-out", b"v" * 200, key=b"k", partition=n)
                for _ in range(args.records)
            ]
            marks.append(time.perf_counter())
            if not args.offsets_while_producing:
                await asyncio.gather(*sent)
            await producer.send_offsets_to_transaction({TopicPartition("probe-in", n): i + 1}, "probe")
            marks.append(time.perf_counter())
            await producer.commit_transaction()
            for future in sent:
                await future
            marks.append(time.perf_counter())
            for name, start, end in zip(PHASES, marks, marks[1:], strict=False):
                phases[name].append((end - start) * 1000)
            phases["total"].append((marks[-1] - marks[0]) * 1000)
    finally:
        await producer.stop()


class _Refusals(logging.Handler):
    """aiokafka's sender logs each produce answer it retries: "Got error produce response ..." """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += str(record.msg).startswith("Got error produce response")


async def probe(bootstrap: str, args: argparse.Namespace) -> dict[str, list[float]]:
    aiokafka.producer.sender.BACKOFF_OVERRIDE = (
        0.02 if args.aiokafka_defaults else CONCURRENT_TRANSACTIONS_BACKOFF_S
    )
    await _topics(bootstrap, max(args.producers, 1))
    phases: dict[str, list[float]] = {name: [] for name in PHASES}
    await asyncio.gather(*(_one(bootstrap, n, args, phases) for n in range(args.producers)))
    return phases


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    where = argparse.Namespace(bootstrap=args.bootstrap, broker_pid=None)
    refusals = _Refusals()
    sender_log = logging.getLogger("aiokafka.producer.sender")
    sender_log.addHandler(refusals)
    with broker(where, Path(tempfile.mkdtemp(prefix="ecash-txn-probe-"))) as (bootstrap, _pid):
        phases = asyncio.run(probe(bootstrap, args))
    sender_log.removeHandler(refusals)
    waits = "aiokafka's" if args.aiokafka_defaults else "the worker's"
    what = f"{args.transactions} transactions of {args.records} records"
    order = "offsets added while producing" if args.offsets_while_producing else "offsets after the acks"
    print(f"{args.producers} producer(s) x {what}, {waits} waits, {order}:")
    for name in PHASES:
        values = sorted(phases[name])
        p90 = values[int(len(values) * 0.9)]
        p50, mean = statistics.median(values), statistics.mean(values)
        print(f"  {name:8s} p50 {p50:7.2f} ms  p90 {p90:7.2f}  mean {mean:7.2f}")
    total = args.producers * args.transactions
    print(f"  produce answers refused and retried: {refusals.count} in {total} transactions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
