"""Trace context end to end (worker/tracing.py), on the processor's in-memory rig and the
SDK's in-memory exporter: the producer's ``traceparent`` is the parent of one CONSUMER span per command,
with the journal writes, each API call, the resolution and the result publish under it; a malformed or
missing ``traceparent`` starts a new trace; no attribute holds the MSISDN; the JSON logs carry the ids."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator, Sequence

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.spans import (
    PRODUCER_SPAN_ID,
    PRODUCER_TRACE_ID,
    TRACEPARENT,
    capture_spans,
    children,
    hex_id,
    shape,
)
from tests.unit.ecash.fake_api import history_entry, make_settings
from tests.unit.pipeline.rig import RICH, Rig, charge, rig
from worker import preflight, tracing
from worker.ecash import wire
from worker.observability.logs import configure_logging
from worker.settings import load_settings

CHARGE, STATUS, HISTORY = wire.Operation.CHARGE, wire.Operation.STATUS, wire.Operation.HISTORY
LOGIN_SPAN = "POST /SessionManager/Login"
CHARGE_SPAN = "POST /TransactionManager/Charge"
PROCESSED_T1 = {"status": "PROCESSED", "traceNumber": "T1", "transactionNumber": "X1"}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with capture_spans() as exporter:
        yield exporter


def root_of(finished: Sequence[ReadableSpan]) -> ReadableSpan:
    roots = [s for s in finished if s.kind is SpanKind.CONSUMER]
    assert len(roots) == 1, [s.name for s in finished]
    return roots[0]


async def run_charge(r: Rig, headers: list[tuple[str, bytes]], body: dict[str, object] | None = None) -> None:
    job = r.job(body or charge())
    job.headers = headers
    assert await r.processor.handle(job)


def assert_no_msisdn(finished: Sequence[ReadableSpan]) -> None:
    for span in finished:
        text = json.dumps({k: str(v) for k, v in (span.attributes or {}).items()}) + span.name
        for event in span.events:
            text += json.dumps({k: str(v) for k, v in (event.attributes or {}).items()})
        assert RICH not in text, (span.name, text)
        assert RICH[-8:] not in text, (span.name, text)


# --- the context the headers carry -----------------------------------------------------------------


def test_a_valid_traceparent_and_tracestate_are_the_parent() -> None:
    ctx = tracing.parent_from_headers(
        [("content-type", b"application/json"), ("traceparent", TRACEPARENT.encode()), ("tracestate", b"k=v")]
    )
    parent = trace.get_current_span(ctx).get_span_context()
    assert parent.is_valid
    assert parent.is_remote
    assert (hex_id(parent.trace_id, 32), hex_id(parent.span_id, 16)) == (PRODUCER_TRACE_ID, PRODUCER_SPAN_ID)
    assert parent.trace_state.get("k") == "v"


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [("tracestate", b"k=v")],
        [("traceparent", b"garbage")],
        [("traceparent", b"00-" + b"0" * 32 + b"-00f067aa0ba902b7-01")],  # all-zero trace id
        [("traceparent", b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")],  # version ff
        [("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7")],  # no flags
        [("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".encode("utf-16"))],
        [("traceparent", b"\xff\xfe\xfd")],
        [("traceparent", TRACEPARENT.encode() + b" " * 600)],
        [("traceparent", TRACEPARENT.encode()), ("traceparent", TRACEPARENT.encode())],
    ],
    ids=[
        "none",
        "tracestate-only",
        "garbage",
        "zero-trace",
        "version-ff",
        "no-flags",
        "utf16",
        "binary",
        "huge",
        "two",
    ],
)
def test_a_missing_or_malformed_traceparent_is_no_parent(headers: list[tuple[str, bytes]]) -> None:
    ctx = tracing.parent_from_headers(headers)
    assert not trace.get_current_span(ctx).get_span_context().is_valid
    # with no exporter the message's trace is read by a lean parser: it agrees
    job = type("J", (), {"partition": 0, "offset": 0, "headers": headers, "intake": None})()
    with tracing.command_span(job, "commands") as span:
        assert span.get_span_context().is_valid
        assert hex_id(span.get_span_context().trace_id, 32) != PRODUCER_TRACE_ID


@pytest.mark.parametrize(
    "value",
    [
        TRACEPARENT,
        TRACEPARENT.replace("-01", "-00"),  # not sampled: still the producer's trace
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-later",  # a later version
    ],
)
def test_both_readers_take_a_valid_traceparent(value: str) -> None:
    headers = [("TraceParent", value.encode())]
    ctx = tracing.parent_from_headers(headers)
    assert hex_id(trace.get_current_span(ctx).get_span_context().trace_id, 32) == PRODUCER_TRACE_ID
    job = type("J", (), {"partition": 0, "offset": 0, "headers": headers, "intake": None})()
    with tracing.command_span(job, "commands") as span:
        assert hex_id(span.get_span_context().trace_id, 32) == PRODUCER_TRACE_ID
        assert hex_id(span.get_span_context().span_id, 16) != PRODUCER_SPAN_ID
        assert tracing.current_ids()["trace_id"] == PRODUCER_TRACE_ID
    assert tracing.current_ids() == {}


async def test_a_malformed_traceparent_starts_a_new_trace_and_the_command_is_processed(
    spans: InMemorySpanExporter,
) -> None:
    r = await rig()
    r.api.queue(CHARGE, PROCESSED_T1)
    await run_charge(r, [("traceparent", b"00-not-a-trace-01")])
    assert r.outcomes() == [("succeeded", "response")]
    root = root_of(spans.get_finished_spans())
    assert root.parent is None
    assert root.context is not None
    assert root.context.trace_id != int(PRODUCER_TRACE_ID, 16)


# --- the span tree -----------------------------------------------------------------------------------


async def test_a_charge_is_one_span_with_its_writes_and_calls_under_it(spans: InMemorySpanExporter) -> None:
    r = await rig()
    r.api.queue(CHARGE, PROCESSED_T1)
    await run_charge(r, [("traceparent", TRACEPARENT.encode()), ("tracestate", b"congo=t61rcWkgMzE")])
    finished = spans.get_finished_spans()
    root = root_of(finished)
    assert root.parent is not None
    assert root.parent.is_remote
    assert hex_id(root.parent.span_id, 16) == PRODUCER_SPAN_ID
    assert {hex_id(s.context.trace_id, 32) for s in finished if s.context} == {PRODUCER_TRACE_ID}
    assert root.context is not None
    assert root.context.trace_state.get("congo") == "t61rcWkgMzE"
    assert shape(finished, root) == [
        "process commands",
        "  send journal",  # the intent
        f"  {LOGIN_SPAN}",
        f"  {CHARGE_SPAN}",
        "  send results",  # outcome, result and offset in one transaction
    ]
    assert dict(root.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation": "process",
        "messaging.destination.name": "commands",
        "messaging.kafka.destination.partition": 0,
        "messaging.kafka.message.offset": 0,
        "ecash.trace_number": "T1",
        "ecash.command.type": "charge",
        "ecash.outcome": "succeeded",
        "ecash.resolved_by": "response",
        "ecash.response_code": "PROCESSED",
    }
    intent, login, call, publish = children(finished, root)
    assert intent.kind is SpanKind.PRODUCER
    assert publish.kind is SpanKind.PRODUCER
    assert (intent.attributes or {})["ecash.write"] == "journal"
    assert (publish.attributes or {})["ecash.write"] == "outcome"
    assert (publish.attributes or {})["messaging.destination.name"] == "results"
    assert (publish.attributes or {})["messaging.batch.message_count"] == 2  # journal record, result
    assert call.kind is SpanKind.CLIENT
    assert login.kind is SpanKind.CLIENT
    attributes = dict(call.attributes or {})
    assert attributes == {
        "http.request.method": "POST",
        "server.address": httpx.URL(make_settings().api_base_url).host,
        "url.path": attributes["url.path"],
        "ecash.operation": "charge",
        "http.response.status_code": 200,
        "ecash.response_code": "PROCESSED",
        "ecash.response_class": "succeeded",
        **({"server.port": attributes["server.port"]} if "server.port" in attributes else {}),
    }
    assert str(attributes["url.path"]).endswith("/TransactionManager/Charge")
    assert call.status.status_code is StatusCode.UNSET
    assert_no_msisdn(finished)


async def test_an_ambiguous_charge_has_a_resolution_span_with_its_status_inquiries(
    spans: InMemorySpanExporter,
) -> None:
    r = await rig()
    r.api.queue(CHARGE, httpx.ReadTimeout("timed out"))
    r.api.queue(STATUS, {"status": "PROCESSED", "traceNumber": "T1"})
    shows = {"status": "PROCESSED", "accountHistoryDetails": [history_entry("T1", "-Rp 1.000,00")]}
    r.api.queue(HISTORY, shows)
    await run_charge(r, [("traceparent", TRACEPARENT.encode())])
    assert r.outcomes() == [("succeeded", "status_inquiry")]
    finished = spans.get_finished_spans()
    root = root_of(finished)
    assert shape(finished, root) == [
        "process commands",
        "  send journal",
        f"  {LOGIN_SPAN}",
        f"  {CHARGE_SPAN}",
        "  resolution",
        "    send journal",  # the resolution's start
        "    POST /NonTransactionManager/Status",
        "    POST /NonTransactionManager/TransactionHistory",
        "    send results",
    ]
    call = next(s for s in finished if s.name == CHARGE_SPAN)
    assert call.status.status_code is StatusCode.ERROR
    assert (call.attributes or {})["ecash.response_class"] == "ambiguous"
    assert (call.attributes or {})["error.type"] == "read_timeout"
    assert "http.response.status_code" not in (call.attributes or {})
    resolution = next(s for s in finished if s.name == "resolution")
    assert (resolution.attributes or {})["ecash.resolution.reason"] == "read_timeout"
    inquiry = next(s for s in finished if (s.attributes or {}).get("ecash.operation") == "status")
    assert (inquiry.attributes or {})["ecash.response_code"] == "PROCESSED"
    assert (inquiry.attributes or {})["ecash.response_class"] == "answered"
    assert (root.attributes or {})["ecash.resolved_by"] == "status_inquiry"
    assert_no_msisdn(finished)


async def test_a_declined_charge_says_so_and_a_dead_letter_has_its_span(spans: InMemorySpanExporter) -> None:
    r = await rig()
    r.api.queue(CHARGE, {"status": "NOT_ENOUGH_CREDITS"})
    await run_charge(r, [])
    job = r.job(b"{not json", offset=1)
    assert await r.processor.handle(job)
    finished = spans.get_finished_spans()
    roots = [s for s in finished if s.kind is SpanKind.CONSUMER]
    assert len(roots) == 2
    assert roots[0].context
    assert roots[1].context
    assert roots[0].context.trace_id != roots[1].context.trace_id  # one trace per message
    call = next(s for s in finished if s.name == CHARGE_SPAN)
    assert (call.attributes or {})["ecash.response_class"] == "declined"
    assert (roots[0].attributes or {})["ecash.outcome"] == "declined"
    assert shape(finished, roots[1]) == ["process commands", "  send dlq"]
    assert "ecash.trace_number" not in (roots[1].attributes or {})
    assert_no_msisdn(finished)


# --- logs and settings ---------------------------------------------------------------------------------


def test_the_json_logs_carry_the_current_trace_and_span_ids(spans: InMemorySpanExporter) -> None:
    stream = io.StringIO()
    handler = configure_logging(load_settings(log_format="json"), stream)
    try:
        logger = logging.getLogger("worker.test")
        logger.warning("outside any span")
        job = type("J", (), {"partition": 3, "offset": 7, "headers": [("traceparent", TRACEPARENT.encode())]})
        job.intake = None  # type: ignore[attr-defined]
        with tracing.command_span(job(), "commands") as span:
            logger.warning("inside, msisdn 08131234567")
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logging.getLogger().removeHandler(handler)
    assert "trace_id" not in lines[0]
    assert "span_id" not in lines[0]
    context = span.get_span_context()
    assert lines[1]["trace_id"] == PRODUCER_TRACE_ID == hex_id(context.trace_id, 32)
    assert lines[1]["span_id"] == hex_id(context.span_id, 16)
    assert "08131234567" not in lines[1]["msg"]


def test_otlp_without_its_package_is_one_line_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(otel_exporter="otlp")
    monkeypatch.setattr(tracing, "otlp_exporter_missing", lambda: True)
    line = preflight.check_otel_exporter(settings)
    assert line is not None
    assert line.startswith("ECASH_OTEL_EXPORTER: otlp needs the exporter package")
    monkeypatch.setattr(tracing, "otlp_exporter_missing", lambda: False)
    assert preflight.check_otel_exporter(settings) is None
    assert preflight.check_otel_exporter(load_settings()) is None  # none: the default


def test_the_default_exporter_is_none_and_configure_installs_a_provider() -> None:
    assert load_settings().otel_exporter == "none"
    provider = tracing.configure("none", service_version="9.9")
    try:
        assert provider.resource.attributes["service.name"] == "ecash-worker"
        assert provider.resource.attributes["service.version"] == "9.9"
    finally:
        tracing.configure("none")


class IdsAtEachEvent:
    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

    def emit(self, _event: object) -> None:
        self.seen.append(dict(tracing.current_ids()))


async def test_with_no_exporter_nothing_is_recorded_but_the_logs_carry_the_commands_ids() -> None:
    """The default: each message's span context continues the producer's trace and is current while it is
    processed (its ids in the logs); no span is recorded, no child span is made."""
    tracing.configure("none")
    r = await rig()
    r.api.queue(CHARGE, PROCESSED_T1)
    events = IdsAtEachEvent()
    r.processor.effects.sink = events
    await run_charge(r, [("traceparent", TRACEPARENT.encode())])
    with tracing.api_call("charge", "POST", "http://h", "/p") as span:
        assert not span.is_recording()
    assert r.outcomes() == [("succeeded", "response")]
    assert events.seen
    assert {ids["trace_id"] for ids in events.seen} == {PRODUCER_TRACE_ID}
    assert len({ids["span_id"] for ids in events.seen}) == 1  # the message's own span context
    assert events.seen[0]["span_id"] != PRODUCER_SPAN_ID
    assert tracing.current_ids() == {}  # outside any message
