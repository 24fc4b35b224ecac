"""Open review items: the journal's ``unresolved`` records, counted across the partitions a worker holds."""

from __future__ import annotations

from datetime import UTC, datetime

from worker.contracts import Command, Outcome, ResolvedBy
from worker.core.fingerprint import fingerprint
from worker.events import PipelineSnapshot
from worker.observability.metrics import Metrics
from worker.pipeline.journal import Journal, JournalRecord, JournalState
from worker.pipeline.results import command_result

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def journal(*partitions: int) -> Journal:
    j = Journal(
        topic="ecash.journal",
        group_id="g",
        state_dir=None,
        consumer_factory=lambda: None,
        dedupe_window_s=86_400,
    )
    for partition in partitions:
        j.open_in_memory(partition)
    return j


def record(trace: str, partition: int, outcome: Outcome | None, resolved_by: ResolvedBy) -> JournalRecord:
    command = Command.model_validate(
        {"type": "charge", "trace_number": trace, "msisdn": "08131234567", "amount": "1000"}
    )
    result = (
        None
        if outcome is None
        else command_result(
            command,
            partition=partition,
            offset=1,
            outcome=outcome,
            resolved_by=resolved_by,
            detail=outcome.value,
            now=NOW,
            attempts=1,
        )
    )
    return JournalRecord(
        trace_number=trace,
        fingerprint=fingerprint(command),
        state=JournalState.DONE if result else JournalState.RESOLVING,
        command=command,
        partition=partition,
        offset=1,
        result=result,
        updated_at=NOW,
    )


def test_the_journal_counts_unresolved_records_of_every_partition_it_holds() -> None:
    j = journal(0, 3)
    assert j.open_reviews() == (0, None)
    j.seed(record("T1", 0, Outcome.UNRESOLVED, ResolvedBy.STATUS_INQUIRY), 5_000)
    j.seed(record("T2", 3, Outcome.UNRESOLVED, ResolvedBy.STATUS_INQUIRY), 2_000)
    j.seed(record("T3", 3, Outcome.SUCCEEDED, ResolvedBy.RESPONSE), 1_000)
    j.seed(record("T4", 0, None, ResolvedBy.STATUS_INQUIRY), 1_000)  # still resolving: not for review
    assert j.open_reviews() == (2, 2_000)
    # The operator settles T2 (the worker writes its manual outcome): only T1 stays open.
    j.remember(record("T2", 3, Outcome.FAILED, ResolvedBy.MANUAL))
    assert j.open_reviews() == (1, 5_000)
    j.release(0)  # partition 0 moved to another worker: its items are counted there
    assert j.open_reviews() == (0, None)


def test_the_gauges_export_the_count_and_the_oldest_age() -> None:
    metrics = Metrics()
    current = {"snap": PipelineSnapshot(review_open=2, review_open_oldest_s=2400.0)}
    metrics.set_snapshot_source(lambda: current["snap"])
    assert metrics.registry.get_sample_value("ecash_review_open") == 2
    assert metrics.registry.get_sample_value("ecash_review_open_oldest_seconds") == 2400.0
    current["snap"] = PipelineSnapshot()
    assert metrics.registry.get_sample_value("ecash_review_open") == 0
    assert metrics.registry.get_sample_value("ecash_review_open_oldest_seconds") == 0
    assert Metrics().registry.get_sample_value("ecash_review_open") == 0  # before any source is set
