"""One command's life: journal check, intent, the money call, resolution, outcome, result.

The decisions (what a code means, when a status answer is believed) live in worker.ecash.codes and
worker.core.resolution; this module sequences them with the journal and the partition's transactional
writer (ownership.py). A job returns True when its result is committed (with its offset, in one
transaction) and False when it was abandoned because its partition was revoked or lost, or the worker is
stopping: its journal record lets the next owner carry on.

Ownership: a Charge or Credit leaves only after its intent is committed in the partition's transaction, and
only within ``send_lease_s`` of that transaction's start (lease.py, checked at the transport). An intent
inherited from an earlier owner is not believed "not found" before its append time + the lease + the
connect and request timeouts + ``bank_visibility_margin_s`` (docs/design.md, "Ownership").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from worker.clock import Clock
from worker.contracts import (
    Attempt,
    Command,
    CommandType,
    Outcome,
    ResolvedBy,
    Result,
    ReviewDecision,
    decision_event_id,
)
from worker.core.corroboration import (
    Corroborated,
    HistoryLine,
    Verdict,
    corroborate,
    echo_mismatch,
    expected_for,
    history_unreadable,
    matches,
)
from worker.core.fingerprint import fingerprint
from worker.core.lifecycle import (
    AgentRefused,
    AlreadyApplied,
    AnswerDuplicate,
    Arrival,
    CallClassName,
    Claim,
    Expire,
    Finish,
    GiveUpNotSent,
    Known,
    MoneyAnswer,
    NotApplicable,
    NotSentRetry,
    OffsetOnly,
    OpenItem,
    RejectReused,
    Resend,
    Resolve,
    RetryNotSent,
    Send,
    SettleEarlier,
    VerifyFirst,
    on_command,
    on_conclusion,
    on_money_answer,
    on_review_decision,
)
from worker.core.ratelimit import RateLimiter
from worker.core.resolution import (
    Conclude,
    InquireAt,
    ResolutionPolicy,
    ResolutionState,
    apply_answer,
    describe,
    next_step,
    observe,
    uncorroborated,
)
from worker.ecash.client import EcashClient, MoneyCallResult
from worker.ecash.codes import CallClass
from worker.ecash.errors import FatalConfigError
from worker.ecash.lease import LeaseExpired, send_lease
from worker.observability.events import (
    CommandRejected,
    DeadLettered,
    EventSink,
    FatalConfiguration,
    ResolutionFinished,
    ResolutionStarted,
    ResultPublished,
    RetryScheduled,
    ReviewDecisionRefused,
    StatusInquiryAnswered,
)
from worker.pipeline.claims import (
    claim_key,
    claim_record,
    claim_tombstone,
    final_claim,
    new_claim,
    standing,
)
from worker.pipeline.claims_index import ClaimsIndex
from worker.pipeline.dead_letters import dead_letter
from worker.pipeline.gate import Gate
from worker.pipeline.intake import DeadLetterReason, Decision, Intake, Parsed, Rejection
from worker.pipeline.journal import Journal, JournalRecord, JournalState
from worker.pipeline.ownership import COMMANDS, OutRecord, PartitionLost, PartitionWriter
from worker.pipeline.publisher import Outbox
from worker.pipeline.results import (
    claimed_elsewhere_result,
    closed_review_record,
    command_result,
    duplicate_result,
    manual_result,
    rejection_result,
    review_record,
    trace_reused_result,
)
from worker.settings import Settings


@dataclass(eq=False)
class Job:
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    intake: Intake
    cancelled: bool = False
    parent: Job | None = None  # set when a job works on behalf of another (an earlier message's record)
    # The writer of the partition as it was when the job started: if that ownership ends (fenced, lost,
    # released), the job can write nothing more, even if the partition is owned again later.
    writer: PartitionWriter | None = None
    stream: str = COMMANDS  # or DECISIONS: a review decision from the partition's decisions topic
    topic: str | None = None  # the topic it was read from, when not the commands topic
    lane: str = field(init=False)

    def __post_init__(self) -> None:
        # One lane per (partition, MSISDN): a wallet's commands are in order within the partition they
        # arrive on. A command misrouted to another partition (another partitioner) gets a lane of its
        # own there, so an exact duplicate waiting for the first command's outcome (claims.py) never waits
        # in the very lane that command must pass through (which would deadlock after a failover).
        intake = self.intake
        if isinstance(intake, Parsed):
            wallet = intake.command.msisdn
        elif isinstance(intake, Decision):
            wallet = intake.decision.msisdn
        elif isinstance(intake, Rejection):
            wallet = intake.msisdn or f"trace:{intake.trace_number}"
        else:
            wallet = "dlq"
        self.lane = f"{self.partition}:{wallet}"

    @property
    def lane_key(self) -> str:
        return self.lane

    @property
    def needs_slot(self) -> bool:
        """Commands take an in-flight slot; decisions, rejections and dead letters do not (lanes.py)."""
        return isinstance(self.intake, Parsed)

    @property
    def abandoned(self) -> bool:
        """Its partition was revoked or the worker is stopping: stop at the next safe point."""
        return self.cancelled or (self.parent is not None and self.parent.abandoned)


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
        self._settings = settings
        self._claims = claims
        self._client = client
        self._journal = journal
        self._outbox = outbox
        self._limiter = limiter
        self._gate = gate
        self._clock = clock
        self._sink = sink
        self._topic = topic
        self._policy = ResolutionPolicy.from_settings(settings)
        self._not_sent = NotSentRetry(
            initial_s=settings.not_sent_backoff_initial_s,
            max_s=settings.not_sent_backoff_max_s,
            deadline_s=settings.not_sent_deadline_s,
        )
        self.resolving = 0

    async def handle(self, job: Job) -> bool:
        try:
            return await self._handle(job)
        except PartitionLost:
            return False  # fenced or released: the next owner carries on from the journal

    async def _handle(self, job: Job) -> bool:
        intake = job.intake
        if self._journal.answered(job.partition, job.stream, job.offset):
            await self._commit(job, [])  # answered before (journal.py, "answered messages"): offset only
            return True
        if isinstance(intake, DeadLetterReason):
            await self._dead_letter(job, intake)
            return True
        if isinstance(intake, Rejection):
            result = rejection_result(
                intake, partition=job.partition, offset=job.offset, now=self._clock.now()
            )
            await self._answer(job, [self._outbox.result(result)])
            self._sink.emit(CommandRejected(intake.trace_number, intake.msisdn, intake.reason))
            self._emit_result(job, result.outcome, result.resolved_by, None, 0, kind=result.type)
            return True
        if isinstance(intake, Decision):
            return await self._decision(job, intake.decision)
        return await self._command(job, intake.command)

    async def _decision(self, job: Job, decision: ReviewDecision) -> bool:
        """An operator closes an unresolved command: the final result, with ``resolved_by: manual``."""
        record = self._journal.get(job.partition, decision.trace_number)
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
                await self._commit(job, [])  # this decision again, after a crash: applied with its offset
                return True
            if isinstance(step, NotApplicable):
                await self._dead_letter(job, DeadLetterReason("review_decision_not_applicable", step.reason))
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
        now = self._clock.now()
        opened_at = record.result.completed_at
        result = manual_result(record.result, decision, event_id=event_id, now=now)
        record = record.model_copy(update={"result": result, "updated_at": now})
        closed = closed_review_record(
            record.command, decision, record=record, result=result, opened_at=opened_at, now=now
        )
        await self._commit(
            job,
            [
                self._outbox.review(closed),
                self._journal.out(record),
                *self._final_claim(record, result),
                self._outbox.result(result),
            ],
            record,
        )
        self._emit_result(
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
            self._sink.emit(ReviewDecisionRefused(command.trace_number, "waiting_for_status_inquiry"))
            if not await self._sleep(self._settings.resolution_schedule_s[0], job):
                raise PartitionLost("abandoned while verifying a review decision")
        observation = observe(answer.code, _transport_class(answer.call_class), self._policy)
        if observation.kind != "processed":
            return True
        await self._dead_letter(
            job,
            DeadLetterReason(
                "review_decision_refused",
                f"trace number {command.trace_number}: the decision 'failed' was refused because Status "
                f"Inquiry answers {answer.code} (the money moved); decide 'succeeded' instead",
            ),
        )
        self._sink.emit(ReviewDecisionRefused(command.trace_number, "status_inquiry_processed"))
        return False

    # --- the command's path: a flat loop over lifecycle.on_command's steps -------------------------
    async def _command(self, job: Job, command: Command) -> bool:
        print_ = fingerprint(command)
        claimed = False
        while True:
            record = self._journal.get(job.partition, command.trace_number)
            arrival = Arrival(
                print_,
                job.partition,
                job.offset,
                command.expires_at,
                claims=self._claims is not None,
                claimed=claimed,
            )
            step = on_command(_known(record), arrival, self._clock.now())
            if isinstance(step, Claim):
                answered = await self._claim(job, command, print_)
                if answered is not None:
                    return answered
                claimed = True
                continue
            if isinstance(step, Expire | Send):
                record = self._new_record(job, command, print_)
                if isinstance(step, Expire):
                    assert command.expires_at is not None
                    detail = f"the command expired at {command.expires_at.isoformat()} before it was sent"
                    return await self._finish(
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
            await self._commit(job, [])
            return
        now = self._clock.now()
        if isinstance(step, RejectReused):
            result = trace_reused_result(command, partition=job.partition, offset=job.offset, now=now)
            await self._answer(job, [self._outbox.result(result)])
            self._sink.emit(CommandRejected(command.trace_number, command.msisdn, "trace_reused"))
            self._emit_result(job, result.outcome, result.resolved_by, None, 0, kind=command.type)
            return
        assert record.result is not None
        result = duplicate_result(record.result, partition=job.partition, offset=job.offset, now=now)
        await self._answer(job, [self._outbox.result(result)])
        self._emit_result(job, result.outcome, result.resolved_by, result.response_code, 0, kind=command.type)

    @staticmethod
    def _earlier_job(job: Job, record: JournalRecord) -> Job:
        """The earlier message a journal record was written for, worked on behalf of ``job``."""
        return Job(
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp_ms,
            key=job.key,
            value=None,
            headers=[],
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
                after_resolve = await self._resolve(job, record, step.reason)
                if isinstance(after_resolve, bool):
                    return after_resolve
                record, step = after_resolve

    async def _claim(self, job: Job, command: Command, print_: str) -> bool | None:
        """Claim the trace number for the whole deployment (claims.py). None: this command owns it, go on;
        True: answered without a money call (a duplicate, or a trace number another command owns)."""
        claims = self._claims
        assert claims is not None
        key = claim_key(self._topic, job.partition, job.offset)
        if not claims.has(key):  # not already claimed by this message (an earlier life, a crash)
            claim = new_claim(command, print_, topic=self._topic, partition=job.partition, offset=job.offset)
            await self._writer(job).write([claim_record(claims.topic, claim, claims.partitions)])
            while not claims.has(key):  # read-your-write: the index has read up to this claim
                if not await claims.wait_for_key(key, lambda: job.abandoned):
                    return False
        while True:
            forgotten_ms = int((self._clock.now().timestamp() - self._settings.dedupe_window_s) * 1000)
            found = standing(key, claims.entries(command.trace_number), forgotten_before_ms=forgotten_ms)
            if found is None:
                raise RuntimeError(f"the claim {key} left the index before it was decided")
            if found.kind == "owner":
                return None
            # This command lost: its own claim goes (tombstoned with its answer), the owner's stays.
            release = claim_tombstone(
                claims.topic,
                new_claim(command, print_, topic=self._topic, partition=job.partition, offset=job.offset),
                claims.partitions,
            )
            owner = found.owner.claim
            if found.kind == "reused":
                result = claimed_elsewhere_result(
                    command, owner, partition=job.partition, offset=job.offset, now=self._clock.now()
                )
                await self._answer(job, [release, self._outbox.result(result)])
                self._sink.emit(CommandRejected(command.trace_number, command.msisdn, "trace_reused"))
                self._emit_result(job, result.outcome, result.resolved_by, None, 0, kind=command.type)
                return True

            # An exact duplicate: the owner's outcome, once it has one (its claim's final record).
            entry = claims.entry(owner.key)
            while entry is not None and entry.claim.result is None:
                if not await claims.wait_for_key(owner.key, lambda: job.abandoned):
                    return False
                entry = claims.entry(owner.key)
            if entry is None or entry.claim.result is None:
                continue  # the owner's claim aged out meanwhile: decide again
            result = duplicate_result(
                entry.claim.result,
                partition=job.partition,
                offset=job.offset,
                now=self._clock.now(),
                owner=owner.where,
            )
            await self._answer(job, [release, self._outbox.result(result)])
            self._emit_result(
                job, result.outcome, result.resolved_by, result.response_code, 0, kind=command.type
            )
            return True

    def _final_claim(self, record: JournalRecord, result: Result) -> list[OutRecord]:
        """The owner's outcome on its claim, for duplicates anywhere (none when claims are off)."""
        claims = self._claims
        if claims is None:
            return []
        key = claim_key(self._topic, record.partition, record.offset)
        entry = claims.entry(key)
        claim = (
            entry.claim
            if entry is not None
            else new_claim(
                record.command,
                record.fingerprint,
                topic=self._topic,
                partition=record.partition,
                offset=record.offset,
            )
        )
        offset = entry.claim_offset if entry is not None else None
        return [claim_record(claims.topic, final_claim(claim, offset, result), claims.partitions)]

    def _new_record(self, job: Job, command: Command, print_: str) -> JournalRecord:
        return JournalRecord(
            trace_number=command.trace_number,
            fingerprint=print_,
            state=JournalState.INTENT,
            command=command,
            partition=job.partition,
            offset=job.offset,
            timestamp_ms=job.timestamp_ms,
            updated_at=self._clock.now(),
        )

    async def _send(self, job: Job, record: JournalRecord) -> bool | tuple[JournalRecord, Resolve]:
        """Send the money call after its intent; on to resolution when its answer is ambiguous."""
        command = record.command
        first_try = self._clock.monotonic_s()
        retries = 0
        while True:
            if not await self._gate.wait_for_new_work(lambda: job.abandoned):
                return False
            if command.expires_at is not None and self._clock.now() >= command.expires_at:
                return await self._finish(
                    job,
                    record,
                    Outcome.FAILED,
                    ResolvedBy.RESPONSE,
                    f"the command expired at {command.expires_at.isoformat()} before the API could be "
                    "reached; no money moved",
                )
            if self._limiter is not None:
                await self._limiter.acquire()  # before the intent: a wait here never eats the lease
            record = record.model_copy(
                update={
                    "state": JournalState.INTENT,
                    "sends": record.sends + 1,
                    "updated_at": self._clock.now(),
                }
            )
            lease_start_s = await self._write(job, record)
            try:
                with send_lease(
                    lease_start_s + self._settings.send_lease_s,
                    self._clock,
                    prepaid=self._limiter is not None,
                ):
                    answer = await self._money_call(command)
            except LeaseExpired as exc:
                # Nothing left: a stall (or a lost broker) outlasted the lease. A fresh intent proves we
                # still own the partition; a fenced worker cannot commit one.
                record = self._with_attempt(record, command, "not_sent", None, f"not sent: {exc}")
                self._sink.emit(RetryScheduled(command.type.value, "lease_expired", record.sends, 0.0))
                continue
            except FatalConfigError as exc:
                self._gate.set_fatal(str(exc))
                self._sink.emit(FatalConfiguration(str(exc)))
                record = self._with_attempt(record, command, "not_sent", None, f"not sent: {exc}")
                continue
            record = self._with_attempt(
                record, command, answer.call_class.value, answer.response_code, answer.evidence
            )
            step = on_money_answer(
                MoneyAnswer(_CALL_CLASS[answer.call_class], answer.response_code, answer.fatal_config),
                kind=command.type.value,
                evidence=answer.evidence,
                retry=self._not_sent,
                retries_so_far=retries,
                elapsed_s=self._clock.monotonic_s() - first_try,
            )
            if isinstance(step, AgentRefused):
                # Stop new money and wait for an operator (the gate); this command waits with them.
                self._gate.set_fatal(step.reason)
                self._sink.emit(FatalConfiguration(step.reason))
                continue
            if isinstance(step, Finish):
                return await self._finish(
                    job, record, Outcome(step.outcome), ResolvedBy.RESPONSE, step.detail, answer
                )
            if isinstance(step, GiveUpNotSent):
                return await self._finish(job, record, Outcome.FAILED, ResolvedBy.RESPONSE, step.detail)
            if isinstance(step, RetryNotSent):
                self._sink.emit(
                    RetryScheduled(command.type.value, "api_unavailable", record.sends, step.delay_s)
                )
                if not await self._sleep(step.delay_s, job):
                    return False
                retries += 1
                continue
            return record, Resolve(ambiguity_reason(answer))

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

    # --- resolution ------------------------------------------------------------------------------
    async def _resolve(
        self, job: Job, record: JournalRecord, reason: str
    ) -> bool | tuple[JournalRecord, Send]:
        command = record.command
        if record.resolution is None:
            # The server may still be working on the request until the request timeout after it was
            # sent. An ambiguity seen now counts from now. An intent found in the journal (inherited from
            # an earlier owner, or an earlier life of this one) counts from the last moment its request
            # could have been written: its append time (the broker's clock) + the lease + the connect
            # timeout (the residual window, docs/design.md); the schedule then adds the request timeout
            # and the grace (the bank's visibility margin) before any "not found" is believed.
            found_in_journal = reason == "journal_intent"
            started_s = self._inherited_start_s(record) if found_in_journal else self._clock.now().timestamp()
            state = ResolutionState.start(started_s, resubmits=record.resubmits)
            record = record.model_copy(
                update={
                    "state": JournalState.RESOLVING,
                    "resolution": state.to_dict(),
                    "updated_at": self._clock.now(),
                }
            )
            await self._write(job, record)
            self._sink.emit(ResolutionStarted(command.trace_number, command.msisdn, reason))
        else:
            state = ResolutionState.from_dict(record.resolution)
        self.resolving += 1
        try:
            return await self._resolution_loop(job, record, state)
        finally:
            self.resolving -= 1

    async def _resolution_loop(
        self, job: Job, record: JournalRecord, state: ResolutionState
    ) -> bool | tuple[JournalRecord, Send]:
        command = record.command
        found: Corroborated | None = None
        decision = next_step(
            self._policy, state, self._clock.now().timestamp(), pace_factor=self._gate.pace_factor()
        )
        while isinstance(decision, InquireAt):
            if not await self._sleep(decision.delay_s(self._clock.now().timestamp()), job):
                return False
            try:
                answer = await self._client.status(
                    trace_number=command.trace_number,
                    amount=command.amount,
                    account_type_id=command.account_type_id,
                )
            except FatalConfigError as exc:
                # The agent cannot log in: nothing can be learnt now. Wait (the deadline still runs).
                self._gate.set_fatal(str(exc))
                self._sink.emit(FatalConfiguration(str(exc)))
                if not await self._sleep(self._settings.resolution_schedule_s[-1], job):
                    return False
                decision = next_step(
                    self._policy, state, self._clock.now().timestamp(), pace_factor=self._gate.pace_factor()
                )
                continue
            observation = observe(answer.code, _transport_class(answer.call_class), self._policy)
            detail = answer.evidence
            if observation.kind == "processed":
                # Asked by trace number and amount only: believed once History shows it for this MSISDN.
                verdict: Verdict | None = echo_mismatch(expected_for(command), answer.trace_number)
                if verdict is None:
                    verdict = await self._find_transaction(command, record)
                if isinstance(verdict, Corroborated):
                    found = verdict
                else:
                    observation = uncorroborated(verdict.evidence)
                detail = f"{verdict.evidence}; {answer.evidence}"
            state, decision = apply_answer(
                self._policy,
                state,
                observation,
                self._clock.now().timestamp(),
                pace_factor=self._gate.pace_factor(),
            )
            self._sink.emit(StatusInquiryAnswered(command.trace_number, observation.kind, answer.code))
            record = self._with_attempt(
                record, command, observation.kind, answer.code, detail, operation="status"
            )
            record = record.model_copy(
                update={"resolution": state.to_dict(), "updated_at": self._clock.now()}
            )
            if isinstance(decision, InquireAt):
                await self._write(job, record)
        return await self._conclude(job, record, state, decision, found)

    async def _conclude(
        self,
        job: Job,
        record: JournalRecord,
        state: ResolutionState,
        decision: Conclude,
        found: Corroborated | None = None,
    ) -> bool | tuple[JournalRecord, Send]:
        command = record.command
        duration_s = self._clock.now().timestamp() - state.started_at_s
        self._sink.emit(
            ResolutionFinished(command.trace_number, decision.outcome, state.inquiries, duration_s)
        )
        step = on_conclusion(decision, kind=command.type.value, evidence=found.evidence if found else None)
        if isinstance(step, Finish):
            if step.outcome != "succeeded":
                return await self._finish(
                    job, record, Outcome(step.outcome), ResolvedBy.STATUS_INQUIRY, step.detail
                )
            assert found is not None  # on_conclusion refuses a "succeeded" without its corroboration
            return await self._finish(
                job,
                record,
                Outcome.SUCCEEDED,
                ResolvedBy.STATUS_INQUIRY,
                step.detail,
                code="PROCESSED",
                transaction_number=found.transaction_number,
                trx_datetime=found.trx_datetime,
            )
        if isinstance(step, Resend):
            resubmits = state.resubmits + 1
            record = record.model_copy(
                update={"resolution": None, "state": JournalState.INTENT, "resubmits": resubmits}
            )
            self._sink.emit(RetryScheduled(command.type.value, "resubmit", resubmits, 0.0))
            return record, Send()
        review = review_record(
            command,
            partition=job.partition,
            offset=job.offset,
            attempts=record.attempts,
            last_known_state=describe(state),
            now=self._clock.now(),
        )
        # The review record, the outcome and the result in one transaction: never one without the other.
        return await self._finish(
            job,
            record,
            Outcome.UNRESOLVED,
            ResolvedBy.STATUS_INQUIRY,
            step.detail,
            before=[self._outbox.review(review)],
        )

    async def _find_transaction(self, command: Command, record: JournalRecord) -> Verdict:
        """The command's MSISDN's Transaction History, read until it shows the transaction: the
        corroboration of a PROCESSED, with the transaction number Status Inquiry does not return."""
        expected = expected_for(command)
        entries: list[HistoryLine] = []
        try:
            start = (record.updated_at - timedelta(days=1)).date()
            end = (self._clock.now() + timedelta(days=1)).date()
            async for entry in self._client.history(
                msisdn=command.msisdn, start_date=start, end_date=end, page_size=50, max_pages=20
            ):
                entries.append(entry)
                if matches(expected, entry):
                    break
        except Exception as exc:  # an API error or no answer: not a corroboration
            return history_unreadable(expected, f"{type(exc).__name__}: {exc}")
        return corroborate(expected, entries)

    # --- endings -------------------------------------------------------------------------------
    async def _finish(
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
        now = self._clock.now()
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
        await self._commit(
            job,
            [
                *(before or []),
                self._journal.out(record),
                *self._final_claim(record, result),
                self._outbox.result(result),
            ],
            record,
        )
        self._emit_result(
            job, outcome, resolved_by, result.response_code, record.sends, kind=record.command.type
        )
        return True

    # --- writing (all of it through the partition's transactional writer) ------------------------
    @staticmethod
    def _writer(job: Job) -> PartitionWriter:
        writer = job.writer if job.parent is None else job.parent.writer
        if writer is None or writer.lost is not None:
            raise PartitionLost(writer.lost if writer is not None else "no writer")
        return writer

    async def _write(self, job: Job, record: JournalRecord) -> float:
        """Commit a journal record on its own (an intent, a resolution's progress); the lease start."""
        lease_start_s = await self._writer(job).write([self._journal.out(record)])
        self._journal.remember(record)
        return lease_start_s

    async def _commit(self, job: Job, records: list[OutRecord], journal: JournalRecord | None = None) -> None:
        """Finish ``job``: its records and its offset in one transaction."""
        await self._writer(job).write(records, done_offset=job.offset, stream=job.stream)
        if journal is not None:
            self._journal.remember(journal)

    async def _answer(self, job: Job, records: list[OutRecord]) -> None:
        """Finish ``job`` with an answer that has no journal record of its own: with its marker."""
        marker = self._journal.answer_marker(job.partition, job.stream, job.offset)
        await self._commit(job, [*records, marker])
        self._journal.remember_answer(job.partition, job.stream, job.offset)

    async def _dead_letter(self, job: Job, reason: DeadLetterReason) -> None:
        letter = dead_letter(job, topic=job.topic or self._topic, reason=reason, now=self._clock.now())
        await self._answer(job, [self._outbox.dead_letter(letter, job.key)])
        self._sink.emit(DeadLettered(job.partition, job.offset, reason.reason))

    def _inherited_start_s(self, record: JournalRecord) -> float:
        appended_s = (
            record.appended_at_ms / 1000
            if record.appended_at_ms is not None
            else record.updated_at.timestamp()
        )
        return (
            appended_s
            + self._settings.send_lease_s
            + self._settings.connect_timeout_s
            + self._settings.bank_visibility_margin_s
        )

    def _emit_result(
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
        e2e_s = None
        if job.timestamp_ms is not None:
            e2e_s = max(0.0, self._clock.now().timestamp() - job.timestamp_ms / 1000)
        self._sink.emit(
            ResultPublished(
                trace_number=trace,
                msisdn=msisdn,
                command_type=kind.value if kind else "unknown",
                outcome=outcome.value,
                resolved_by=resolved_by.value,
                response_code=code,
                attempts=attempts,
                end_to_end_s=e2e_s,
            )
        )

    def _with_attempt(
        self,
        record: JournalRecord,
        command: Command,
        outcome_class: str,
        code: str | None,
        detail: str,
        *,
        operation: str | None = None,
    ) -> JournalRecord:
        attempt = Attempt(
            at=self._clock.now(),
            operation=operation or command.type.value,
            outcome_class=outcome_class,
            response_code=code,
            detail=detail[:500],
        )
        return record.model_copy(update={"attempts": [*record.attempts, attempt][-50:]})

    async def _sleep(self, seconds: float, job: Job) -> bool:
        """Sleep in short steps so that a revoke or a shutdown is noticed; False if abandoned."""
        remaining = seconds
        while remaining > 0:
            if job.abandoned:
                return False
            step = min(remaining, 0.25)
            await self._clock.sleep_s(step)
            remaining -= step
        return not job.abandoned


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


def _transport_class(call_class: CallClass) -> str | None:
    if call_class in (CallClass.NOT_SENT, CallClass.AMBIGUOUS):
        return call_class.value
    return None


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
