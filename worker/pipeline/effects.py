"""What a job's steps do to the world, in one place: every write goes through the partition's
transactional writer (ownership.py), every answer without a journal record of its own leaves its marker,
every ending emits its result event. Shared by the processor and its steps (resolving.py, claiming.py,
review_decisions.py), so that none of them writes any other way.
"""

from __future__ import annotations

from worker import tracing
from worker.clock import Clock
from worker.contracts import Attempt, Command, CommandType, Outcome, ResolvedBy, Result
from worker.core.resolution import AnswerKind
from worker.ecash.client import MoneyCallResult
from worker.ecash.codes import CallClass
from worker.events import DeadLettered, EventSink, ResultPublished
from worker.pipeline.claims import Entry, claim_key, claim_record, final_claim, new_claim
from worker.pipeline.claims_index import ClaimsIndex
from worker.pipeline.dead_letters import dead_letter
from worker.pipeline.intake import DeadLetterReason, Decision, Parsed, Rejection
from worker.pipeline.job import Job
from worker.pipeline.journal import Journal, JournalRecord, JournalState
from worker.pipeline.ownership import OutRecord, PartitionLost, PartitionWriter
from worker.pipeline.publisher import Outbox
from worker.pipeline.results import command_result

__all__ = ["Effects"]

SLEEP_STEP_S = 0.25  # how soon a sleeping job notices that it was abandoned


# What an attempt's ``outcome_class`` holds: the money call's class, or the Status Inquiry answer's kind.
# Typed here, where attempts are written; on the wire it stays a plain string (contracts.Attempt): a reader
# must take a value it does not know, and the published schema has no enum for it.
AttemptClass = CallClass | AnswerKind


