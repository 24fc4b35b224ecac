"""Which offset a partition may commit: the highest one below which every command is finished.

Pure bookkeeping. A command is finished when its result (or dead letter) is published. A command still
in flight, or waiting behind its MSISDN, or in resolution, holds the partition's commit point back.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

__all__ = ["OffsetTracker", "PartitionOffsets"]


@dataclass
class PartitionOffsets:
    """Offsets seen but not finished, for one partition."""

    _pending: set[int] = field(default_factory=set)
    _heap: list[int] = field(default_factory=list)
    _timestamps_ms: dict[int, int] = field(default_factory=dict)
    _next_after_seen: int | None = None
    committed: int | None = None  # what we last committed (the next offset to read)

    def add(self, offset: int, timestamp_ms: int | None = None) -> None:
        if offset in self._pending:
            return
        self._pending.add(offset)
        heapq.heappush(self._heap, offset)
        if timestamp_ms is not None:
            self._timestamps_ms[offset] = timestamp_ms
        if self._next_after_seen is None or offset + 1 > self._next_after_seen:
            self._next_after_seen = offset + 1

    def done(self, offset: int) -> None:
        self._pending.discard(offset)
        self._timestamps_ms.pop(offset, None)
        while self._heap and self._heap[0] not in self._pending:
            heapq.heappop(self._heap)

    def committable(self) -> int | None:
        """The offset to commit (Kafka's 'next offset to read'), or None when nothing was seen."""
        if self._heap:
            return self._heap[0]
        return self._next_after_seen

    def needs_commit(self) -> int | None:
        offset = self.committable()
        if offset is None or offset == self.committed:
            return None
        return offset

    @property
    def pending(self) -> int:
        return len(self._pending)

    def oldest_pending_timestamp_ms(self) -> int | None:
        if not self._heap:
            return None
        return self._timestamps_ms.get(self._heap[0])


@dataclass
class OffsetTracker:
    partitions: dict[int, PartitionOffsets] = field(default_factory=dict)

    def of(self, partition: int) -> PartitionOffsets:
        tracker = self.partitions.get(partition)
        if tracker is None:
            tracker = self.partitions[partition] = PartitionOffsets()
        return tracker

    def forget(self, partition: int) -> None:
        self.partitions.pop(partition, None)

    def to_commit(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for partition, tracker in self.partitions.items():
            offset = tracker.needs_commit()
            if offset is not None:
                out[partition] = offset
        return out

    def mark_committed(self, offsets: dict[int, int]) -> None:
        for partition, offset in offsets.items():
            if partition in self.partitions:
                self.partitions[partition].committed = offset
