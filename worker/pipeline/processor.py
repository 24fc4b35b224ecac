"""One command's life, carried out: the processor asks core/lifecycle.py what to do next and does it, in
flat loops (no step calls back into an earlier one). Each step's I/O lives with its concern:
effects.py (every write, through the partition's transactional writer), claiming.py (the trace number's
deployment-wide claim), resolving.py (Status Inquiry), review_decisions.py (an operator's decision).

A job returns True when its result is committed (its offset freed in the same transaction) and False when it
was abandoned because its partition was revoked or lost, or the worker is stopping: its journal record
lets the next owner carry on.

Ownership: a Charge or Credit leaves only after its intent is committed in the partition's transaction, and
only within ``send_lease_s`` of that transaction's start (lease.py, checked at the transport).
"""

from __future__ import annotations

from worker import tracing
from worker.clock import Clock
from worker.contracts import Command, CommandType, Outcome, ResolvedBy
from worker.core.fingerprint import fingerprint
from worker.core.lifecycle import (
    AgentRefused,
    AnswerDuplicate,
    Arrival,
    CallClassName,
    Claim,
    Expire,
    Finish,
    GiveUpNotSent,
    Known,
    MoneyAnswer,
    OffsetOnly,
    RejectReused,
    Resolve,
    RetryNotSent,
    Send,
    SettleEarlier,
    on_command,
    on_money_answer,
)
from worker.core.ratelimit import RateLimiter
from worker.ecash.client import EcashClient, MoneyCallResult
from worker.ecash.codes import CallClass
from worker.ecash.errors import FatalConfigError
from worker.ecash.lease import LeaseExpired, send_lease
from worker.events import CommandRejected, EventSink, FatalConfiguration, RetryScheduled
from worker.pipeline.claiming import Claimant
from worker.pipeline.claims_index import ClaimsIndex
from worker.pipeline.effects import Effects
from worker.pipeline.gate import Gate
from worker.pipeline.headers import trace_context
from worker.pipeline.intake import DeadLetterReason, Decision, Parsed, Rejection
from worker.pipeline.job import Job
from worker.pipeline.journal import Journal, JournalRecord, JournalState
from worker.pipeline.ownership import PartitionLost
from worker.pipeline.publisher import Outbox
from worker.pipeline.resolving import InheritedBound, Resolver
from worker.pipeline.results import duplicate_result, rejection_result, trace_reused_result
from worker.pipeline.review_decisions import ReviewDecisions
from worker.policies import not_sent_retry, resolution_policy
from worker.settings import Settings

__all__ = ["Job", "Processor", "ambiguity_reason"]


