"""worker.client's matching, without a broker: by trace number, an interim unresolved result, the dead
letter of this very message, and nothing else (against the real broker: tests/integration/test_ops_cli.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from worker.client import ClientError, CommandClient, Sent, Topics
from worker.clock import FakeClock
from worker.contracts import Command, DeadLetter, Outcome, ResolvedBy, Result, event_id_for

TOPICS = Topics("c", "r", "d")
SENT = Sent("T1", "c", 2, 40)
NOW = datetime(2026, 11, 25, tzinfo=UTC)


@dataclass
class Message:
    topic: str
    value: bytes | None


class FakeConsumer:
    """Hands out one batch per poll, then nothing; each poll moves the clock by the poll's timeout."""

    def __init__(self, clock: FakeClock, batches: list[list[Message]]) -> None:
        self.clock = clock
        self.batches = batches

    async def getmany(self, timeout_ms: int) -> dict[str, list[Message]]:
        self.clock.advance(timeout_ms / 1000)
        return {"tp": self.batches.pop(0)} if self.batches else {}


def result(trace: str, outcome: Outcome, resolved_by: ResolvedBy = ResolvedBy.RESPONSE) -> Message:
    value = Result(
        event_id=event_id_for(trace, 2, 40),
        trace_number=trace,
        type="charge",
        msisdn="08131234567",
        amount="5",
        outcome=outcome,
        resolved_by=resolved_by,
        attempts=1,
        detail="d",
        completed_at=NOW,
    )
    return Message("r", value.model_dump_json().encode())


def letter(offset: int) -> Message:
    value = DeadLetter(
        reason="not_json: x",
        topic="c",
        partition=2,
        offset=offset,
        key_b64=None,
        value_b64=None,
        headers=[],
        timestamp_ms=None,
        dead_lettered_at=NOW,
    )
    return Message("d", value.model_dump_json().encode())


async def wait(batches: list[list[Message]], *, final: bool = False, timeout_s: float = 5) -> Any:
    clock = FakeClock()
    client = CommandClient("unused:9092", topics=TOPICS, clock=clock)
    waited: list[float] = []
    answer = await client._wait(FakeConsumer(clock, batches), SENT, timeout_s, final, waited.append)
    assert waited
    assert waited == sorted(waited)
    return answer


async def test_the_first_result_with_the_trace_number_answers_and_others_are_passed_over() -> None:
    answer = await wait(
        [
            [Message("r", b"not json"), Message("r", None), result("T2", Outcome.SUCCEEDED)],
            [result("T1", Outcome.DECLINED)],
        ]
    )
    assert answer.result.outcome is Outcome.DECLINED
    assert answer.dead_letter is None
    assert answer.answered


async def test_an_unresolved_result_answers_unless_the_final_one_is_asked_for() -> None:
    batches = [
        [result("T1", Outcome.UNRESOLVED, ResolvedBy.STATUS_INQUIRY)],
        [result("T1", Outcome.SUCCEEDED, ResolvedBy.MANUAL)],
    ]
    assert (await wait([list(b) for b in batches])).result.outcome is Outcome.UNRESOLVED
    final = await wait([list(b) for b in batches], final=True)
    assert final.result.outcome is Outcome.SUCCEEDED
    assert final.interim.outcome is Outcome.UNRESOLVED


async def test_only_the_dead_letter_of_this_very_message_answers() -> None:
    answer = await wait([[letter(39)], [letter(40)]])
    assert answer.result is None
    assert answer.dead_letter.offset == 40


async def test_no_answer_within_the_wait_is_said_so() -> None:
    answer = await wait([[letter(39), result("T2", Outcome.SUCCEEDED)]], timeout_s=1)
    assert not answer.answered
    assert answer.sent == SENT


async def test_sending_needs_a_started_client() -> None:
    command = Command(type="charge", trace_number="T1", msisdn="08131234567", amount="5")
    with pytest.raises(ClientError, match="not started"):
        await CommandClient("unused:9092").send(command)
