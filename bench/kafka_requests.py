"""Every Kafka request the worker makes, counted and timed by type: ``--profile kafka-requests``.

``python -m bench.kafka_requests OUT -- -m worker.cli run`` runs the module after the ``--`` as ``python
-m`` would, with aiokafka's ``AIOKafkaClient.send`` wrapped: each request's round trip (sent to answered,
as the worker's event loop sees it) goes into a table by request type, written to OUT every 1,000
requests and at exit. Refusals are counted too: ``CONCURRENT_TRANSACTIONS`` (the coordinator still writing
the last transaction's markers) for ``AddPartitionsToTxn`` and ``EndTxn``, and a Produce with a partition
answered ``NOT_ENOUGH_REPLICAS`` (on one broker: the partition could not be verified as part of the
transaction, KIP-890).

Measurement only (docs/performance.md, "What a transaction is made of"): the wrapper costs a few
microseconds per request, so its CPU figures are near the worker's but not the same run's.
"""

from __future__ import annotations

import atexit
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.wrapped_module import run_wrapped

__all__ = ["RequestStats", "is_refusal", "main", "render"]

CONCURRENT_TRANSACTIONS = 51  # Kafka's error codes
NOT_ENOUGH_REPLICAS = 19
_WRITE_EVERY = 1000
_BUCKET_MS = 0.1  # percentiles to the tenth of a millisecond, from a histogram of fixed size
_BUCKETS = 20_000  # up to 2 s; longer round trips share the last bucket (the max is kept exactly)


@dataclass
class RequestStats:
    """Round trips of one request type: a fixed histogram, so a long run neither grows the table nor
    sorts anything on the path it measures."""

    count: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    refused: int = 0  # answered CONCURRENT_TRANSACTIONS, or a Produce NOT_ENOUGH_REPLICAS
    buckets: list[int] = field(default_factory=lambda: [0] * (_BUCKETS + 1))

    def add(self, elapsed_s: float, *, refused: bool) -> None:
        self.count += 1
        self.total_s += elapsed_s
        self.max_s = max(self.max_s, elapsed_s)
        self.refused += int(refused)
        self.buckets[min(_BUCKETS, round(elapsed_s * 1000 / _BUCKET_MS))] += 1

    def percentile_ms(self, share: float) -> float:
        """The round trip at ``share`` of the sorted ones (the bucket it falls in), 0 with none."""
        if not self.count:
            return 0.0
        rank, seen = min(self.count - 1, int(self.count * share)), 0
        for index, n in enumerate(self.buckets):
            seen += n
            if seen > rank:
                return 1000 * self.max_s if index == _BUCKETS else index * _BUCKET_MS
        return 1000 * self.max_s


def is_refusal(response: Any) -> bool:
    """The answer is a refusal to retry: ``CONCURRENT_TRANSACTIONS`` (AddPartitionsToTxn's per partition,
    EndTxn's), or ``NOT_ENOUGH_REPLICAS`` for a partition of a Produce."""
    if getattr(response, "error_code", None) == CONCURRENT_TRANSACTIONS:
        return True
    errors = getattr(response, "errors", None)
    if isinstance(errors, list):
        return any(code == CONCURRENT_TRANSACTIONS for _topic, parts in errors for _partition, code in parts)
    topics = getattr(response, "topics", None)  # a Produce's answer: (partition, error_code, offset, ...)
    if isinstance(topics, list):
        return any(part[1] == NOT_ENOUGH_REPLICAS for _topic, parts in topics for part in parts)
    return False


def render(stats: dict[str, RequestStats]) -> str:
    """One line per request type, most frequent first: count, mean, p50, p99, max, refusals."""
    head = ("count", 8), ("mean ms", 8), ("p50", 7), ("p99", 7), ("max", 7), ("refused", 8)
    lines = [f"{'request':34s} " + " ".join(f"{title:>{width}s}" for title, width in head)]
    for name, s in sorted(stats.items(), key=lambda kv: -kv[1].count):
        p50, p99 = s.percentile_ms(0.5), s.percentile_ms(0.99)
        mean = 1000 * s.total_s / s.count if s.count else 0.0
        lines.append(
            f"{name:34s} {s.count:8d} {mean:8.2f} {p50:7.2f} {p99:7.2f} {1000 * s.max_s:7.1f} {s.refused:8d}"
        )
    return "\n".join(lines) + "\n"


def _install(out: Path) -> None:
    from aiokafka import client

    stats: dict[str, RequestStats] = {}
    send: Callable[..., Awaitable[Any]] = client.AIOKafkaClient.send
    seen = [0]

    def write() -> None:
        out.write_text(render(stats), encoding="utf-8")

    async def timed_send(self: Any, node_id: Any, request: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        response: Any = None
        try:
            response = await send(self, node_id, request, **kwargs)
            return response
        finally:
            name = type(request).__name__.removesuffix("Request")
            stats.setdefault(name, RequestStats()).add(
                time.monotonic() - started, refused=is_refusal(response)
            )
            seen[0] += 1
            if seen[0] % _WRITE_EVERY == 0:
                write()

    client.AIOKafkaClient.send = timed_send
    atexit.register(write)


def main(argv: Sequence[str] | None = None) -> int:
    return run_wrapped("bench.kafka_requests", _install, argv)


if __name__ == "__main__":
    sys.exit(main())