class Processor:
    def __init__(
        self,
        *,
        settings: Settings,
        client: EcashClient,
        journal: Journal,
        outbox: Outbox,
        gate: Gate,
        clock: Clock,
        sink: EventSink,
        topic: str,
        limiter: RateLimiter | None = None,
        claims: ClaimsIndex | None = None,
    ) -> None:
        self._client = client
        self._gate = gate
        self._limiter = limiter
        self._send_lease_s = settings.send_lease_s
        # every write and event of every step goes through this one object (effects.py)
        self.effects = Effects(
            journal=journal, outbox=outbox, claims=claims, clock=clock, sink=sink, topic=topic
        )
        policy = resolution_policy(settings)
        self._not_sent = not_sent_retry(settings)
        self._resolver = Resolver(
            effects=self.effects,
            client=client,
            gate=gate,
            policy=policy,
            bound=InheritedBound(
                send_lease_s=settings.send_lease_s,
                connect_timeout_s=settings.connect_timeout_s,
                bank_visibility_margin_s=settings.bank_visibility_margin_s,
            ),
            wait_when_refused_s=settings.resolution_schedule_s[-1],
        )
        self._claimant = (
            Claimant(effects=self.effects, claims=claims, dedupe_window_s=settings.dedupe_window_s)
            if claims is not None
            else None
        )
        self._decisions = ReviewDecisions(
            effects=self.effects,
            client=client,
            gate=gate,
            policy=policy,
            wait_for_answer_s=settings.resolution_schedule_s[0],
        )

    @property
    def resolving(self) -> int:
        """Commands being resolved through Status Inquiry now (the pipeline snapshot)."""
        return self._resolver.resolving

    async def handle(self, job: Job) -> bool:
        try:
            with tracing.command_span(job, job.topic or self.effects.topic):
                return await self._handle(job)
        except PartitionLost:
            return False  # fenced or released: the next owner carries on from the journal

    async def _handle(self, job: Job) -> bool:
        intake = job.intake
        if self.effects.journal.answered(job.partition, job.stream, job.offset):
            await self.effects.commit(
                job, []
            )  # answered before (journal.py, "answered messages"): offset only
            return True
        if isinstance(intake, DeadLetterReason):
            await self.effects.dead_letter(job, intake)
            return True
        if isinstance(intake, Rejection):
            result = rejection_result(
                intake, partition=job.partition, offset=job.offset, now=self.effects.clock.now()
            )
            await self.effects.answer(job, [self.effects.outbox.result(result, job.headers)])
            self.effects.sink.emit(CommandRejected(intake.trace_number, intake.msisdn, intake.reason))
            self.effects.emit_result(job, result.outcome, result.resolved_by, None, 0, kind=result.type)
            return True
        if isinstance(intake, Decision):
            return await self._decisions.handle(job, intake.decision)
        return await self._command(job, intake.command)

    # --- the command's path: a flat loop over lifecycle.on_command's steps -------------------------
    async def _command(self, job: Job, command: Command) -> bool:
        print_ = fingerprint(command)
        claimed = False
        while True:
            record = self.effects.journal.get(job.partition, command.trace_number)
            arrival = Arrival(
                print_,
                job.partition,
                job.offset,
                command.expires_at,
                claims=self._claimant is not None,
                claimed=claimed,
            )
            step = on_command(_known(record), arrival, self.effects.clock.now())
            if isinstance(step, Claim):
                assert self._claimant is not None
                answered = await self._claimant.claim(job, command, print_)
                if answered is not None:
                    return answered
                claimed = True
                continue
            if isinstance(step, Expire | Send):
                record = self._new_record(job, command, print_)
                if isinstance(step, Expire):
                    assert command.expires_at is not None
                    detail = f"the command expired at {command.expires_at.isoformat()} before it was sent"
                    return await self.effects.finish(
                        job, record, Outcome.FAILED, ResolvedBy.RESPONSE, detail + "; no money moved"
                    )
                return await self._drive(job, record, step)
            assert record is not None
            if isinstance(step, SettleEarlier):
                # The earlier message's money call is unsettled: settle it as that message, then look again
                # (this one is then its duplicate).
                if not await self._drive(self._earlier_job(job, record), record, Resolve()):
                    return False
                continue
            if isinstance(step, Resolve):
                return await self._drive(job, record, step)
            await self._answer_known(job, command, record, step)
            return True

    async def _answer_known(
        self,
        job: Job,
        command: Command,
        record: JournalRecord,
        step: RejectReused | OffsetOnly | AnswerDuplicate,
    ) -> None:
        """Answer a command whose trace number the journal already knows, without a money call."""
        if isinstance(step, OffsetOnly):
            # The same message again: its result was committed with its record. Publishing it again would
            # show a read_committed reader two results; only the offset moves.
            await self.effects.commit(job, [])
            return
        now = self.effects.clock.now()
        if isinstance(step, RejectReused):
            result = trace_reused_result(command, partition=job.partition, offset=job.offset, now=now)
            await self.effects.answer(job, [self.effects.outbox.result(result, job.headers)])
            self.effects.sink.emit(CommandRejected(command.trace_number, command.msisdn, "trace_reused"))
            self.effects.emit_result(job, result.outcome, result.resolved_by, None, 0, kind=command.type)
            return
        assert record.result is not None
        result = duplicate_result(record.result, partition=job.partition, offset=job.offset, now=now)
        await self.effects.answer(job, [self.effects.outbox.result(result, job.headers)])
        self.effects.emit_result(
            job, result.outcome, result.resolved_by, result.response_code, 0, kind=command.type
        )

    @staticmethod
    def _earlier_job(job: Job, record: JournalRecord) -> Job:
        """The earlier message a journal record was written for, worked on behalf of ``job``."""
        return Job(
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp_ms,
            key=job.key,
            value=None,
            headers=record.trace_headers(),  # the command's trace
            intake=Parsed(record.command),
            parent=job,
        )

    async def _drive(self, job: Job, record: JournalRecord, step: Send | Resolve) -> bool:
        """Carry a command with a journal record to its outcome: send, resolve, resend... until one of them
        ends it (True) or the job is abandoned (False)."""
        while True:
            if isinstance(step, Send):
                after_send = await self._send(job, record)
                if isinstance(after_send, bool):
                    return after_send
                record, step = after_send
            else:
                after_resolve = await self._resolver.resolve(job, record, step.reason)
                if isinstance(after_resolve, bool):
                    return after_resolve
                record, step = after_resolve

    def _new_record(self, job: Job, command: Command, print_: str) -> JournalRecord:
        return JournalRecord(
            trace_number=command.trace_number,
            fingerprint=print_,
            state=JournalState.INTENT,
            command=command,
            partition=job.partition,
            offset=job.offset,
            timestamp_ms=job.timestamp_ms,
            updated_at=self.effects.clock.now(),
            trace_context=[(name, value.decode()) for name, value in trace_context(job.headers)],
        )

    async def _send(self, job: Job, record: JournalRecord) -> bool | tuple[JournalRecord, Resolve]:
        """Send the money call after its intent, round after round while it provably never left; on to
        resolution when its answer is ambiguous."""
        fx, command = self.effects, record.command
        first_try = fx.clock.monotonic_s()
        retries = 0
        while True:
            if not await self._gate.wait_for_new_work(lambda: job.abandoned):
                return False
            if command.expires_at is not None and fx.clock.now() >= command.expires_at:
                detail = f"the command expired at {command.expires_at.isoformat()} before the API could be "
                return await fx.finish(
                    job, record, Outcome.FAILED, ResolvedBy.RESPONSE, detail + "reached; no money moved"
                )
            record, answer = await self._send_once(job, record)
            if answer is None:
                continue  # nothing left: a fresh intent next round proves the partition is still ours
            step = on_money_answer(
                MoneyAnswer(_CALL_CLASS[answer.call_class], answer.response_code, answer.fatal_config),
                kind=command.type.value,
                evidence=answer.evidence,
                retry=self._not_sent,
                retries_so_far=retries,
                elapsed_s=fx.clock.monotonic_s() - first_try,
            )
            if isinstance(step, AgentRefused):
                # Stop new money and wait for an operator (the gate); this command waits with them.
                self._gate.set_fatal(step.reason)
                fx.sink.emit(FatalConfiguration(step.reason))
            elif isinstance(step, Finish | GiveUpNotSent):
                outcome = Outcome(step.outcome) if isinstance(step, Finish) else Outcome.FAILED
                sent = answer if isinstance(step, Finish) else None  # a give-up reports no response code
                return await fx.finish(job, record, outcome, ResolvedBy.RESPONSE, step.detail, sent)
            elif isinstance(step, RetryNotSent):
                fx.sink.emit(
                    RetryScheduled(command.type.value, "api_unavailable", record.sends, step.delay_s)
                )
                if not await fx.sleep(step.delay_s, job):
                    return False
                retries += 1
            else:
                return record, Resolve(ambiguity_reason(answer))

    async def _send_once(
        self, job: Job, record: JournalRecord
    ) -> tuple[JournalRecord, MoneyCallResult | None]:
        """One round: a fresh intent committed, then the money call within its lease. No answer when
        nothing left (the lease ran out first, or the agent cannot log in)."""
        fx, command = self.effects, record.command
        if self._limiter is not None:
            await self._limiter.acquire()  # before the intent: a wait here never eats the lease
        record = record.model_copy(
            update={"state": JournalState.INTENT, "sends": record.sends + 1, "updated_at": fx.clock.now()}
        )
        lease_start_s = await fx.write(job, record)
        try:
            with send_lease(lease_start_s + self._send_lease_s, fx.clock, prepaid=self._limiter is not None):
                answer = await self._money_call(command)
        except LeaseExpired as exc:
            # A stall (or a lost broker) outlasted the lease. A fenced worker cannot commit the next intent.
            fx.sink.emit(RetryScheduled(command.type.value, "lease_expired", record.sends, 0.0))
            return fx.with_attempt(record, command, "not_sent", None, f"not sent: {exc}"), None
        except FatalConfigError as exc:
            self._gate.set_fatal(str(exc))
            fx.sink.emit(FatalConfiguration(str(exc)))
            return fx.with_attempt(record, command, "not_sent", None, f"not sent: {exc}"), None
        attempt = (answer.call_class, answer.response_code, answer.evidence)
        return fx.with_attempt(record, command, *attempt), answer

    async def _money_call(self, command: Command) -> MoneyCallResult:
        if command.type is CommandType.CHARGE:
            return await self._client.charge(
                msisdn=command.msisdn,
                amount=command.amount,
                trace_number=command.trace_number,
                transfer_type_id=command.transfer_type_id,
                description=command.description,
            )
        return await self._client.credit(
            msisdn=command.msisdn,
            amount=command.amount,
            trace_number=command.trace_number,
            transfer_type_id=command.transfer_type_id,
        )


def ambiguity_reason(answer: MoneyCallResult) -> str:
    """A bounded label for why an answer is ambiguous (the sentence is in the attempt's detail)."""
    if answer.http_status is not None and answer.http_status >= 500:
        return "http_5xx"
    if answer.response_code is not None:
        return "general_error" if answer.response_code == "GENERAL_ERROR" else "unexpected_code"
    if answer.http_status is not None:
        return "bad_body"
    if "timeout" in answer.evidence.lower() or "timed out" in answer.evidence.lower():
        return "read_timeout"
    return "connection_lost"


_CALL_CLASS: dict[CallClass, CallClassName] = {
    CallClass.SUCCEEDED: "succeeded",
    CallClass.DECLINED: "declined",
    CallClass.NOT_SENT: "not_sent",
    CallClass.AMBIGUOUS: "ambiguous",
    # the client logs in again itself; one that still reaches here may have moved money
    CallClass.SESSION_EXPIRED: "ambiguous",
}


def _known(record: JournalRecord | None) -> Known | None:
    if record is None:
        return None
    done = record.state is JournalState.DONE and record.result is not None
    return Known(record.fingerprint, done, record.partition, record.offset)
