"""Peak memory of ``reconcile``'s results side against a large results topic (docs/operations.md).

    python -m bench.reconcile_memory --bootstrap HOST:PORT produce --results 200000
    python -m bench.reconcile_memory --bootstrap HOST:PORT measure --mode spool|list [--days 1|all]

``produce`` writes N realistic results (one trace number each, over 30 days ending today, WIB) to the
topic ``bench.reconcile.results``. ``measure`` reads it back in a fresh process as ``reconcile`` does and
prints the process's peak RSS: ``list`` the way it did before (every result parsed and held in a list,
then grouped per trace number; the comparison left out), ``spool`` the way it does now (streamed into
``ResultSpool``, compared per trace number). The history side is left out: it is the wallets' history
over the range, whatever the topic holds. Run each measurement in its own process: peak RSS never goes down.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from aiokafka import AIOKafkaProducer

from worker.contracts import CommandType, Outcome, ResolvedBy, Result, event_id_for
from worker.ecash.models import WIB
from worker.kafka.admin import TopicSpec, ensure_topics
from worker.ops.awaiting import parse_result
from worker.ops.reading import read_topic, stream_topic
from worker.ops.reconcile import ResultSpool, Window, reconcile
from worker.settings import Settings

TOPIC = "bench.reconcile.results"
SPAN_DAYS = 30


def result_bytes(i: int, at: datetime) -> bytes:
    trace = f"BENCH-{i:09d}"
    return (
        Result(
            event_id=event_id_for(trace, 0, i),
            trace_number=trace,
            type=CommandType.CHARGE if i % 3 else CommandType.CREDIT,
            msisdn=f"0813{i % 5000:08d}",
            amount=Decimal("150000"),
            outcome=Outcome.SUCCEEDED if i % 10 else Outcome.DECLINED,
            response_code="PROCESSED",
            transaction_number=f"2026{i:016d}",
            resolved_by=ResolvedBy.RESPONSE,
            attempts=1,
            detail="charge processed",
            completed_at=at,
            metadata={"order_id": f"A-{i}", "channel": "app"},
        )
        .model_dump_json()
        .encode()
    )


async def produce(settings: Settings, count: int) -> None:
    await ensure_topics(settings.kafka_bootstrap_servers, [TopicSpec(TOPIC, 12, 1, {})], client_kwargs={})
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=50)
    await producer.start()
    now = datetime.now(UTC)
    try:
        for i in range(count):
            at = now - timedelta(seconds=(SPAN_DAYS * 86400 * i) // count)
            await producer.send(TOPIC, result_bytes(i, at), key=f"0813{i % 5000:08d}".encode())
        await producer.flush()
    finally:
        await producer.stop()


async def measure(settings: Settings, mode: str, days: str) -> dict[str, object]:
    today = datetime.now(WIB).date()
    first: date = today - timedelta(days=SPAN_DAYS) if days == "all" else today
    window = Window(first, today)
    started = time.monotonic()
    if mode == "list":
        # What reconcile did before the spool: every result parsed and held, then grouped per trace number
        # (the comparison itself, which adds little, is left out: it now takes a spool).
        parsed = await read_topic(settings, TOPIC, "bench", lambda m: parse_result(m.value))
        results = [r for r in parsed if r is not None]
        by_trace: dict[str, list[Result]] = {}
        for r in results:
            by_trace.setdefault(r.trace_number, []).append(r)
        scope = {t for t, rs in by_trace.items() if any(window.contains(r.completed_at) for r in rs)}
        read, checked = len(results), len(scope)
    else:
        with (
            tempfile.TemporaryDirectory() as directory,
            ResultSpool(window, directory=Path(directory)) as spool,
        ):
            await stream_topic(settings, TOPIC, "bench", lambda m: spool.add_record(m.value))
            report = reconcile(spool, [], window, checked_wallets=[])
        read, checked = report.results_read, report.traces_checked
    return {
        "mode": mode,
        "window_days": (window.last_day - window.first_day).days + 1,
        "results_read": read,
        "traces_checked": checked,
        "seconds": round(time.monotonic() - started, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("produce")
    p.add_argument("--results", type=int, default=200_000)
    m = sub.add_parser("measure")
    m.add_argument("--mode", choices=["list", "spool"], required=True)
    m.add_argument("--days", choices=["1", "all"], default="all")
    args = parser.parse_args()
    settings = Settings(
        kafka_bootstrap_servers=args.bootstrap, api_username="bench", api_key="bench", api_credentials="bench"
    )
    if args.action == "produce":
        asyncio.run(produce(settings, args.results))
    else:
        print(json.dumps(asyncio.run(measure(settings, args.mode, args.days))))


if __name__ == "__main__":
    main()
