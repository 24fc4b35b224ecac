"""The commit point never passes a command that is not finished."""

from __future__ import annotations

from worker.pipeline.offsets import OffsetTracker, PartitionOffsets


def test_commit_point_waits_for_the_lowest_unfinished_offset() -> None:
    offsets = PartitionOffsets()
    for offset in (10, 11, 12, 13):
        offsets.add(offset)
    offsets.done(11)
    offsets.done(13)
    assert offsets.committable() == 10
    offsets.done(10)
    assert offsets.committable() == 12
    offsets.done(12)
    assert offsets.committable() == 14


def test_nothing_seen_means_nothing_to_commit() -> None:
    assert PartitionOffsets().committable() is None


def test_tracker_reports_only_partitions_that_moved() -> None:
    tracker = OffsetTracker()
    tracker.of(0).add(5)
    tracker.of(0).done(5)
    tracker.of(1).add(7)
    assert tracker.to_commit() == {0: 6, 1: 7}
    tracker.mark_committed({0: 6, 1: 7})
    assert tracker.to_commit() == {}
    tracker.of(1).done(7)
    assert tracker.to_commit() == {1: 8}


def test_oldest_pending_timestamp_is_for_lag_in_seconds() -> None:
    offsets = PartitionOffsets()
    offsets.add(1, timestamp_ms=1000)
    offsets.add(2, timestamp_ms=2000)
    assert offsets.oldest_pending_timestamp_ms() == 1000
    offsets.done(1)
    assert offsets.oldest_pending_timestamp_ms() == 2000
