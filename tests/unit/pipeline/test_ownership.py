"""Every crash and fence point of a command's life, in memory, in milliseconds (docs/design.md, Ownership).

The processor runs with the real EcashClient over an in-memory API (FakeApi), the real PartitionWriter over
an in-memory transactional producer that a "new owner" can fence (tests/fakes/txn_producer.py), and a fake
clock, so a freeze of a minute is one call to ``advance``.
"""

from __future__ import annotations

import asyncio
import itertools

import httpx
import orjson

from tests.unit.pipeline.rig import DLQ, JOURNAL, RESULTS, REVIEW, RICH, TXN_ID, charge, rig, seed_done
from worker.contracts import Command, Outcome, ResolvedBy
from worker.core.fingerprint import fingerprint
from worker.ecash import wire
from worker.events import RetryScheduled
from worker.pipeline.journal import JournalRecord, JournalState
from worker.pipeline.ownership import WriterPolicy


async def test_the_intent_commits_before_the_charge_and_outcome_result_and_offset_commit_together() -> None:
    r = await rig()
    sent_after: list[int] = []

    def processed(_call: object) -> dict[str, str]:
        sent_after.append(len(r.broker.committed))
        return {"status": "PROCESSED"}

    r.api.queue(wire.Operation.CHARGE, processed)
    assert await r.processor.handle(r.job(charge(), offset=4))
    intent, outcome = r.transactions()
    assert sent_after == [1], "the Charge left only after the intent's transaction committed"
    assert r.topics_of(intent) == [JOURNAL]
    assert all(o <= 4 for o in intent.offsets.values()), "an intent never commits past its own command"
    assert r.topics_of(outcome) == [JOURNAL, RESULTS]
    assert outcome.offsets == {("commands", 0): 5}
    assert [x["outcome"] for x in r.results()] == ["succeeded"]


async def test_frozen_after_the_intent_while_a_new_owner_takes_over_sends_nothing() -> None:
    """Scenario 1: the intent is committed, the worker freezes past its lease, a new owner fences it."""
    r = await rig()

    def freeze_and_take_over() -> None:
        r.clock.advance(r.settings.send_lease_s + 60)
        r.broker.fence(TXN_ID)

    r.on_first_commit(freeze_and_take_over)
    assert not await r.processor.handle(r.job(charge()))
    assert r.api.count(wire.Operation.CHARGE) == 0, "a superseded worker moved money"
    assert r.results() == []
    assert r.lost
    assert "ProducerFenced" in r.lost[0]


async def test_frozen_past_the_lease_without_a_takeover_proves_ownership_again_then_sends_once() -> None:
    r = await rig()
    r.on_first_commit(lambda: r.clock.advance(r.settings.send_lease_s + 1))
    assert await r.processor.handle(r.job(charge()))
    assert r.api.count(wire.Operation.CHARGE) == 1
    assert r.journal_states() == ["intent", "intent", "done"], "a fresh intent after the lease passed"
    retries = [e for e in r.sink.events if isinstance(e, RetryScheduled)]
    assert [e.reason for e in retries] == ["lease_expired"]


async def test_fenced_before_the_intent_sends_nothing() -> None:
    """Scenario 2: the worker lost the partition before it wrote the intent; its store is stale."""
    r = await rig()
    r.broker.fence(TXN_ID)
    assert not await r.processor.handle(r.job(charge()))
    assert r.api.count(wire.Operation.CHARGE) == 0
    assert r.broker.committed == []


async def test_an_inherited_intent_is_not_believed_lost_before_the_previous_owners_bound() -> None:
    """Scenario 4: the grace counts from the intent's append time + lease + connect timeout + margin."""
    r = await rig(resolution_schedule_s=[1.0])
    command = Command.model_validate(charge())
    appended = r.clock.now()
    record = JournalRecord(
        trace_number="T1",
        fingerprint=fingerprint(command),
        state=JournalState.INTENT,
        command=command,
        partition=0,
        offset=0,
        sends=1,
        updated_at=appended,
    )
    r.journal.seed(record, int(appended.timestamp() * 1000))
    inquired_at: list[float] = []

    def not_found(_call: object) -> dict[str, str]:
        inquired_at.append((r.clock.now() - appended).total_seconds())
        return {"status": "PAYMENT_NOT_FOUND"}

    r.api.queue(wire.Operation.STATUS, not_found, not_found)
    assert await r.processor.handle(r.job(charge()))
    s = r.settings
    bound_s = (
        s.send_lease_s
        + s.connect_timeout_s
        + s.bank_visibility_margin_s
        + s.request_timeout_s
        + s.resolution_grace_s
    )
    assert inquired_at[0] >= bound_s
    assert r.api.count(wire.Operation.CHARGE) == 0, "an inherited intent is never sent again"
    assert [x["outcome"] for x in r.results()] == ["failed"]


async def test_the_same_message_replayed_after_its_outcome_publishes_no_second_result() -> None:
    r = await rig()
    seed_done(r, Outcome.SUCCEEDED, ResolvedBy.RESPONSE, offset=7)
    assert await r.processor.handle(r.job(charge(), offset=7))
    assert r.results() == [], "its result was committed with its outcome: a reader would see it twice"
    assert r.broker.offsets() == [8]
    assert r.api.count(wire.Operation.CHARGE) == 0


