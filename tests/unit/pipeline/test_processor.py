"""Every branch of a command's life, through the processor on in-memory fakes (rig.py), in milliseconds.

Each case says what a user of the results topic would see (outcomes, how they were resolved), what the
bank saw (money calls) and what each transaction wrote, so that a restructuring of the processor that
changes any of it fails here before it reaches the integration tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.unit.ecash.fake_api import history_entry
from tests.unit.pipeline.rig import (
    CLAIMS,
    DLQ,
    JOURNAL,
    RESULTS,
    REVIEW,
    Rig,
    charge,
    credit,
    decision,
    rig,
    seed,
    seed_done,
)
from worker.contracts import Command, Outcome, ResolvedBy
from worker.ecash import wire
from worker.events import CommandRejected, DeadLettered, RetryScheduled
from worker.pipeline.claims import Entry
from worker.pipeline.journal import JournalState
from worker.pipeline.results import command_result

CHARGE, CREDIT, STATUS, HISTORY = (
    wire.Operation.CHARGE,
    wire.Operation.CREDIT,
    wire.Operation.STATUS,
    wire.Operation.HISTORY,
)
PROCESSED_T1 = {"status": "PROCESSED", "traceNumber": "T1"}
SHOWS_T1 = {"status": "PROCESSED", "accountHistoryDetails": [history_entry("T1", "-Rp 1.000,00")]}
J, R, OFF = JOURNAL, RESULTS, "offset"


@dataclass
class Case:
    name: str
    body: dict[str, Any] | bytes
    offset: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    script: dict[wire.Operation, list[Any]] = field(default_factory=dict)
    setup: Callable[[Rig], None] | None = None
    outcomes: list[tuple[str, str]] = field(default_factory=list)
    shapes: list[list[str]] | None = None
    money_calls: int = 0
    status_calls: int | None = None
    letters: list[str] = field(default_factory=list)


CASES = [
    Case(
        "charge processed",
        charge(),
        script={CHARGE: [{"status": "PROCESSED", "traceNumber": "T1", "transactionNumber": "X1"}]},
        outcomes=[("succeeded", "response")],
        shapes=[[J], [J, R, OFF]],
        money_calls=1,
        status_calls=0,
    ),
    Case(
        "credit processed",
        credit(),
        outcomes=[("succeeded", "response")],
        shapes=[[J], [J, R, OFF]],
        money_calls=1,
    ),
    Case(
        "charge declined by the API",
        charge(),
        script={CHARGE: [{"status": "MEMBER_NOT_FOUND"}]},
        outcomes=[("declined", "response")],
        shapes=[[J], [J, R, OFF]],
        money_calls=1,
        status_calls=0,
    ),
    Case(
        "expired before it was sent",
        charge(expires_at="2025-01-01T00:00:00Z"),
        outcomes=[("failed", "response")],
        shapes=[[J, R, OFF]],
        money_calls=0,
    ),
    Case(
        "not sent, then sent",
        charge(),
        script={CHARGE: [httpx.ConnectError("refused")] * 4 + [{"status": "PROCESSED", "traceNumber": "T1"}]},
        outcomes=[("succeeded", "response")],
        money_calls=5,
        status_calls=0,
    ),
    Case(
        "never sent until the not-sent deadline",
        charge(),
        settings={"not_sent_deadline_s": 30.0},
        script={CHARGE: [httpx.ConnectError("refused")] * 400},
        outcomes=[("failed", "response")],
        status_calls=0,
    ),
    Case(
        "ambiguous (5xx), Status Inquiry processed and History shows it",
        charge(),
        script={CHARGE: [httpx.Response(503)], STATUS: [PROCESSED_T1], HISTORY: [SHOWS_T1]},
        outcomes=[("succeeded", "status_inquiry")],
        shapes=[[J], [J], [J, R, OFF]],
        money_calls=1,
        status_calls=1,
    ),
    Case(
        "ambiguous (timeout), not found twice: failed",
        charge(),
        script={CHARGE: [httpx.ReadTimeout("t")], STATUS: [{"status": "PAYMENT_NOT_FOUND"}] * 2},
        outcomes=[("failed", "status_inquiry")],
        money_calls=1,
        status_calls=2,
    ),
    Case(
        "ambiguous, not found, resubmit policy: sent once more",
        charge(),
        settings={"not_found_policy": "resubmit", "resubmit_max": 1},
        script={
            CHARGE: [httpx.ReadTimeout("t"), {"status": "PROCESSED", "traceNumber": "T1"}],
            STATUS: [{"status": "PAYMENT_NOT_FOUND"}] * 2,
        },
        outcomes=[("succeeded", "response")],
        money_calls=2,
        status_calls=2,
    ),
    Case(
        "ambiguous, Status Inquiry never answers: unresolved with its review item",
        charge(),
        settings={"resolution_schedule_s": [5.0], "resolution_deadline_s": 60.0},
        script={CHARGE: [httpx.ReadTimeout("t")], STATUS: [{"status": "GENERAL_ERROR"}] * 50},
        outcomes=[("unresolved", "status_inquiry")],
        money_calls=1,
    ),
    Case(
        "processed but History never shows it: not believed, unresolved",
        charge(),
        settings={"resolution_schedule_s": [5.0], "resolution_deadline_s": 60.0},
        script={CHARGE: [httpx.ReadTimeout("t")], STATUS: [PROCESSED_T1] * 50},
        outcomes=[("unresolved", "status_inquiry")],
        money_calls=1,
    ),
    Case(
        "the same message after its outcome: offset only",
        charge(),
        offset=7,
        setup=lambda r: _done(r, 7),
        outcomes=[],
        shapes=[[OFF]],
    ),
    Case(
        "a duplicate message after the outcome: the outcome again, from the journal",
        charge(),
        offset=9,
        setup=lambda r: _done(r, 7),
        outcomes=[("succeeded", "journal")],
        shapes=[[R, J, OFF]],
    ),
    Case(
        "the trace number again with another amount: rejected",
        charge(amount=5),
        offset=9,
        setup=lambda r: _done(r, 7),
        outcomes=[("rejected", "journal")],
        shapes=[[R, J, OFF]],
    ),
    Case(
        "an intent in the journal for this message: resolved, never sent again",
        charge(),
        setup=lambda r: _intent(r, 0),
        script={STATUS: [{"status": "PAYMENT_NOT_FOUND"}] * 2},
        outcomes=[("failed", "status_inquiry")],
        money_calls=0,
        status_calls=2,
    ),
    Case(
        "an intent of an earlier message: that one settled, this one its duplicate",
        charge(),
        offset=5,
        setup=lambda r: _intent(r, 2),
        script={STATUS: [{"status": "PAYMENT_NOT_FOUND"}] * 2},
        outcomes=[("failed", "status_inquiry"), ("failed", "journal")],
        money_calls=0,
        status_calls=2,
    ),
    Case(
        "an invalid but identifiable command: rejected, with its marker",
        {"type": "charge", "trace_number": "T1", "msisdn": "08131234567", "amount": "-5"},
        outcomes=[("rejected", "response")],
        shapes=[[R, J, OFF]],
    ),
    Case(
        "an unparsable message: a dead letter, with its marker",
        b"{not json",
        shapes=[[DLQ, J, OFF]],
        letters=["not_json"],
    ),
    Case(
        "a review decision for nothing open: a dead letter",
        decision(),
        letters=["review_decision_not_applicable"],
    ),
    Case(
        "a review decision closes an unresolved command",
        decision(),
        offset=3,
        setup=lambda r: _unresolved(r, 0),
        outcomes=[("succeeded", "manual")],
        shapes=[[REVIEW, J, R, OFF]],
    ),
    Case(
        "a 'failed' decision while Status Inquiry says processed: refused",
        decision("failed"),
        offset=3,
        setup=lambda r: _unresolved(r, 0),
        script={STATUS: [PROCESSED_T1]},
        letters=["review_decision_refused"],
        status_calls=1,
    ),
    Case(
        "a 'failed' decision the API agrees with: closed",
        decision("failed"),
        offset=3,
        setup=lambda r: _unresolved(r, 0),
        script={STATUS: [{"status": "PAYMENT_NOT_FOUND"}]},
        outcomes=[("failed", "manual")],
        status_calls=1,
    ),
]


def _done(r: Rig, offset: int) -> None:
    seed_done(r, Outcome.SUCCEEDED, ResolvedBy.RESPONSE, offset=offset)


def _intent(r: Rig, offset: int) -> None:
    seed(r, JournalState.INTENT, offset=offset)


def _unresolved(r: Rig, offset: int) -> None:
    seed_done(r, Outcome.UNRESOLVED, ResolvedBy.STATUS_INQUIRY, offset=offset)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_a_command_ends_as_it_always_has(case: Case) -> None:
    r = await rig(**case.settings)
    for operation, replies in case.script.items():
        r.api.queue(operation, *replies)
    if case.setup is not None:
        case.setup(r)
    job = r.job(
        case.body, offset=case.offset, decision=isinstance(case.body, dict) and "decided_by" in case.body
    )
    assert await r.processor.handle(job)
    assert r.outcomes() == case.outcomes
    if case.shapes is not None:
        assert r.shapes() == case.shapes
    money = r.api.count(CHARGE) + r.api.count(CREDIT)
    if case.money_calls or case.shapes is not None:
        assert money == case.money_calls
    if case.status_calls is not None:
        assert r.api.count(STATUS) == case.status_calls
    assert [x["reason"].split(":")[0] for x in r.values(DLQ)] == case.letters
    assert max(r.broker.offsets(), default=None) == case.offset + 1, "its offset is committed with its answer"


async def test_a_rejection_and_a_dead_letter_say_so_in_events() -> None:
    r = await rig()
    assert await r.processor.handle(r.job(charge(amount=0)))
    assert await r.processor.handle(r.job(b"[]", offset=1))
    assert [type(e) for e in r.sink.events if isinstance(e, CommandRejected | DeadLettered)] == [
        CommandRejected,
        DeadLettered,
    ]


async def test_an_answered_message_moves_only_its_offset() -> None:
    r = await rig()
    assert await r.processor.handle(r.job(b"{not json", offset=4))
    assert await r.processor.handle(r.job(b"{not json", offset=4))  # redelivered after a failover
    assert r.shapes()[0] == [DLQ, J, OFF]
    assert [topic for c in r.transactions()[1:] for topic in r.topics_of(c)] == [], "nothing published twice"
    assert len(r.values(DLQ)) == 1


async def test_not_sent_retries_wait_no_longer_than_the_setting_says() -> None:
    r = await rig(not_sent_deadline_s=120.0, not_sent_backoff_max_s=5.0, not_sent_retry_attempts=1)
    r.api.queue(CHARGE, *([httpx.ConnectError("refused")] * 400))
    assert await r.processor.handle(r.job(charge()))
    waits = [
        e.delay_s for e in r.sink.events if isinstance(e, RetryScheduled) and e.reason == "api_unavailable"
    ]
    assert waits, "the not-sent retries are announced"
    assert max(waits) <= 5.0 + 1e-9
    assert r.outcomes() == [("failed", "response")]


async def test_a_job_abandoned_while_resolving_leaves_its_intent_for_the_next_owner() -> None:
    r = await rig()
    r.api.queue(CHARGE, httpx.ReadTimeout("t"))
    job = r.job(charge())
    r.on_first_commit(lambda: None)

    async def never_answers(_call: object) -> dict[str, str]:
        raise AssertionError("no Status Inquiry after the job was abandoned")

    def abandon_after_resolving(_c: object) -> None:
        if r.journal_states()[-1:] == ["resolving"]:
            job.cancelled = True

    r.after_commit.append(abandon_after_resolving)
    assert not await r.processor.handle(job)
    assert r.results() == []
    assert r.journal_states() == ["intent", "resolving"]
    assert r.api.count(STATUS) == 0


async def test_an_agent_refused_stops_new_money_and_waits_for_an_operator() -> None:
    r = await rig()
    r.api.queue(CHARGE, {"status": "NOT_ALLOWED"})
    job = r.job(charge())

    def stop_when_fatal(_c: object) -> None:
        if r.gate.fatal is not None:
            job.cancelled = True

    sleep = r.clock.sleep_s

    async def sleep_then_stop(seconds: float) -> None:  # the operator's page: stop the wait here
        stop_when_fatal(None)
        await sleep(seconds)

    r.clock.sleep_s = sleep_then_stop  # type: ignore[method-assign]
    assert not await r.processor.handle(job)
    assert r.gate.fatal is not None
    assert "NOT_ALLOWED" in r.gate.fatal
    assert r.results() == [], "refusing the agent is not a declined charge"


# --- the claims: one trace number, one payment, across partitions ----------------------------------------


async def test_the_first_claim_owns_the_trace_number_and_its_outcome_rides_on_the_claim() -> None:
    r = await rig(claims=True)
    assert await r.processor.handle(r.job(charge(), offset=0))
    assert r.outcomes() == [("succeeded", "response")]
    assert r.shapes() == [[CLAIMS], [J], [J, CLAIMS, R, OFF]]
    claims = r.values(CLAIMS)
    assert claims[-1]["state"] == "final"
    assert claims[-1]["result"]["outcome"] == "succeeded"


async def test_the_owners_final_claim_is_built_from_the_claim_it_won_without_reading_the_index_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    r = await rig(claims=True)
    assert r.claims is not None
    lookups: list[str] = []
    read = r.claims.entry

    def counted(key: str) -> Entry | None:
        lookups.append(key)
        return read(key)

    monkeypatch.setattr(r.claims, "entry", counted)
    assert await r.processor.handle(r.job(charge(), offset=4))
    assert lookups == [], "finishing read the claim back from the index (a SQLite query and a parse)"
    claims = r.values(CLAIMS)
    assert [c["state"] for c in claims] == ["claimed", "final"]
    assert claims[-1]["claim_offset"] == 0  # the won claim's place in its claims partition
    assert claims[-1]["command_offset"] == 4


async def test_a_claimed_trace_number_reused_with_other_parameters_is_rejected_without_money() -> None:
    r = await rig(claims=True)
    r.claim_elsewhere(Command.model_validate(charge(amount=7)), partition=1, offset=0)
    assert await r.processor.handle(r.job(charge(), offset=3))
    assert r.outcomes() == [("rejected", "journal")]
    assert r.api.count(CHARGE) == 0
    assert r.broker.records(CLAIMS)[-1][1] is None, "the loser's own claim is tombstoned with its answer"


async def test_an_exact_duplicate_elsewhere_gets_the_owners_outcome_once_it_has_one() -> None:
    r = await rig(claims=True)
    command = Command.model_validate(charge())
    owner = r.claim_elsewhere(command, partition=1, offset=0)
    done = asyncio.ensure_future(r.processor.handle(r.job(charge(), offset=3)))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not done.done(), "waits while the owner has no outcome"
    result = command_result(
        command,
        partition=1,
        offset=0,
        outcome=Outcome.SUCCEEDED,
        resolved_by=ResolvedBy.RESPONSE,
        detail="ok",
        now=r.clock.now(),
        attempts=1,
    )
    r.claim_elsewhere(command, partition=1, offset=0, final=(owner, result))
    assert await done
    assert r.outcomes() == [("succeeded", "journal")]
    assert "commands[1]@0" in r.results()[0]["detail"]
    assert r.api.count(CHARGE) == 0


async def test_a_review_decision_s_result_continues_the_command_s_trace() -> None:
    """The command's ``traceparent`` is kept in its journal record, so the result a reviewer's decision
    publishes later (from another message, with its own trace) is in the command's trace."""
    command_trace = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    decision_trace = b"00-11111111111111111111111111111111-2222222222222222-01"
    r = await rig(resolution_schedule_s=[5.0], resolution_deadline_s=60.0)
    r.api.queue(CHARGE, httpx.ReadTimeout("injected"))
    r.api.queue(STATUS, *([{"status": "GENERAL_ERROR"}] * 50))
    job = r.job(charge())
    job.headers = [("traceparent", command_trace), ("tracestate", b"congo=t61rcWkgMzE")]
    assert await r.processor.handle(job)
    later = r.job(decision(), offset=3, decision=True)
    later.headers = [("traceparent", decision_trace)]
    assert await r.processor.handle(later)
    assert r.outcomes() == [("unresolved", "status_inquiry"), ("succeeded", "manual")]
    interim, final = r.broker.headers(RESULTS)
    assert interim["traceparent"] == final["traceparent"] == command_trace
    assert final["tracestate"] == b"congo=t61rcWkgMzE"
    assert r.broker.headers(REVIEW)[-1]["traceparent"] == decision_trace  # the reviewer's act, its own


async def test_an_earlier_message_settled_on_behalf_of_a_later_one_keeps_its_own_trace() -> None:
    """After a restart, a later message finds an earlier one's intent and settles it first: that earlier
    command's result is in the earlier command's trace (kept in its intent), the later one's in its own."""
    earlier_trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    later_trace = b"00-11111111111111111111111111111111-2222222222222222-01"
    r = await rig()
    r.api.queue(STATUS, *([{"status": "PAYMENT_NOT_FOUND"}] * 2))
    intent = seed(r, JournalState.INTENT, offset=2)
    with_trace = intent.model_copy(update={"trace_context": [("traceparent", earlier_trace)]})
    r.journal.seed(with_trace, int(r.clock.now().timestamp() * 1000))
    job = r.job(charge(), offset=5)
    job.headers = [("traceparent", later_trace)]
    assert await r.processor.handle(job)
    assert r.outcomes() == [("failed", "status_inquiry"), ("failed", "journal")]
    earlier, later = r.broker.headers(RESULTS)
    assert earlier["traceparent"] == earlier_trace.encode()
    assert later["traceparent"] == later_trace
