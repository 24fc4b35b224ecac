"""Trace context end to end (OpenTelemetry): a span per command, children for what the command does.

The command's W3C ``traceparent``/``tracestate`` Kafka headers become the parent of a CONSUMER span per
message (``process <topic>``, the OpenTelemetry messaging conventions). Under it:

- ``send <journal topic>`` (PRODUCER): a journal write committed on its own (an intent, a resolution's
  progress), through the partition's transactional writer;
- ``<METHOD> <path>`` (CLIENT): each HTTP exchange with the E-Cash API, Logins and Status Inquiries
  included, with the HTTP conventions' attributes and the operation, response code and class;
- ``resolution`` (INTERNAL): Status Inquiry on its schedule, its calls under it;
- ``send <topic>`` (PRODUCER): the transaction that ends the message: its journal record, result (or dead
  letter, review record) and offset.

Every attribute is an identifier an SRE may search for or a bounded value: never an MSISDN (masked or
not: it is not needed), an amount, a record key or a secret. A malformed or missing ``traceparent``
starts a new trace (the command is processed the same).

The exporter is chosen by ``ECASH_OTEL_EXPORTER``. ``otlp``: the SDK's provider records every span and
a batch exporter sends them over OTLP/HTTP, configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables
(the optional ``otel`` extra). ``none`` (the default): nothing could read a recorded span, so none is
recorded: each message still gets a span context of its own in the producer's trace (a new trace when it
has none), current while it is processed, so the logs carry its ``trace_id`` and ``span_id``; the child
spans are not made. That keeps the cost per command near nothing (bench/tracing_cost.py). Tests install
their own provider (``install``) with the SDK's in-memory exporter. The instrumented code calls only this
module (docs/tracing.md).
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import (
    INVALID_SPAN,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "OTLP_EXPORTER_MODULE",
    "api_call",
    "api_call_answered",
    "command_span",
    "configure",
    "current_ids",
    "install",
    "otlp_exporter_missing",
    "parent_from_headers",
    "provider",
    "record_outcome",
    "recording",
    "resolution_span",
    "shutdown",
    "write_span",
]

TRACER_NAME = "ecash-worker"
OTLP_EXPORTER_MODULE = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
TRACE_HEADERS = frozenset({"traceparent", "tracestate"})
MAX_HEADER_CHARS = 512  # tracestate may hold 32 members of 256 characters; more is not context, it is noise

_PROPAGATOR = TraceContextTextMapPropagator()
_IDS = RandomIdGenerator()
_NOT_RECORDED = contextlib.nullcontext(INVALID_SPAN)  # a child span when nothing records (reusable)
_provider: TracerProvider = TracerProvider(resource=Resource.create({"service.name": TRACER_NAME}))
_tracer: trace.Tracer = _provider.get_tracer(TRACER_NAME)
_recording = False  # True once a provider with an exporter is installed
# the command span of the running task (its outcome is recorded there from anywhere below it)
_COMMAND_SPAN = otel_context.create_key("ecash-command-span")


class _JobLike(Protocol):  # worker.pipeline.job.Job, without importing the pipeline here
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def headers(self) -> list[tuple[str, bytes]]: ...
    @property
    def intake(self) -> object: ...


# --- the provider -------------------------------------------------------------------------------------


def otlp_exporter_missing() -> bool:
    """True when ``ECASH_OTEL_EXPORTER=otlp`` could not work: the ``otel`` extra is not installed."""
    try:
        return importlib.util.find_spec(OTLP_EXPORTER_MODULE) is None
    except ModuleNotFoundError:  # a parent package is missing
        return True


def configure(exporter: str, *, service_version: str = "") -> TracerProvider:
    """The worker's provider for ``ECASH_OTEL_EXPORTER`` (``none`` or ``otlp``), installed here."""
    attributes = {"service.name": TRACER_NAME}
    if service_version:
        attributes["service.version"] = service_version
    provider = TracerProvider(resource=Resource.create(attributes))
    if exporter == "otlp":
        # preflight refused otlp without the extra; the OTEL_EXPORTER_OTLP_* variables configure it
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider, recording=exporter != "none")
    return provider


def install(provider: TracerProvider, *, recording: bool = True) -> None:
    """Use ``provider`` for every span from now on: the worker's, or a test's with an in-memory exporter.
    ``recording=False``: spans are not recorded (no exporter), only their context is made."""
    global _provider, _tracer, _recording
    _provider = provider
    _tracer = provider.get_tracer(TRACER_NAME)
    _recording = recording


def provider() -> TracerProvider:
    """The provider in use (a test's producer makes its spans with it)."""
    return _provider


