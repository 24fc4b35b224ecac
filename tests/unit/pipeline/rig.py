"""The processor on in-memory fakes: the real EcashClient over an in-memory API (FakeApi), the real
PartitionWriter over an in-memory transactional producer a "new owner" can fence, the real journal in
memory, an in-memory claims index fed from the committed transactions, and a fake clock. A freeze of a
minute is one call to ``advance``; nothing sleeps, nothing opens a socket.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from tests.fakes.txn_producer import Committed, FakeTxnProducer, TxnBroker
from tests.unit.ecash.fake_api import FakeApi, make_settings
from worker.clock import FakeClock
from worker.contracts import Command, Outcome, ResolvedBy, Result
from worker.core.breaker import CircuitBreaker
from worker.core.fingerprint import fingerprint
from worker.core.ratelimit import RateLimiter
from worker.ecash.client import EcashClient
from worker.ecash.ratelimited import RateLimitedTransport
from worker.events import Recorder
from worker.pipeline.claims import claim_record, final_claim, new_claim
from worker.pipeline.claims_index import ClaimsIndex
from worker.pipeline.gate import Gate
from worker.pipeline.intake import parse_command
from worker.pipeline.journal import Journal, JournalRecord, JournalState
from worker.pipeline.offsets import PartitionOffsets
from worker.pipeline.ownership import DECISIONS, PartitionWriter, WriterPolicy
from worker.pipeline.processor import Job, Processor
from worker.pipeline.publisher import Outbox
from worker.pipeline.results import command_result
from worker.policies import breaker_policy
from worker.settings import Settings

RICH = "08131234567"
TXN_ID = "g.commands.0"
COMMANDS_TOPIC = "commands"
JOURNAL, RESULTS, REVIEW, DLQ, CLAIMS = "journal", "results", "review", "dlq", "claims"


@dataclass
class Rig:
    settings: Settings
    clock: FakeClock
    api: FakeApi
    broker: TxnBroker
    journal: Journal
    processor: Processor
    writer: PartitionWriter
    offsets: PartitionOffsets
    sink: Recorder
    gate: Gate
    claims: ClaimsIndex | None
    producers: list[FakeTxnProducer] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    offsets_added: list[int] = field(default_factory=list)
    claim_offsets: dict[int, int] = field(default_factory=dict)  # the next offset per claims partition
    # run after each commit (the claims feed runs first): a freeze, a takeover...
    after_commit: list[Callable[[Committed], None]] = field(default_factory=list)

    @property
    def producer(self) -> FakeTxnProducer:
        return self.producers[-1]

    def job(
        self, body: dict[str, Any] | bytes, offset: int = 0, *, partition: int = 0, decision: bool = False
    ) -> Job:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        job = Job(partition, offset, None, RICH.encode(), raw, [], parse_command(raw, max_bytes=16_384))
        if decision:
            job.stream = DECISIONS
        job.writer = self.writer
        self.offsets.add(offset)
        self.offsets_added.append(offset)
        return job

    def transactions(self) -> list[Committed]:
        return [c for _, c in self.broker.committed]

    def topics_of(self, txn: Committed) -> list[str]:
        return [topic for topic, *_ in txn.records]

    def shapes(self) -> list[list[str]]:
        """Each committed transaction as the list of topics it wrote, and "offset" when it moved the
        committed offset forward (an intent carries the offset as it was, never its own message's)."""
        shapes, high = [], min(self.offsets_added, default=0)
        for c in self.transactions():
            moved = max(c.offsets.values(), default=high) > high or (bool(c.offsets) and not c.records)
            high = max(high, *c.offsets.values()) if c.offsets else high
            shapes.append(self.topics_of(c) + (["offset"] if moved else []))
        return shapes

    def values(self, topic: str) -> list[dict[str, Any]]:
        return [orjson.loads(v) for _, v in self.broker.records(topic) if v is not None]

    def results(self) -> list[dict[str, Any]]:
        return self.values(RESULTS)

    def outcomes(self) -> list[tuple[str, str]]:
        return [(x["outcome"], x["resolved_by"]) for x in self.results()]

    def journal_states(self) -> list[str]:
        return [x["state"] for x in self.values(JOURNAL) if "state" in x]

    def feed_claim(self, partition: int, key: bytes, value: bytes | None) -> int:
        """A claims record as the follower reads it back; its offset in its claims partition."""
        assert self.claims is not None
        at = self.claim_offsets.get(partition, 0)
        self.claim_offsets[partition] = at + 1
        self.claims.apply(partition, [(at, key, value, int(self.clock.now().timestamp() * 1000))])
        return at

    def claim_elsewhere(
        self, command: Command, *, partition: int, offset: int, final: tuple[int, Result] | None = None
    ) -> int:
        """Another worker's claim (or, with ``final``, its outcome) for the message at ``partition``/
        ``offset`` of the commands topic; returns its claim offset."""
        assert self.claims is not None
        claim = new_claim(
            command, fingerprint(command), topic=COMMANDS_TOPIC, partition=partition, offset=offset
        )
        if final is not None:
            claim = final_claim(claim, final[0], final[1])
        record = claim_record(CLAIMS, claim, self.claims.partitions)
        assert record.partition is not None
        return self.feed_claim(record.partition, record.key or b"", record.value)

    def on_first_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` right after the first transaction commits (the intent)."""

        def hook(_committed: Committed) -> None:
            if len(self.broker.committed) == 1:
                action()

        self.after_commit.append(hook)


async def rig(
    policy: WriterPolicy | None = None,
    *,
    claims: bool = False,
    claims_partitions: int = 2,
    **overrides: object,
) -> Rig:
    settings = make_settings(
        commands_topic=COMMANDS_TOPIC,
        journal_topic=JOURNAL,
        results_topic=RESULTS,
        review_topic=REVIEW,
        dlq_topic=DLQ,
        **overrides,
    )
    clock, api, broker, sink = FakeClock(), FakeApi(yield_each_call=False), TxnBroker(), Recorder()
    client = EcashClient(
        settings,
        transport=RateLimitedTransport(api.transport(), RateLimiter(0, burst=1, clock=clock)),
        sink=sink,
        clock=clock,
        sleep=clock.sleep_s,
    )
    journal = Journal(
        topic=JOURNAL,
        group_id="g",
        state_dir=None,
        consumer_factory=lambda: None,  # never called: the store is opened in memory
        dedupe_window_s=86_400,
        now_ms=lambda: int(clock.now().timestamp() * 1000),
    )
    journal.open_in_memory(0)
    index = ClaimsIndex.in_memory(CLAIMS, claims_partitions) if claims else None
    offsets = PartitionOffsets()
    producers: list[FakeTxnProducer] = []
    lost: list[str] = []
    hooks: list[Callable[[Committed], None]] = []
    rigged: list[Rig] = []

    def after_commit(committed: Committed) -> None:
        if index is not None:  # the follower reads the committed claims back (claims_index.py)
            for topic, key, value, part in committed.records:
                if topic == CLAIMS and key is not None and part is not None:
                    rigged[0].feed_claim(part, key, value)
        for hook in hooks:
            hook(committed)

    def factory(txn_id: str) -> FakeTxnProducer:
        producers.append(broker.producer(txn_id))
        producers[-1].after_commit = after_commit
        return producers[-1]

    writer = PartitionWriter(
        partition=0,
        txn_id=TXN_ID,
        group_id="g",
        producer_factory=factory,
        clock=clock,
        policy=policy or WriterPolicy(),
        mark_done=lambda _stream, offset: offsets.done(offset),
        committable=lambda: {} if (o := offsets.committable()) is None else {"commands": o},
        offset_key=lambda _stream: (COMMANDS_TOPIC, 0),
        on_lost=lambda _partition, reason: lost.append(reason),
    )
    await writer.start()
    gate = Gate(CircuitBreaker(breaker_policy(settings), clock), clock)
    processor = Processor(
        settings=settings,
        client=client,
        journal=journal,
        outbox=Outbox(RESULTS, DLQ, REVIEW),
        gate=gate,
        clock=clock,
        sink=sink,
        topic=COMMANDS_TOPIC,
        claims=index,
    )
    r = Rig(
        settings, clock, api, broker, journal, processor, writer, offsets, sink, gate, index, producers, lost
    )
    r.after_commit = hooks
    rigged.append(r)
    return r


def charge(trace: str = "T1", amount: int = 1000, **extra: object) -> dict[str, Any]:
    return {"type": "charge", "trace_number": trace, "msisdn": RICH, "amount": str(amount), **extra}


def credit(trace: str = "T1", amount: int = 1000) -> dict[str, Any]:
    return {"type": "credit", "trace_number": trace, "msisdn": RICH, "amount": str(amount)}


def decision(outcome: str = "succeeded", trace: str = "T1", **extra: object) -> dict[str, Any]:
    return {
        "type": "review_decision",
        "trace_number": trace,
        "msisdn": RICH,
        "outcome": outcome,
        "decided_by": "ops",
        "reason": "checked with the bank",
        **extra,
    }


def seed(
    r: Rig,
    state: JournalState,
    *,
    offset: int,
    outcome: Outcome | None = None,
    amount: int = 1000,
    resolved_by: ResolvedBy = ResolvedBy.RESPONSE,
    sends: int = 1,
) -> JournalRecord:
    """T1's journal record as a restore would have found it (from the message at ``offset``)."""
    command = Command.model_validate(charge(amount=amount))
    now = r.clock.now()
    result = None
    if outcome is not None:
        result = command_result(
            command,
            partition=0,
            offset=offset,
            outcome=outcome,
            resolved_by=resolved_by,
            detail=outcome.value,
            now=now,
            attempts=sends,
        )
    record = JournalRecord(
        trace_number="T1",
        fingerprint=fingerprint(command),
        state=state,
        command=command,
        partition=0,
        offset=offset,
        sends=sends,
        result=result,
        updated_at=now,
    )
    r.journal.seed(record, int(now.timestamp() * 1000))
    return record


def seed_done(r: Rig, outcome: Outcome, resolved_by: ResolvedBy, *, offset: int) -> JournalRecord:
    return seed(r, JournalState.DONE, offset=offset, outcome=outcome, resolved_by=resolved_by)
