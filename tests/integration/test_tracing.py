"""Trace context end to end against the real broker and the sandbox over a real socket: a producer's span
in the command's ``traceparent`` header is the parent of the worker's span for that command, one trace per
command, with the expected spans under it (the SDK's in-memory exporter, in this process)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ecash_dev.sandbox.faults import FaultKind, FaultRule
from ecash_dev.sandbox.server import RunningSandbox, serve_sandbox
from ecash_dev.sandbox.state import SandboxConfig, WalletSpec
from tests.integration.harness import (
    command,
    create_topics,
    eventually,
    fast_settings,
    running_worker,
    wait_results,
)
from tests.spans import capture_spans, children, shape
from worker import tracing
from worker.ecash.wire import PATHS, Operation
from worker.settings import Settings

pytestmark = pytest.mark.kafka

RICH = "0811000000001"
CHARGE = f"POST {PATHS[Operation.CHARGE]}"
STATUS = f"POST {PATHS[Operation.STATUS]}"
HISTORY = f"POST {PATHS[Operation.HISTORY]}"
LOGIN = f"POST {PATHS[Operation.LOGIN]}"


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    config = SandboxConfig(
        wallets=[WalletSpec(msisdn=RICH, balance=Decimal("1000000"))], auto_create_wallets=False
    )
    async with serve_sandbox(config) as running:
        yield running


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with capture_spans() as exporter:
        yield exporter


async def produce_traced(
    settings: Settings, messages: list[dict[str, object]], traced: set[str]
) -> dict[str, int]:
    """Each message keyed by its MSISDN; those whose trace number is in ``traced`` sent from a PRODUCER
    span of this process, its context in ``traceparent``. Returns trace number -> producer span id."""
    tracer = trace.get_tracer("test-producer", tracer_provider=tracing.provider())
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    sent: dict[str, int] = {}
    try:
        for message in messages:
            trace_number = str(message["trace_number"])
            headers: list[tuple[str, bytes]] = [("content-type", b"application/json")]
            if trace_number in traced:
                with tracer.start_as_current_span(
                    f"send {settings.commands_topic}", kind=SpanKind.PRODUCER
                ) as span:
                    carrier: dict[str, str] = {}
                    TraceContextTextMapPropagator().inject(carrier)
                    headers += [(k, v.encode()) for k, v in carrier.items()]
                    sent[trace_number] = span.get_span_context().span_id
            await producer.send_and_wait(
                settings.commands_topic,
                orjson.dumps(message),
                key=str(message["msisdn"]).encode(),
                headers=headers,
            )
    finally:
        await producer.stop()
    return sent


def consumer_span(finished: Sequence[ReadableSpan], trace_number: str) -> ReadableSpan:
    found = [
        s
        for s in finished
        if s.kind is SpanKind.CONSUMER and (s.attributes or {}).get("ecash.trace_number") == trace_number
    ]
    assert len(found) == 1, [s.name for s in found]
    return found[0]


def without_logins(lines: list[str]) -> list[str]:
    """The first Login may happen at start-up or under the first command: either is right."""
    return [line for line in lines if line.strip() != LOGIN]


async def test_one_trace_per_command_with_the_expected_span_tree(
    kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    settings = fast_settings(kafka_bootstrap, sandbox.base_url, f"t{uuid.uuid4().hex[:10]}", tmp_path)
    await create_topics(settings)
    sandbox.sandbox.faults.replace(
        [FaultRule(operation=Operation.CHARGE, kind=FaultKind.HTTP_5XX_AFTER_COMMIT, trace_numbers=("TR2",))]
    )
    commands = [command("TR1", RICH, 100), command("TR2", RICH, 200), command("TR3", RICH, 300, "credit")]
    producer_spans = await produce_traced(settings, commands, traced={"TR1", "TR2"})
    async with running_worker(settings):
        results = await wait_results(settings, {"TR1", "TR2", "TR3"}, timeout_s=60)

        def all_ended() -> bool:
            ended = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CONSUMER]
            return len(ended) >= 3

        await eventually(all_ended, timeout_s=10)
    outcomes = {t: (e[0]["outcome"], e[0]["resolved_by"]) for t, e in results.by_trace().items()}
    assert outcomes == {
        "TR1": ("succeeded", "response"),
        "TR2": ("succeeded", "status_inquiry"),
        "TR3": ("succeeded", "response"),
    }
    finished = spans.get_finished_spans()
    commands_topic, journal, results_topic = (
        settings.commands_topic,
        settings.journal_topic,
        settings.results_topic,
    )

    # One trace per command: the producer's for TR1 and TR2, a new one for TR3 (no traceparent).
    roots = {t: consumer_span(finished, t) for t in ("TR1", "TR2", "TR3")}
    trace_ids = {t: root.context.trace_id for t, root in roots.items() if root.context is not None}
    assert len(set(trace_ids.values())) == 3
    for trace_number in ("TR1", "TR2"):
        root = roots[trace_number]
        assert root.parent is not None
        assert root.parent.is_remote
        assert root.parent.span_id == producer_spans[trace_number]
        in_trace = [s for s in finished if s.context and s.context.trace_id == trace_ids[trace_number]]
        assert [s.kind for s in in_trace].count(SpanKind.CONSUMER) == 1
        assert [s.name for s in in_trace if s.kind is SpanKind.PRODUCER and not s.parent] == [
            f"send {commands_topic}"
        ]
    assert roots["TR3"].parent is None

    attributes = dict(roots["TR1"].attributes or {})
    assert attributes["messaging.system"] == "kafka"
    assert attributes["messaging.destination.name"] == commands_topic
    assert attributes["messaging.operation"] == "process"
    assert isinstance(attributes["messaging.kafka.destination.partition"], int)
    assert isinstance(attributes["messaging.kafka.message.offset"], int)
    assert (attributes["ecash.outcome"], attributes["ecash.resolved_by"]) == ("succeeded", "response")

    # TR1: the intent, the Charge, the outcome with its result.
    assert without_logins(shape(finished, roots["TR1"])) == [
        f"process {commands_topic}",
        f"  send {journal}",
        f"  {CHARGE}",
        f"  send {results_topic}",
    ]
    charge = next(s for s in children(finished, roots["TR1"]) if s.name == CHARGE)
    assert charge.kind is SpanKind.CLIENT
    charge_attributes = dict(charge.attributes or {})
    host, port = sandbox.base_url.split("//")[1].split("/")[0].split(":")
    assert charge_attributes["http.request.method"] == "POST"
    assert charge_attributes["server.address"] == host
    assert charge_attributes["server.port"] == int(port)
    assert charge_attributes["http.response.status_code"] == 200
    assert charge_attributes["ecash.operation"] == "charge"
    assert charge_attributes["ecash.response_code"] == "PROCESSED"
    assert charge_attributes["ecash.response_class"] == "succeeded"

    # TR2: the Charge answered 5xx after the sandbox committed it: ambiguous, resolved by Status Inquiry
    # (corroborated by Transaction History) under the resolution span.
    tree = without_logins(shape(finished, roots["TR2"]))
    assert tree[:5] == [
        f"process {commands_topic}",
        f"  send {journal}",
        f"  {CHARGE}",
        "  resolution",
        f"    send {journal}",
    ]
    assert tree[-1] == f"    send {results_topic}"
    assert f"    {STATUS}" in tree
    assert f"    {HISTORY}" in tree
    assert set(tree[5:-1]) <= {f"    {STATUS}", f"    {HISTORY}", f"    send {journal}"}
    ambiguous = next(s for s in children(finished, roots["TR2"]) if s.name == CHARGE)
    assert (ambiguous.attributes or {})["ecash.response_class"] == "ambiguous"
    http_status = (ambiguous.attributes or {})["http.response.status_code"]
    assert isinstance(http_status, int)
    assert http_status >= 500
    assert ambiguous.status.status_code is StatusCode.ERROR
    resolution = next(s for s in children(finished, roots["TR2"]) if s.name == "resolution")
    inquiries = [s for s in children(finished, resolution) if s.name == STATUS]
    assert inquiries
    assert all((s.attributes or {})["ecash.operation"] == "status" for s in inquiries)
    assert (roots["TR2"].attributes or {})["ecash.resolved_by"] == "status_inquiry"

    # Never the MSISDN, in any span.
    for span in finished:
        text = repr(dict(span.attributes or {})) + span.name
        assert RICH not in text, span.name
        assert RICH[-9:] not in text, span.name
