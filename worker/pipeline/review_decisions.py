"""An operator's review decision (``review resolve``) closes an unresolved command: the final result with
``resolved_by: manual`` and the closed review record, in one transaction with the decision's offset.
Whether it applies is decided in core/lifecycle.py; a ``failed`` decision is first checked with a fresh
Status Inquiry and refused if the API says the money moved.
"""

from __future__ import annotations

from worker.contracts import Outcome, ReviewDecision, decision_event_id
from worker.core.lifecycle import AlreadyApplied, NotApplicable, OpenItem, VerifyFirst, on_review_decision
from worker.core.resolution import ResolutionPolicy, observe
from worker.ecash.client import EcashClient
from worker.ecash.codes import CallClass
from worker.ecash.errors import FatalConfigError
from worker.events import ReviewDecisionRefused
from worker.pipeline.effects import Effects
from worker.pipeline.gate import Gate
from worker.pipeline.intake import DeadLetterReason
from worker.pipeline.job import Job
from worker.pipeline.journal import JournalRecord
from worker.pipeline.ownership import PartitionLost
from worker.pipeline.resolving import transport_class
from worker.pipeline.results import closed_review_record, manual_result

__all__ = ["ReviewDecisions"]


class ReviewDecisions:
    def __init__(
        self,
        *,
        effects: Effects,
        client: EcashClient,
        gate: Gate,
        policy: ResolutionPolicy,
        wait_for_answer_s: float,
    ) -> None:
        self._fx = effects
        self._client = client
        self._gate = gate
        self._policy = policy
        self._wait_for_answer_s = wait_for_answer_s

    async def handle(self, job: Job, decision: ReviewDecision) -> bool:
        """An operator closes an unresolved command: the final result, with ``resolved_by: manual``."""
        record = self._fx.journal.get(job.partition, decision.trace_number)
        event_id = decision_event_id(decision.trace_number, job.partition, job.offset)
        verified = False
        while True:
            step = on_review_decision(
                _open_item(record),
                trace_number=decision.trace_number,
                msisdn=decision.msisdn,
                outcome=decision.outcome,
                source_offset=decision.source_offset,
                event_id=event_id,
                verified=verified,
            )
            if isinstance(step, AlreadyApplied):
                await self._fx.commit(job, [])  # this decision again, after a crash: applied with its offset
                return True
            if isinstance(step, NotApplicable):
                await self._fx.dead_letter(
                    job, DeadLetterReason("review_decision_not_applicable", step.reason)
                )
                return True
            assert record is not None
            if isinstance(step, VerifyFirst):
                if not await self._failed_decision_holds(job, record):
                    return True
                verified = True
                continue
            await self._apply_decision(job, record, decision, event_id)
            return True

    async def _apply_decision(
        self, job: Job, record: JournalRecord, decision: ReviewDecision, event_id: str
    ) -> None:
        assert record.result is not None
        now = self._fx.clock.now()
        opened_at = record.result.completed_at
        result = manual_result(record.result, decision, event_id=event_id, now=now)
        record = record.model_copy(update={"result": result, "updated_at": now})
        closed = closed_review_record(
            record.command, decision, record=record, result=result, opened_at=opened_at, now=now
        )
        # the result continues the command's trace (kept in its journal record), else the decision's
        trace = record.trace_headers() or job.headers
        await self._fx.commit(
            job,
            [
                self._fx.outbox.review(closed, job.headers),
                self._fx.journal.out(record),
                *self._fx.final_claim(record, result),
                self._fx.outbox.result(result, trace),
            ],
            record,
        )
        self._fx.emit_result(
            job, result.outcome, result.resolved_by, None, record.sends, kind=record.command.type
        )

    async def _failed_decision_holds(self, job: Job, record: JournalRecord) -> bool:
        """A ``failed`` decision is checked with a fresh Status Inquiry first: refused if the API says the
        money moved. Waits (and says so in the log) while the API cannot answer."""
        command = record.command
        while True:
            try:
                answer = await self._client.status(
                    trace_number=command.trace_number,
                    amount=command.amount,
                    account_type_id=command.account_type_id,
                )
            except FatalConfigError as exc:
                self._gate.set_fatal(str(exc))
                answer = None
            if answer is not None and answer.call_class not in (CallClass.NOT_SENT, CallClass.AMBIGUOUS):
                break
            self._fx.sink.emit(ReviewDecisionRefused(command.trace_number, "waiting_for_status_inquiry"))
            if not await self._fx.sleep(self._wait_for_answer_s, job):
                raise PartitionLost("abandoned while verifying a review decision")
        observation = observe(answer.code, transport_class(answer.call_class), self._policy)
        if observation.kind != "processed":
            return True
        await self._fx.dead_letter(
            job,
            DeadLetterReason(
                "review_decision_refused",
                f"trace number {command.trace_number}: the decision 'failed' was refused because Status "
                f"Inquiry answers {answer.code} (the money moved); decide 'succeeded' instead",
            ),
        )
        self._fx.sink.emit(ReviewDecisionRefused(command.trace_number, "status_inquiry_processed"))
        return False


def _open_item(record: JournalRecord | None) -> OpenItem | None:
    if record is None:
        return None
    result = record.result
    return OpenItem(
        state=str(result.outcome if result is not None else record.state),
        unresolved=result is not None and result.outcome is Outcome.UNRESOLVED,
        msisdn=record.command.msisdn,
        offset=record.offset,
        result_event_id=result.event_id if result is not None else None,
    )
