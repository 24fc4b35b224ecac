"""Resolving an ambiguous money call through Status Inquiry: the schedule (core/resolution.py) asks, each
answer is observed (a PROCESSED is corroborated by the MSISDN's Transaction History, core/corroboration.py),
and the conclusion becomes an outcome, a resubmission or a review item (core/lifecycle.py).

The server may still be working on a request until the request timeout after it was sent; an intent
inherited from an earlier owner is not believed "not found" before its append time + the send lease + the
connect timeout + the bank's visibility margin (docs/design.md, "Ownership").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from worker import tracing
from worker.contracts import Command, Outcome, ResolvedBy
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
from worker.core.lifecycle import Finish, Resend, Send, on_conclusion
from worker.core.resolution import (
    Conclude,
    InquireAt,
    ResolutionPolicy,
    ResolutionState,
    TransportClass,
    apply_answer,
    describe,
    next_step,
    observe,
    uncorroborated,
)
from worker.ecash.client import EcashClient
from worker.ecash.codes import CallClass
from worker.ecash.errors import FatalConfigError
from worker.events import (
    FatalConfiguration,
    ResolutionFinished,
    ResolutionStarted,
    RetryScheduled,
    StatusInquiryAnswered,
)
from worker.pipeline.effects import Effects
from worker.pipeline.gate import Gate
from worker.pipeline.job import Job
from worker.pipeline.journal import JournalRecord, JournalState
from worker.pipeline.results import review_record

__all__ = ["InheritedBound", "Resolver", "transport_class"]


@dataclass(frozen=True)
class InheritedBound:
    """How long after its append time an inherited intent's request could still have been written."""

    send_lease_s: float
    connect_timeout_s: float
    bank_visibility_margin_s: float


class Resolver:
    def __init__(
        self,
        *,
        effects: Effects,
        client: EcashClient,
        gate: Gate,
        policy: ResolutionPolicy,
        bound: InheritedBound,
        wait_when_refused_s: float,
    ) -> None:
        self._fx = effects
        self._client = client
        self._gate = gate
        self._policy = policy
        self._bound = bound
        self._wait_when_refused_s = wait_when_refused_s
        self.resolving = 0  # resolutions in progress (the pipeline snapshot)

    async def resolve(
        self, job: Job, record: JournalRecord, reason: str
    ) -> bool | tuple[JournalRecord, Send]:
        with tracing.resolution_span(reason):
            return await self._resolve(job, record, reason)

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
            started_s = (
                self._inherited_start_s(record) if found_in_journal else self._fx.clock.now().timestamp()
            )
            state = ResolutionState.start(started_s, resubmits=record.resubmits)
            record = record.model_copy(
                update={
                    "state": JournalState.RESOLVING,
                    "resolution": state.to_record(),
                    "updated_at": self._fx.clock.now(),
                }
            )
            await self._fx.write(job, record)
            self._fx.sink.emit(ResolutionStarted(command.trace_number, command.msisdn, reason))
        else:
            state = ResolutionState.from_record(record.resolution)
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
        move = next_step(
            self._policy, state, self._fx.clock.now().timestamp(), pace_factor=self._gate.pace_factor()
        )
        while isinstance(move, InquireAt):
            if not await self._fx.sleep(move.delay_s(self._fx.clock.now().timestamp()), job):
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
                self._fx.sink.emit(FatalConfiguration(str(exc)))
                if not await self._fx.sleep(self._wait_when_refused_s, job):
                    return False
                move = next_step(
                    self._policy,
                    state,
                    self._fx.clock.now().timestamp(),
                    pace_factor=self._gate.pace_factor(),
                )
                continue
            observation = observe(answer.code, transport_class(answer.call_class), self._policy)
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
            state, move = apply_answer(
                self._policy,
                state,
                observation,
                self._fx.clock.now().timestamp(),
                pace_factor=self._gate.pace_factor(),
            )
            self._fx.sink.emit(StatusInquiryAnswered(command.trace_number, observation.kind, answer.code))
            record = self._fx.with_attempt(
                record, command, observation.kind, answer.code, detail, operation="status"
            )
            record = record.model_copy(
                update={"resolution": state.to_record(), "updated_at": self._fx.clock.now()}
            )
            if isinstance(move, InquireAt):
                await self._fx.write(job, record)
        return await self._conclude(job, record, state, move, found)

    async def _conclude(
        self,
        job: Job,
        record: JournalRecord,
        state: ResolutionState,
        conclusion: Conclude,
        found: Corroborated | None = None,
    ) -> bool | tuple[JournalRecord, Send]:
        command = record.command
        duration_s = self._fx.clock.now().timestamp() - state.started_at_s
        self._fx.sink.emit(
            ResolutionFinished(command.trace_number, conclusion.outcome, state.inquiries, duration_s)
        )
        step = on_conclusion(conclusion, kind=command.type.value, evidence=found.evidence if found else None)
        if isinstance(step, Finish):
            if step.outcome != "succeeded":
                return await self._fx.finish(
                    job, record, Outcome(step.outcome), ResolvedBy.STATUS_INQUIRY, step.detail
                )
            assert found is not None  # on_conclusion refuses a "succeeded" without its corroboration
            return await self._fx.finish(
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
            self._fx.sink.emit(RetryScheduled(command.type.value, "resubmit", resubmits, 0.0))
            return record, Send()
        review = review_record(
            command,
            partition=job.partition,
            offset=job.offset,
            attempts=record.attempts,
            last_known_state=describe(state),
            now=self._fx.clock.now(),
        )
        # The review record, the outcome and the result in one transaction: never one without the other.
        return await self._fx.finish(
            job,
            record,
            Outcome.UNRESOLVED,
            ResolvedBy.STATUS_INQUIRY,
            step.detail,
            before=[self._fx.outbox.review(review, job.headers)],
        )

    async def _find_transaction(self, command: Command, record: JournalRecord) -> Verdict:
        """The command's MSISDN's Transaction History, read until it shows the transaction: the
        corroboration of a PROCESSED, with the transaction number Status Inquiry does not return."""
        expected = expected_for(command)
        entries: list[HistoryLine] = []
        try:
            start = (record.updated_at - timedelta(days=1)).date()
            end = (self._fx.clock.now() + timedelta(days=1)).date()
            async for entry in self._client.history(
                msisdn=command.msisdn, start_date=start, end_date=end, page_size=50, max_pages=20
            ):
                entries.append(entry)
                if matches(expected, entry):
                    break
        except Exception as exc:  # noqa: BLE001 - an API error or no answer: not a corroboration
            return history_unreadable(expected, f"{type(exc).__name__}: {exc}")
        return corroborate(expected, entries)

    def _inherited_start_s(self, record: JournalRecord) -> float:
        appended_s = (
            record.appended_at_ms / 1000
            if record.appended_at_ms is not None
            else record.updated_at.timestamp()
        )
        return (
            appended_s
            + self._bound.send_lease_s
            + self._bound.connect_timeout_s
            + self._bound.bank_visibility_margin_s
        )


def transport_class(call_class: CallClass) -> TransportClass | None:
    """The transport's verdict where it has one (not sent, ambiguous), for core.resolution.observe."""
    if call_class is CallClass.NOT_SENT:
        return "not_sent"
    if call_class is CallClass.AMBIGUOUS:
        return "ambiguous"
    return None
