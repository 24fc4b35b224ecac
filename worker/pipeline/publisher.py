"""What the worker publishes, as records for a partition's transaction (worker/pipeline/ownership.py).

Nothing here talks to Kafka: results, dead letters and review records are built into ``OutRecord`` s and
written, with the journal record and the offset they belong to, in one transaction. Their headers
(headers.py): CloudEvents binary mode (``ce_*``, ``content-type``), the W3C trace context of the message
answered (``incoming``: its headers), and the headers of before version 1 (``event_id``, ``outcome``,
``reason``), kept for the consumers that read them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from worker.contracts import DeadLetter, Result, ReviewRecord, review_item_key
from worker.pipeline.headers import cloud_event, dead_letter_id, merged, review_record_id, trace_context
from worker.pipeline.ownership import OutRecord

__all__ = ["DEFAULT_SOURCE", "Incoming", "Outbox"]

DEFAULT_SOURCE = "/ecash-worker"

Incoming = Iterable[tuple[str, bytes | None]]


@dataclass(frozen=True)
class Outbox:
    results_topic: str
    dlq_topic: str
    review_topic: str
    source: str = DEFAULT_SOURCE  # ce_source: service.py gives /ecash-worker/<commands topic>

    def result(self, result: Result, incoming: Incoming = ()) -> OutRecord:
        return OutRecord(
            self.results_topic,
            (result.msisdn or result.trace_number).encode(),
            result.model_dump_json().encode(),
            headers=merged(
                (("event_id", result.event_id.encode()), ("outcome", result.outcome.value.encode())),
                cloud_event(
                    event_id=result.event_id,
                    contract="result",
                    source=self.source,
                    time=result.completed_at,
                    subject=result.trace_number,
                ),
                trace_context(incoming),
            ),
        )

    def dead_letter(
        self, letter: DeadLetter, key: bytes | None, incoming: Incoming = (), *, subject: str | None = None
    ) -> OutRecord:
        return OutRecord(
            self.dlq_topic,
            key,
            letter.model_dump_json().encode(),
            headers=merged(
                (("reason", letter.reason.encode()[:200]),),
                cloud_event(
                    event_id=dead_letter_id(letter.topic, letter.partition, letter.offset),
                    contract="dead_letter",
                    source=self.source,
                    time=letter.dead_lettered_at,
                    subject=subject,
                ),
                trace_context(incoming),
            ),
        )

    def review(self, record: ReviewRecord, incoming: Incoming = ()) -> OutRecord:
        key = review_item_key(record.trace_number, record.source_partition, record.source_offset)
        return OutRecord(
            self.review_topic,
            key.encode(),
            record.model_dump_json().encode(),
            headers=merged(
                cloud_event(
                    event_id=review_record_id(key, record.state),
                    contract="review_record",
                    source=self.source,
                    time=record.closed_at or record.opened_at,
                    subject=record.trace_number,
                ),
                trace_context(incoming),
            ),
        )