def recording() -> bool:
    """Whether spans are recorded (an exporter, or a test's provider) or only their context is made."""
    return _recording


def shutdown() -> None:
    """Flush and stop the exporter (at the worker's exit)."""
    _provider.shutdown()


# --- the command span ---------------------------------------------------------------------------------


def parent_from_headers(headers: Iterable[tuple[str, bytes]]) -> otel_context.Context:
    """The context the command's ``traceparent``/``tracestate`` headers carry; empty (a new trace) when
    they are missing, malformed or not text."""
    carrier: dict[str, str] = {}
    parents = 0
    for name, value in headers:
        lowered = name.lower()
        parents += lowered == "traceparent"
        if lowered not in TRACE_HEADERS or lowered in carrier or not isinstance(value, bytes | bytearray):
            continue
        try:
            text = bytes(value[: MAX_HEADER_CHARS + 1]).decode("ascii")
        except UnicodeDecodeError:
            continue
        if len(text) <= MAX_HEADER_CHARS:
            carrier[lowered] = text
    if "traceparent" not in carrier or parents != 1:  # two: which? none (as results copy it: headers.py)
        return otel_context.Context()
    return _PROPAGATOR.extract(carrier, context=otel_context.Context())


def _trace_number(intake: object) -> str | None:
    """A parsed command's, a rejection's or a review decision's trace number (duck-typed: no import of
    the pipeline here)."""
    for holder in (getattr(intake, "command", None), getattr(intake, "decision", None), intake):
        value = getattr(holder, "trace_number", None)
        if isinstance(value, str):
            return value
    return None


def _command_type(intake: object) -> str | None:
    kind = getattr(getattr(intake, "command", None), "type", None)
    value = getattr(kind, "value", None)
    return value if isinstance(value, str) else None


def command_span(job: _JobLike, topic: str) -> contextlib.AbstractContextManager[Span]:
    """The span of one message's processing, child of the producer's span when its headers carry one."""
    if not _recording:
        return _ContextOnly(job.headers)
    return _recorded_command_span(job, topic)


@contextlib.contextmanager
def _recorded_command_span(job: _JobLike, topic: str) -> Iterator[Span]:
    parent = parent_from_headers(job.headers)
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation": "process",
        "messaging.destination.name": topic,
        "messaging.kafka.destination.partition": job.partition,
        "messaging.kafka.message.offset": job.offset,
    }
    trace_number = _trace_number(job.intake)
    if trace_number is not None:
        attributes["ecash.trace_number"] = trace_number
    kind = _command_type(job.intake)
    if kind is not None:
        attributes["ecash.command.type"] = kind
    span = _tracer.start_span(f"process {topic}", parent, SpanKind.CONSUMER, attributes)
    ctx = otel_context.set_value(_COMMAND_SPAN, span, trace.set_span_in_context(span, parent))
    token = otel_context.attach(ctx)
    try:
        yield span
    except BaseException as exc:
        if span.is_recording():
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        otel_context.detach(token)
        span.end()


# W3C trace context, version 00 exactly, later versions with their extra fields (never ff)
_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-[^\s]*)?")


def _producers_trace_id(headers: Iterable[tuple[str, bytes]]) -> int:
    """The trace id of the one ``traceparent`` header when it is valid (as the propagator reads it:
    tests/unit/observability/test_tracing.py holds them to the same cases), else 0."""
    found = [value for name, value in headers if name.lower() == "traceparent"]
    if len(found) != 1:
        return 0
    match = _TRACEPARENT.fullmatch(found[0]) if isinstance(found[0], bytes) else None
    if match is None or match[1] == b"ff" or (match[1] == b"00" and match[4] is not None):
        return 0
    if match[3] == b"0" * 16:
        return 0
    return int(match[2], 16)


# With no exporter, the current message's ids: its trace id and span id packed in one int (trace << 64 |
# span), 0 outside any message. One int, not an OpenTelemetry context: nothing the garbage collector
# tracks is made per message besides the variable's own token (docs/performance.md, "Tracing").
_MESSAGE_IDS: contextvars.ContextVar[int] = contextvars.ContextVar("ecash_message_ids", default=0)
_SPAN_BITS = 64
_SPAN_MASK = (1 << _SPAN_BITS) - 1


