"""The headers of what the worker publishes: CloudEvents binary mode and the W3C trace context."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from worker.contracts import DeadLetter, Outcome, ResolvedBy, Result, ReviewRecord, event_id_for
from worker.pipeline.headers import (
    dead_letter_id,
    review_record_id,
    trace_context,
    valid_traceparent,
    valid_tracestate,
)
from worker.pipeline.publisher import Outbox
from worker.pipeline.results import command_result

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OUTBOX = Outbox("ecash.results", "ecash.commands.dlq", "ecash.review", source="/ecash-worker/ecash.commands")
NOW = datetime(2026, 11, 25, 17, 0, 1, 123456, tzinfo=UTC)


def _result() -> Result:
    from worker.contracts import Command

    command = Command.model_validate(
        {"type": "charge", "trace_number": "T1", "msisdn": "08131234567", "amount": "100000"}
    )
    return command_result(
        command,
        partition=3,
        offset=1041,
        outcome=Outcome.SUCCEEDED,
        resolved_by=ResolvedBy.RESPONSE,
        detail="charge processed",
        now=NOW,
        attempts=1,
        response_code="PROCESSED",
        transaction_number="1",
        trx_datetime=None,
    )


def _headers(record: object) -> dict[str, str]:
    headers = record.headers  # type: ignore[attr-defined]
    names = [name for name, _ in headers]
    assert len(names) == len(set(names)), names
    return {name: value.decode() for name, value in headers}


def test_a_result_carries_cloud_events_the_old_headers_and_the_commands_trace_context() -> None:
    result = _result()
    headers = _headers(
        OUTBOX.result(result, [("traceparent", TP.encode()), ("tracestate", b"congo=t61rcWkgMzE")])
    )
    assert headers == {
        "event_id": event_id_for("T1", 3, 1041),
        "outcome": "succeeded",
        "ce_specversion": "1.0",
        "ce_id": result.event_id,
        "ce_source": "/ecash-worker/ecash.commands",
        "ce_type": "id.co.mandiri.ecash.result.v1",
        "ce_time": "2026-11-25T17:00:01.123456Z",
        "ce_subject": "T1",
        "content-type": "application/json",
        "traceparent": TP,
        "tracestate": "congo=t61rcWkgMzE",
    }


def test_without_trace_context_nothing_is_invented() -> None:
    headers = _headers(OUTBOX.result(_result()))
    assert "traceparent" not in headers
    assert "tracestate" not in headers


def test_a_dead_letter_has_a_stable_id_from_where_the_message_was() -> None:
    letter = DeadLetter(
        reason="not_json: the message is not JSON",
        topic="ecash.commands",
        partition=3,
        offset=1043,
        key_b64=None,
        value_b64="aGVsbG8=",
        headers=[],
        timestamp_ms=1,
        dead_lettered_at=datetime(2026, 11, 25, 17, 0, 2, tzinfo=timezone(timedelta(hours=7))),
    )
    headers = _headers(OUTBOX.dead_letter(letter, b"k", [("traceparent", TP.encode())]))
    assert headers["reason"] == "not_json: the message is not JSON"
    assert headers["ce_id"] == dead_letter_id("ecash.commands", 3, 1043)
    assert headers["ce_id"] == _headers(OUTBOX.dead_letter(letter, None))["ce_id"]  # published again: same id
    assert headers["ce_type"] == "id.co.mandiri.ecash.dead_letter.v1"
    assert headers["ce_time"] == "2026-11-25T10:00:02Z"  # in UTC
    assert "ce_subject" not in headers  # nobody knows its trace number
    assert headers["traceparent"] == TP
    with_subject = _headers(OUTBOX.dead_letter(letter, None, subject="T9"))
    assert with_subject["ce_subject"] == "T9"


def test_a_review_item_has_one_id_when_opened_and_another_when_closed() -> None:
    opened = ReviewRecord.model_validate(
        {
            "trace_number": "T1",
            "state": "open",
            "command": {"type": "credit", "trace_number": "T1", "msisdn": "08139876543", "amount": "5"},
            "source_partition": 3,
            "source_offset": 1044,
            "attempts": [],
            "last_known_state": "credit sent; outcome unknown",
            "opened_at": NOW,
        }
    )
    closed = opened.model_copy(update={"state": "closed", "closed_at": NOW + timedelta(hours=1)})
    a, b = _headers(OUTBOX.review(opened)), _headers(OUTBOX.review(closed, [("traceparent", TP.encode())]))
    assert (
        a["ce_id"]
        == review_record_id("T1:3:1044", "open")
        != b["ce_id"]
        == review_record_id("T1:3:1044", "closed")
    )
    assert a["ce_type"] == b["ce_type"] == "id.co.mandiri.ecash.review_record.v1"
    assert (a["ce_time"], b["ce_time"]) == ("2026-11-25T17:00:01.123456Z", "2026-11-25T18:00:01.123456Z")
    assert a["ce_subject"] == "T1"
    assert b["traceparent"] == TP
    assert "traceparent" not in a


def test_traceparent_is_checked_as_w3c_writes_it() -> None:
    assert valid_traceparent(TP)
    assert valid_traceparent(
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future"
    )  # later version
    for bad in [
        "",
        TP.upper(),  # hex is lowercase
        TP + "-x",  # version 00 has exactly four fields
        "ff" + TP[2:],  # version ff is invalid
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short trace id
        " " + TP,
        TP.replace("-", "_"),
        TP + "\n",
    ]:
        assert not valid_traceparent(bad), bad


def test_tracestate_is_checked_and_kept_only_with_a_traceparent() -> None:
    assert valid_tracestate("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
    assert valid_tracestate("tenant@vendor=x , other=y")
    for bad in [
        "",
        "Rojo=1",
        "a=",
        "a=b,a=c",
        "a=b=c",
        "a",
        "a=b\x01",
        ",".join(f"k{i}=v" for i in range(33)),
    ]:
        assert not valid_tracestate(bad), bad
    assert trace_context([("tracestate", b"a=b")]) == ()  # no traceparent, no tracestate
    # tracestate headers are joined; a bad one is dropped, the traceparent still goes
    assert trace_context([("traceparent", TP.encode()), ("tracestate", b"a=b"), ("tracestate", b"c=d")]) == (
        ("traceparent", TP.encode()),
        ("tracestate", b"a=b,c=d"),
    )
    assert trace_context([("traceparent", TP.encode()), ("tracestate", b"A=b")]) == (
        ("traceparent", TP.encode()),
    )


def test_a_malformed_or_repeated_traceparent_is_dropped_never_copied() -> None:
    assert trace_context([("traceparent", b"garbage")]) == ()
    assert trace_context([("traceparent", TP.encode()), ("traceparent", TP.encode())]) == ()
    assert trace_context([("traceparent", b"\xff" + TP.encode()[1:])]) == ()
    assert trace_context([("traceparent", None)]) == ()
    assert trace_context([("Traceparent", TP.encode()), ("other", b"x")]) == (("traceparent", TP.encode()),)


@given(st.lists(st.tuples(st.sampled_from(["traceparent", "tracestate", "x"]), st.binary(max_size=80))))
def test_what_is_copied_is_always_well_formed(headers: list[tuple[str, bytes]]) -> None:
    copied = dict(trace_context(headers))
    if "traceparent" in copied:
        assert valid_traceparent(copied["traceparent"].decode())
    else:
        assert "tracestate" not in copied
    if "tracestate" in copied:
        assert valid_tracestate(copied["tracestate"].decode())


@given(
    st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
    st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
)
def test_every_well_formed_traceparent_is_copied_as_it_came(trace: str, parent: str) -> None:
    value = f"00-{trace}-{parent}-01"
    expected = trace != "0" * 32 and parent != "0" * 16
    assert (
        trace_context([("traceparent", value.encode())]) == (("traceparent", value.encode()),)
    ) is expected