class Effects:
    def __init__(
        self,
        *,
        journal: Journal,
        outbox: Outbox,
        claims: ClaimsIndex | None,
        clock: Clock,
        sink: EventSink,
        topic: str,
    ) -> None:
        self.journal = journal
        self.outbox = outbox
        self.claims = claims
        self.clock = clock
        self.sink = sink
        self.topic = topic
        self._span_topics = (outbox.results_topic, outbox.dlq_topic, outbox.review_topic, journal.topic)

    # --- writing (all of it through the partition's transactional writer) ------------------------
    @staticmethod
    def writer(job: Job) -> PartitionWriter:
        writer = job.writer if job.parent is None else job.parent.writer
        if writer is None or writer.lost is not None:
            raise PartitionLost(writer.lost if writer is not None else "no writer")
        return writer

    async def write(self, job: Job, record: JournalRecord) -> float:
        """Commit a journal record on its own (an intent, a resolution's progress); the lease start."""
        out = self.journal.out(record)
        with tracing.write_span([out], ends_message=False):
            lease_start_s = await self.writer(job).write([out])
        self.journal.remember(record, out.value)
        return lease_start_s

    async def commit(self, job: Job, records: list[OutRecord], journal: JournalRecord | None = None) -> None:
        """Finish ``job``: its records in one transaction, which frees its offset (committed with it, or
        by a later transaction within ``ECASH_COMMIT_INTERVAL_S``: ownership.py)."""
        with tracing.write_span(records, ends_message=True, prefer=self._span_topics):
            await self.writer(job).write(records, done_offset=job.offset, stream=job.stream)
        if journal is not None:
            key, topic = journal.trace_number.encode(), self.journal.topic
            written = next((r.value for r in records if r.topic == topic and r.key == key), None)
            self.journal.remember(journal, written)

    async def answer(self, job: Job, records: list[OutRecord]) -> None:
        """Finish ``job`` with an answer that has no journal record of its own: with its marker."""
        marker = self.journal.answer_marker(job.partition, job.stream, job.offset)
        await self.commit(job, [*records, marker])
        self.journal.remember_answer(job.partition, job.stream, job.offset)

    async def dead_letter(self, job: Job, reason: DeadLetterReason) -> None:
        letter = dead_letter(job, topic=job.topic or self.topic, reason=reason, now=self.clock.now())
        subject = job.intake.decision.trace_number if isinstance(job.intake, Decision) else None
        await self.answer(job, [self.outbox.dead_letter(letter, job.key, job.headers, subject=subject)])
        self.sink.emit(DeadLettered(job.partition, job.offset, reason.reason))

    def final_claim(
        self, record: JournalRecord, result: Result, owned: Entry | None = None
    ) -> list[OutRecord]:
        """The owner's outcome on its claim, for duplicates anywhere (none when claims are off). ``owned``:
        the claim as the job found it when it learnt it owns the trace number; else read from the index."""
        claims = self.claims
        if claims is None:
            return []
        key = claim_key(self.topic, record.partition, record.offset)
        entry = owned if owned is not None and owned.claim.key == key else claims.entry(key)
        claim = (
            entry.claim
            if entry is not None
            else new_claim(
                record.command,
                record.fingerprint,
                topic=self.topic,
                partition=record.partition,
                offset=record.offset,
            )
        )
        offset = entry.claim_offset if entry is not None else None
        return [claim_record(claims.topic, final_claim(claim, offset, result), claims.partitions)]

    async def finish(
        self,
        job: Job,
        record: JournalRecord,
        outcome: Outcome,
        resolved_by: ResolvedBy,
        detail: str,
        answer: MoneyCallResult | None = None,
        *,
        code: str | None = None,
        transaction_number: str | None = None,
        trx_datetime: str | None = None,
        before: list[OutRecord] | None = None,
    ) -> bool:
        """A command's outcome: its journal record, its claim's final state, its result and its offset in
        one transaction (``before``: records that go first, such as its review item)."""
        now = self.clock.now()
        result = command_result(
            record.command,
            partition=job.partition,
            offset=job.offset,
            outcome=outcome,
            resolved_by=resolved_by,
            detail=detail,
            now=now,
            attempts=record.sends,
            response_code=answer.response_code if answer else code,
            transaction_number=answer.transaction_number if answer else transaction_number,
            trx_datetime=answer.trx_datetime if answer else trx_datetime,
        )
        record = record.model_copy(update={"state": JournalState.DONE, "result": result, "updated_at": now})
        await self.commit(
            job,
            [
                *(before or []),
                self.journal.out(record),
                *self.final_claim(record, result, job.owned_claim),
                self.outbox.result(result, job.headers),
            ],
            record,
        )
        self.emit_result(
            job, outcome, resolved_by, result.response_code, record.sends, kind=record.command.type
        )
        return True

    # --- telling -------------------------------------------------------------------------------
    def emit_result(
        self,
        job: Job,
        outcome: Outcome,
        resolved_by: ResolvedBy,
        code: str | None,
        attempts: int,
        *,
        kind: CommandType | None,
    ) -> None:
        intake = job.intake
        trace = (
            intake.command.trace_number
            if isinstance(intake, Parsed)
            else intake.trace_number
            if isinstance(intake, Rejection)
            else ""
        )
        msisdn = intake.command.msisdn if isinstance(intake, Parsed) else None
        if isinstance(intake, Decision):
            trace, msisdn = intake.decision.trace_number, intake.decision.msisdn
        tracing.record_outcome(outcome.value, resolved_by.value, code)
        e2e_s = None
        if job.timestamp_ms is not None:
            e2e_s = max(0.0, self.clock.now().timestamp() - job.timestamp_ms / 1000)
        self.sink.emit(
            ResultPublished(
                trace_number=trace,
                msisdn=msisdn,
                command_type=kind or "unknown",
                outcome=outcome,
                resolved_by=resolved_by,
                response_code=code,
                attempts=attempts,
                end_to_end_s=e2e_s,
            )
        )

    def with_attempt(
        self,
        record: JournalRecord,
        command: Command,
        outcome_class: AttemptClass,
        code: str | None,
        detail: str,
        *,
        operation: str | None = None,
    ) -> JournalRecord:
        attempt = Attempt(
            at=self.clock.now(),
            operation=operation or command.type.value,
            outcome_class=str(outcome_class),  # a CallClass member is its value
            response_code=code,
            detail=detail[:500],
        )
        return record.model_copy(update={"attempts": [*record.attempts, attempt][-50:]})

    # --- waiting -------------------------------------------------------------------------------
    async def sleep(self, seconds: float, job: Job) -> bool:
        """Sleep in short steps so that a revoke or a shutdown is noticed; False if abandoned."""
        remaining = seconds
        while remaining > 0:
            if job.abandoned:
                return False
            step = min(remaining, SLEEP_STEP_S)
            await self.clock.sleep_s(step)
            remaining -= step
        return not job.abandoned