class _ContextOnly(NonRecordingSpan):
    """With no exporter: ids of the message's own, in its producer's trace (or a new one), current while it
    is processed (the logs read them); nothing recorded. Lean on purpose: it runs for every message. Its
    ``SpanContext`` is made only when asked for."""

    __slots__ = ("_headers", "_ids", "_token")
    _context = INVALID_SPAN.get_span_context()  # NonRecordingSpan's own attribute (its repr), never used

    def __init__(self, headers: Iterable[tuple[str, bytes]]) -> None:  # no super(): no context made yet
        self._headers = headers
        self._ids = 0

    def __enter__(self) -> _ContextOnly:  # the span itself, as start_span gives
        trace_id = _producers_trace_id(self._headers) or _IDS.generate_trace_id()
        self._ids = trace_id << _SPAN_BITS | _IDS.generate_span_id()
        self._token = _MESSAGE_IDS.set(self._ids)
        return self

    def __exit__(self, *_exc: object) -> None:
        _MESSAGE_IDS.reset(self._token)

    def get_span_context(self) -> SpanContext:
        return SpanContext(self._ids >> _SPAN_BITS, self._ids & _SPAN_MASK, is_remote=False)


def record_outcome(outcome: str, resolved_by: str, response_code: str | None) -> None:
    """The command's ending, on its span (whichever child span is current)."""
    if not _recording:
        return
    span = otel_context.get_value(_COMMAND_SPAN)
    if isinstance(span, Span) and span.is_recording():
        span.set_attribute("ecash.outcome", outcome)
        span.set_attribute("ecash.resolved_by", resolved_by)
        if response_code is not None:
            span.set_attribute("ecash.response_code", response_code)


# --- its children -------------------------------------------------------------------------------------


def write_span(
    records: Iterable[Any], *, ends_message: bool, prefer: Sequence[str] = ()
) -> contextlib.AbstractContextManager[Span]:
    """A transactional write: records (each with a ``topic``) and, when ``ends_message``, the message's
    offset. Named after the first topic of ``prefer`` it writes to (the result's before the journal's)."""
    if not _recording:
        return _NOT_RECORDED
    topics: list[str] = []
    count = 0
    for record in records:
        count += 1
        topic = getattr(record, "topic", None)
        if isinstance(topic, str) and topic not in topics:
            topics.append(topic)
    destination = next((t for t in prefer if t in topics), topics[0] if topics else "offsets")
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation": "publish",
        "messaging.destination.name": destination,
        "messaging.batch.message_count": count,
        "ecash.write": "outcome" if ends_message else "journal",
    }
    return _tracer.start_as_current_span(f"send {destination}", kind=SpanKind.PRODUCER, attributes=attributes)


def resolution_span(reason: str) -> contextlib.AbstractContextManager[Span]:
    """Resolving an ambiguous money call through Status Inquiry."""
    if not _recording:
        return _NOT_RECORDED
    return _tracer.start_as_current_span(
        "resolution", kind=SpanKind.INTERNAL, attributes={"ecash.resolution.reason": reason}
    )


def api_call(
    operation: str, method: str, base_url: object, path: str
) -> contextlib.AbstractContextManager[Span]:
    """One HTTP exchange with the API (no form field, header or query is recorded: they carry the
    MSISDN and the credentials)."""
    if not _recording:
        return _NOT_RECORDED
    parts = urlsplit(str(base_url))
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "server.address": parts.hostname or "",
        "url.path": (parts.path.rstrip("/") + path),
        "ecash.operation": operation,
    }
    if parts.port is not None:
        attributes["server.port"] = parts.port
    return _tracer.start_as_current_span(
        f"{method} {path}", kind=SpanKind.CLIENT, attributes=attributes, record_exception=False
    )


def api_call_answered(
    span: Span, *, http_status: int | None, code: str | None, call_class: str, reason: str
) -> None:
    """What the exchange gave: HTTP status, the API's response code, its class (``answered``,
    ``not_sent``, ``ambiguous``, or for a money call ``succeeded``/``declined``...)."""
    if not span.is_recording():
        return
    if http_status is not None:
        span.set_attribute("http.response.status_code", http_status)
    if code is not None:
        span.set_attribute("ecash.response_code", code)
    span.set_attribute("ecash.response_class", call_class)
    if call_class in ("not_sent", "ambiguous"):
        span.set_attribute("error.type", reason or call_class)
        span.set_status(Status(StatusCode.ERROR, call_class))


# --- logs ---------------------------------------------------------------------------------------------


def current_ids() -> Mapping[str, str]:
    """``trace_id`` and ``span_id`` of the current message (no exporter) or span (hex, as W3C writes them),
    or nothing."""
    ids = _MESSAGE_IDS.get()
    if ids:
        return {"trace_id": format(ids >> _SPAN_BITS, "032x"), "span_id": format(ids & _SPAN_MASK, "016x")}
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}
