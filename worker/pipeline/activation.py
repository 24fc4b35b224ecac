"""Partition activation: what happens between the group assigning a command partition and its first command.

In order, off the rebalance path (so heartbeats go on however long it takes): the partition's
transactional producer is started, which fences every earlier owner; its journal partition is restored
(``read_committed``) and the records past the dedupe window are tombstoned; the claims are caught up
(every claim the fenced owner committed is below the end offsets taken then) and this partition's expired
claims tombstoned. The runner then seeks to the committed offset and takes commands. An activation that
fails is undone and tried again (``retry_delay_s``), up to ``ECASH_RESTORE_ATTEMPTS``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence, Set
from typing import TypeVar

from worker.clock import Clock
from worker.events import EventSink, JournalRestored
from worker.pipeline.claims import claim_tombstone
from worker.pipeline.claims_index import ClaimsIndex
from worker.pipeline.journal import Journal
from worker.pipeline.ownership import PartitionWriter

__all__ = [
    "TOMBSTONES_PER_WRITE",
    "activate_with_retries",
    "chunks",
    "restore",
    "retry_delay_s",
    "to_activate",
]

log = logging.getLogger("ecash_worker.runner")

TOMBSTONES_PER_WRITE = 500
T = TypeVar("T")


def to_activate(assigned: Set[int], owned: Set[int], activating: Set[int]) -> list[int]:
    """The newly assigned partitions: neither owned nor already activating (in order)."""
    return sorted(assigned - owned - activating)


def retry_delay_s(attempt: int) -> float:
    """The wait after the ``attempt``-th failed activation (1-based): doubling from 2 s, at most 30 s."""
    return min(30.0, 2.0**attempt)


def chunks(items: Sequence[T], size: int = TOMBSTONES_PER_WRITE) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def restore(
    partition: int,
    writer: PartitionWriter,
    journal: Journal,
    claims: ClaimsIndex | None,
    *,
    commands_topic: str,
    claims_timeout_s: float,
    dedupe_window_s: float,
    sink: EventSink,
    clock: Clock,
) -> int:
    """Fence, restore, tombstone (module docstring); returns how many journal records were restored."""
    await writer.start()  # fences every earlier owner of this partition
    report = await journal.restore(partition)
    sink.emit(JournalRestored(partition, report.records, report.duration_s))
    for traces in chunks(report.expired):
        await writer.write([journal.tombstone(partition, trace) for trace in traces])
    if claims is not None:
        # The previous owner is fenced: every claim it committed is below the end offsets taken now.
        await claims.sync(timeout_s=claims_timeout_s)
        before_ms = int(clock.now().timestamp() * 1000 - dedupe_window_s * 1000)
        expired = claims.expired(commands_topic, partition, before_ms)
        tombstones = [claim_tombstone(claims.topic, c, claims.partitions) for c in expired]
        for chunk in chunks(tombstones):
            await writer.write(list(chunk))
    return report.records


async def activate_with_retries(
    partition: int,
    attempts: int,
    once: Callable[[], Awaitable[None]],
    undo: Callable[[], Awaitable[None]],
    clock: Clock,
) -> bool:
    """``once`` until it succeeds, ``undo`` after each failure; False after ``attempts`` failures."""
    for attempt in range(1, attempts + 1):
        try:
            await once()
            return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure is retried from scratch: the partition is not taken meanwhile
            log.warning(
                "activating partition %d failed (attempt %d of %d): %s: %s",
                partition,
                attempt,
                attempts,
                type(exc).__name__,
                exc,
            )
            await undo()
            if attempt < attempts:
                await clock.sleep_s(retry_delay_s(attempt))
    return False
