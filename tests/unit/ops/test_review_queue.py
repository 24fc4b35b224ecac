"""Reading the compacted review topic: the latest record per trace number is the item's state."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import click
import pytest

from worker.commandline import parse
from worker.contracts import Attempt, Command, Outcome, ReviewDecision, ReviewRecord
from worker.ops.awaiting import Delivery
from worker.ops.command import EXIT_CONFIG, EXIT_NO_RESULT, OpsError
from worker.ops.output import Console, Format
from worker.ops.review import (
    command,
    decision_for,
    latest_records,
    list_row,
    open_items,
    report,
    show,
)

OPENED = datetime(2026, 1, 2, 3, 0, tzinfo=UTC)


def record(
    trace: str, state: str = "open", opened: datetime = OPENED, msisdn: str = "08131234567"
) -> ReviewRecord:
    closed = state == "closed"
    return ReviewRecord(
        trace_number=trace,
        state=state,
        command=Command(type="charge", trace_number=trace, msisdn=msisdn, amount=Decimal("100000")),
        source_partition=3,
        source_offset=42,
        attempts=[
            Attempt(at=opened, operation="charge", outcome_class="ambiguous", detail="read timeout"),
            Attempt(
                at=opened, operation="status", outcome_class="declined", response_code="PAYMENT_NOT_FOUND"
            ),
        ],
        last_known_state="not found once",
        opened_at=opened,
        closed_at=opened + timedelta(hours=1) if closed else None,
        closed_outcome=Outcome.FAILED if closed else None,
        closed_by="alice" if closed else None,
        close_reason="not in history" if closed else None,
    )


def message(rec: ReviewRecord) -> tuple[bytes, bytes]:
    return rec.trace_number.encode(), rec.model_dump_json().encode()


def test_a_closed_record_supersedes_the_open_one_and_a_tombstone_removes() -> None:
    latest, unreadable = latest_records(
        [
            message(record("T1")),
            message(record("T2")),
            message(record("T1", "closed")),
            (b"T3", record("T3").model_dump_json().encode()),
            (b"T3", None),
            (b"junk", b"{not json"),
        ]
    )
    assert unreadable == 1
    assert set(latest) == {"T1", "T2"}
    assert latest["T1"].state == "closed"
    assert [r.trace_number for r in open_items(latest)] == ["T2"]


def test_open_items_come_oldest_first() -> None:
    latest, _ = latest_records(
        [message(record("NEW", opened=OPENED + timedelta(days=1))), message(record("OLD"))]
    )
    assert [r.trace_number for r in open_items(latest)] == ["OLD", "NEW"]


def test_the_list_masks_the_msisdn() -> None:
    row = list_row(record("T1"))
    assert row["msisdn"] == "*******4567"
    assert row["amount"] == Decimal("100000")
    assert row["last_known_state"] == "not found once"


def test_show_prints_the_command_and_every_attempt_with_the_full_msisdn() -> None:
    out = io.StringIO()
    assert show({"T1": record("T1")}, "T1", Console(Format.TABLE, out, io.StringIO())) == 0
    text = out.getvalue()
    assert "08131234567" in text
    assert "partition 3 offset 42" in text
    assert "read timeout" in text
    assert "PAYMENT_NOT_FOUND" in text


def test_show_of_an_unknown_trace_number_says_so() -> None:
    err = io.StringIO()
    assert show({}, "NOPE", Console(Format.TABLE, io.StringIO(), err)) == 1
    assert "no review record for trace number NOPE" in err.getvalue()


def resolve_args(*argv: str) -> SimpleNamespace:
    args = parse(command, ["resolve", *argv])
    assert args.review_command == "resolve"
    return args


def test_a_decision_carries_the_command_msisdn_and_the_operator_evidence() -> None:
    args = resolve_args(
        "T1", "--outcome", "succeeded", "--by", "alice", "--reason", "PROCESSED", "--transaction-number", "N9"
    )
    decision = decision_for({"T1": record("T1")}, args)
    assert decision.model_dump() == {
        "schema_version": 1,
        "type": "review_decision",
        "trace_number": "T1",
        "msisdn": "08131234567",
        "outcome": "succeeded",
        "decided_by": "alice",
        "reason": "PROCESSED",
        "transaction_number": "N9",
        # the item's command: the decision goes to its partition and applies to it alone
        "source_partition": 3,
        "source_offset": 42,
    }


@pytest.mark.parametrize(
    ("records", "message_part"),
    [
        ({}, "no review record for trace number T1"),
        ({"T1": record("T1", "closed")}, "already closed (failed, by alice"),
    ],
)
def test_resolving_what_is_not_open_is_refused(records: dict[str, ReviewRecord], message_part: str) -> None:
    args = resolve_args("T1", "--outcome", "failed", "--by", "bob", "--reason", "not in history")
    with pytest.raises(OpsError) as info:
        decision_for(records, args)
    assert info.value.exit_code == EXIT_CONFIG
    assert message_part in str(info.value)


def test_a_blank_reason_is_refused() -> None:
    args = resolve_args("T1", "--outcome", "failed", "--by", "bob", "--reason", "  ")
    with pytest.raises(OpsError) as info:
        decision_for({"T1": record("T1")}, args)
    assert info.value.exit_code == EXIT_CONFIG
    assert "reason" in str(info.value)


def test_an_outcome_other_than_succeeded_or_failed_is_a_usage_error() -> None:
    with pytest.raises(click.UsageError) as info:
        resolve_args("T1", "--outcome", "declined", "--by", "bob", "--reason", "x")
    assert info.value.exit_code == 2
    assert "'declined' is not one of 'succeeded', 'failed'" in info.value.format_message()


@pytest.mark.parametrize(
    ("outcome", "says"),
    [
        ("failed", "during an E-Cash API outage it waits for the API"),
        ("succeeded", "needs no API call: is a worker running and ready"),
    ],
)
def test_a_decision_without_a_result_in_time_says_why_it_may_wait(outcome: str, says: str) -> None:
    decision = ReviewDecision(
        type="review_decision",
        trace_number="U1",
        msisdn="08131234567",
        outcome=outcome,
        decided_by="alice",
        reason="history at 17:39",
    )
    err = io.StringIO()
    console = Console(Format.TABLE, io.StringIO(), err)
    delivery = Delivery(topic="ecash.commands", partition=2, offset=7)
    assert report(decision, delivery, 60.0, console) == EXIT_NO_RESULT
    note = err.getvalue()
    assert "ecash.commands partition 2 offset 7" in note
    assert "do not send it again" in note
    assert says in note
