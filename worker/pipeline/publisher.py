"""What the worker publishes, as records for a partition's transaction (worker/pipeline/ownership.py).

Nothing here talks to Kafka: results, dead letters and review records are built into ``OutRecord`` s and
written, with the journal record and the offset they belong to, in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.contracts import DeadLetter, Result, ReviewRecord, review_item_key
from worker.pipeline.ownership import OutRecord


@dataclass(frozen=True)
class Outbox:
    results_topic: str
    dlq_topic: str
    review_topic: str

    def result(self, result: Result) -> OutRecord:
        return OutRecord(
            self.results_topic,
            (result.msisdn or result.trace_number).encode(),
            result.model_dump_json().encode(),
            headers=(("event_id", result.event_id.encode()), ("outcome", result.outcome.value.encode())),
        )

    def dead_letter(self, letter: DeadLetter, key: bytes | None) -> OutRecord:
        return OutRecord(
            self.dlq_topic,
            key,
            letter.model_dump_json().encode(),
            headers=(("reason", letter.reason.encode()[:200]),),
        )

    def review(self, record: ReviewRecord) -> OutRecord:
        key = review_item_key(record.trace_number, record.source_partition, record.source_offset)
        return OutRecord(self.review_topic, key.encode(), record.model_dump_json().encode())
