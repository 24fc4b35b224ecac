"""Spans captured with the OpenTelemetry SDK's in-memory exporter, for the tracing tests (unit and
integration): ``capture_spans()`` installs a provider that records every span and keeps it when it ends,
then puts the worker's default back (``ECASH_OTEL_EXPORTER=none``: nothing recorded)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from worker import tracing

PRODUCER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PRODUCER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{PRODUCER_TRACE_ID}-{PRODUCER_SPAN_ID}-01"


@contextlib.contextmanager
def capture_spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.configure("none")  # the worker's default


def hex_id(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def children(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    """The spans whose parent is ``parent``, in the order they started."""
    assert parent.context is not None
    found = [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]
    return sorted(found, key=lambda s: s.start_time or 0)


def shape(spans: Sequence[ReadableSpan], root: ReadableSpan, depth: int = 0) -> list[str]:
    """The tree under ``root`` as indented names: ``["process t", "  send journal", ...]``."""
    lines = ["  " * depth + root.name]
    for child in children(spans, root):
        lines.extend(shape(spans, child, depth + 1))
    return lines