async def test_a_stuck_commit_loses_the_partition_instead_of_hanging() -> None:
    r = await rig(policy=WriterPolicy(commit_timeout_s=0.05))
    r.producer.stall_commit = True
    assert not await r.processor.handle(r.job(charge()))
    assert r.api.count(wire.Operation.CHARGE) == 0
    assert r.lost
    assert "Timeout" in r.lost[0]


async def test_offsets_that_cannot_join_the_transaction_lose_the_partition_instead_of_hanging() -> None:
    r = await rig(policy=WriterPolicy(commit_timeout_s=0.05))
    r.api.queue(wire.Operation.CHARGE, {"status": "PROCESSED", "traceNumber": "T1"})
    r.producer.stall_offsets = True  # the outcome's transaction carries the offset: it never gets added
    assert not await asyncio.wait_for(r.processor.handle(r.job(charge())), 5.0)  # a hang fails here
    assert r.lost
    assert "Timeout" in r.lost[0]
    assert r.outcomes() == []  # nothing committed: the next owner finds the intent and resolves it


async def test_unresolved_commits_its_review_record_with_its_outcome_and_result() -> None:
    r = await rig(resolution_schedule_s=[5.0], resolution_deadline_s=60.0)
    r.api.queue(wire.Operation.CHARGE, httpx.ReadTimeout("injected"))
    r.api.queue(wire.Operation.STATUS, *([{"status": "GENERAL_ERROR"}] * 50))
    assert await r.processor.handle(r.job(charge()))
    last = r.transactions()[-1]
    assert r.topics_of(last) == [REVIEW, JOURNAL, RESULTS], "never a result without its review item"
    assert [x["outcome"] for x in r.results()] == ["unresolved"]


async def test_a_failed_review_decision_is_refused_when_status_inquiry_says_the_money_moved() -> None:
    r = await rig()
    seed_done(r, Outcome.UNRESOLVED, ResolvedBy.STATUS_INQUIRY, offset=0)
    decision = {
        "type": "review_decision",
        "trace_number": "T1",
        "msisdn": RICH,
        "outcome": "failed",
        "decided_by": "ops",
        "reason": "bank says no",
    }
    r.api.queue(wire.Operation.STATUS, {"status": "PROCESSED", "traceNumber": "T1"})
    assert await r.processor.handle(r.job(decision, offset=1))
    assert r.results() == [], "a 'failed' result while the money moved"
    letters = [orjson.loads(v) for _, v in r.broker.records(DLQ) if v is not None]
    assert [x["reason"].split(":")[0] for x in letters] == ["review_decision_refused"]
    assert r.api.count(wire.Operation.STATUS) == 1


async def test_a_closed_writer_refuses_writes_so_a_stale_job_cannot_write_for_a_new_owner() -> None:
    r = await rig()
    await r.writer.close(flush=True, timeout_s=1.0)
    assert not await r.processor.handle(r.job(charge()))
    assert r.api.count(wire.Operation.CHARGE) == 0


# --- the consumed offset: at most once per ECASH_COMMIT_INTERVAL_S -------------------------------------


async def test_offsets_commit_once_per_interval_and_a_quiet_partition_still_commits_its_last() -> None:
    r = await rig(policy=WriterPolicy(offset_interval_s=1.0))
    at_s: list[float] = []  # the (fake) time of each transaction that commits an offset
    r.after_commit.append(lambda c: at_s.append(r.clock.monotonic_s()) if c.offsets else None)
    for offset, trace in ((0, "T1"), (1, "T2"), (2, "T3")):
        assert await r.processor.handle(r.job(charge(trace), offset=offset))
    for _ in range(5):  # the interval's timer (on the fake clock) wakes the quiet writer: offsets alone
        await asyncio.sleep(0)
    assert r.broker.offsets()[-1] == 3, "the last offset is committed though nothing else is written"
    assert all(later - earlier >= 1.0 for earlier, later in itertools.pairwise(at_s)), at_s
    outcomes = [c for c in r.transactions() if RESULTS in r.topics_of(c)]
    assert [c.offsets for c in outcomes] == [{}, {}, {}], "each outcome came within the interval"
    assert [r.topics_of(c) for c in r.transactions() if c.offsets][1:] == [[], [], []]
    assert [x["trace_number"] for x in r.results()] == ["T1", "T2", "T3"]


async def test_offsets_join_a_transaction_only_once_the_broker_acknowledged_its_records() -> None:
    # Kafka refuses a produce it checks while the coordinator adds the offsets' partition (KIP-890's
    # verification, answered NOT_ENOUGH_REPLICAS and retried): the two must not overlap.
    r = await rig()
    r.producer.ack_delay_s = 0.005
    r.api.queue(wire.Operation.CHARGE, {"status": "PROCESSED", "traceNumber": "T1"})
    assert await r.processor.handle(r.job(charge(), offset=4))
    assert [c.offsets for c in r.transactions() if c.offsets][-1] == {("commands", 0): 5}
    assert r.producer.offsets_before_acks == 0


async def test_a_released_partition_commits_the_offsets_it_was_still_holding_back() -> None:
    r = await rig(policy=WriterPolicy(offset_interval_s=3600.0))

    def timer_not_fired_yet(wait_s: float) -> None:
        assert wait_s > 0

    r.writer._defer_offsets = timer_not_fired_yet  # type: ignore[method-assign]
    for offset, trace in ((0, "T1"), (1, "T2")):
        assert await r.processor.handle(r.job(charge(trace), offset=offset))
    assert r.broker.offsets() == [0]
    await r.writer.close(flush=True, timeout_s=1.0)
    assert r.broker.offsets() == [0, 2], "the next owner starts after T2, not at T1"
