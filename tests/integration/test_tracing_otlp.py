"""``ECASH_OTEL_EXPORTER=otlp`` end to end: the real worker (its own process, as deployed) exports its spans
over OTLP/HTTP to a real tracing backend, Jaeger v2 (an OpenTelemetry collector with an in-memory store and
a query API), and the trace Jaeger then serves is the command's: the producer's trace id, the worker's
``process`` span under the producer's span, the API calls and the result's publish under it, the service
named, and no MSISDN, amount or secret anywhere in it. The worker's stop sends the last batch.

Jaeger is pinned in tools/jaeger and built by scripts/ensure-jaeger.sh (``make test`` runs it); the test
fails, never skips, when it is not built. Each test session's Jaeger listens on free loopback ports from a
config file of its own (several sessions may run on one machine)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecash_dev.kafka import free_ports
from ecash_dev.sandbox.faults import FaultKind, FaultRule
from ecash_dev.sandbox.server import RunningSandbox, serve_sandbox
from ecash_dev.sandbox.state import SandboxConfig, WalletSpec
from tests.integration.harness import (
    WorkerProcess,
    command,
    create_topics,
    fast_settings,
    produce_at,
    wait_results,
)
from worker import __version__
from worker.ecash.wire import PATHS, Operation
from worker.settings import SANDBOX_API_KEY, SANDBOX_CREDENTIALS, Settings

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
ENSURE = ROOT / "scripts" / "ensure-jaeger.sh"
INSTALL = "bash scripts/ensure-jaeger.sh (make test runs it)"
START_ATTEMPTS = 3  # a free port may be taken by another process before Jaeger binds it: new ports, again
KIND = {"CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}  # OTLP's SpanKind numbers, as the query API writes them
AMOUNT = 73519  # above any port number: no port, offset or status code can contain it
CHARGE = f"POST {PATHS[Operation.CHARGE]}"
LOGIN = f"POST {PATHS[Operation.LOGIN]}"

CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
  jaeger_query:
    enable_tracing: false  # else Jaeger traces itself to localhost:4317, and its stop waits on that
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query_port}
    grpc:
      endpoint: 127.0.0.1:{query_grpc_port}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp_port}
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


# --- Jaeger ---------------------------------------------------------------------------------------------


def jaeger_binary() -> Path:
    where = subprocess.run(
        ["bash", str(ENSURE), "--path"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    binary = Path(where)
    if not os.access(binary, os.X_OK):
        pytest.fail(f"Jaeger is not built ({binary} is missing): run {INSTALL}")
    return binary


def ready(otlp_port: int, query_port: int) -> bool:
    """The OTLP receiver accepts connections and the query API answers."""
    with socket.socket() as probe:
        probe.settimeout(0.2)
        if probe.connect_ex(("127.0.0.1", otlp_port)) != 0:
            return False
    try:
        return httpx.get(f"http://127.0.0.1:{query_port}/api/services", timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


@dataclass
class Jaeger:
    process: subprocess.Popen[bytes]
    otlp_port: int
    query_port: int
    log: Path

    @property
    def otlp_endpoint(self) -> str:
        """What ``OTEL_EXPORTER_OTLP_ENDPOINT`` takes (the exporter appends ``/v1/traces``)."""
        return f"http://127.0.0.1:{self.otlp_port}"

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-20:])

    async def trace(self, trace_id: str) -> list[dict[str, Any]]:
        """Every span Jaeger holds for ``trace_id`` (OTLP JSON through the v3 query API), each with its
        resource's attributes under ``resource``; [] when it holds none."""
        url = f"http://127.0.0.1:{self.query_port}/api/v3/traces/{trace_id}"
        async with httpx.AsyncClient(timeout=5.0) as client:
            answer = await client.get(url)
        if answer.status_code == httpx.codes.NOT_FOUND:
            return []
        answer.raise_for_status()
        spans = []
        for resource_spans in answer.json()["result"]["resourceSpans"]:
            resource = attributes(resource_spans.get("resource", {}))
            for scope_spans in resource_spans.get("scopeSpans", []):
                spans += [{**span, "resource": resource} for span in scope_spans.get("spans", [])]
        return spans


def start_jaeger(binary: Path, work: Path) -> Jaeger:
    for attempt in range(1, START_ATTEMPTS + 1):
        otlp_port, query_port, query_grpc_port = free_ports(3)
        config = work / f"jaeger-{attempt}.yaml"
        config.write_text(
            CONFIG.format(otlp_port=otlp_port, query_port=query_port, query_grpc_port=query_grpc_port),
            encoding="utf-8",
        )
        log = work / f"jaeger-{attempt}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(binary), "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        jaeger = Jaeger(process, otlp_port, query_port, log)
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            if ready(otlp_port, query_port):
                return jaeger
            time.sleep(0.1)
        stop_jaeger(jaeger)
        if "address already in use" not in log.read_text(encoding="utf-8", errors="replace"):
            break
    pytest.fail(f"Jaeger did not start (exit {process.returncode}):\n{jaeger.log_tail()}")


def stop_jaeger(jaeger: Jaeger) -> None:
    if jaeger.process.poll() is None:
        os.killpg(jaeger.process.pid, signal.SIGTERM)
        try:
            jaeger.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(jaeger.process.pid, signal.SIGKILL)
            jaeger.process.wait(5)


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    running = start_jaeger(jaeger_binary(), tmp_path_factory.mktemp("jaeger"))
    try:
        yield running
    finally:
        stop_jaeger(running)


# --- the OTLP JSON the query API answers ------------------------------------------------------------------


def attributes(holder: dict[str, Any]) -> dict[str, Any]:
    """OTLP JSON's ``[{"key": k, "value": {"stringValue": v}}]`` as ``{k: v}`` (one level: scalars)."""
    return {a["key"]: next(iter(a.get("value", {}).values()), None) for a in holder.get("attributes", [])}


def values(holder: dict[str, Any]) -> Iterator[str]:
    """Every value of an OTLP JSON ``attributes`` list, arrays and maps included, as text."""

    def walk(value: dict[str, Any]) -> Iterator[str]:
        for kind, inner in value.items():
            if kind == "arrayValue":
                for item in inner.get("values", []):
                    yield from walk(item)
            elif kind == "kvlistValue":
                yield from values({"attributes": inner.get("values", [])})
            else:
                yield str(inner)

    for attribute in holder.get("attributes", []):
        yield from walk(attribute.get("value", {}))


def shown(span: dict[str, Any]) -> Iterator[str]:
    """What a trace viewer shows of a span: its name, status message, attribute values, its events' and
    links' attribute values, and its resource's."""
    yield span["name"]
    yield str(span.get("status", {}).get("message", ""))
    yield from values(span)
    for event in span.get("events", []):
        yield event.get("name", "")
        yield from values(event)
    for link in span.get("links", []):
        yield from values(link)
    yield from (str(v) for v in span["resource"].values())


async def trace_when(jaeger: Jaeger, trace_id: str, complete: Any, timeout_s: float) -> list[dict[str, Any]]:
    """Ask Jaeger for the trace until ``complete(spans)``; fail with what it holds if it does not come."""
    deadline = time.monotonic() + timeout_s
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        spans = await jaeger.trace(trace_id)
        if complete(spans):
            return spans
        await asyncio.sleep(0.2)
    names = sorted(s["name"] for s in spans)
    raise AssertionError(f"trace {trace_id} not complete in Jaeger within {timeout_s} s: {names}")


# --- the worker and its command -------------------------------------------------------------------------


@dataclass
class Sent:
    trace_number: str
    msisdn: str
    trace_id: str  # the producer's, as W3C writes them
    span_id: str


@pytest.fixture
def msisdn() -> str:
    return f"0813{secrets.randbelow(10**9):09d}"


@pytest.fixture
async def sandbox(msisdn: str) -> AsyncIterator[RunningSandbox]:
    config = SandboxConfig(
        wallets=[WalletSpec(msisdn=msisdn, balance=Decimal("1000000"))], auto_create_wallets=False
    )
    async with serve_sandbox(config) as running:
        yield running


@pytest.fixture
def without_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's OTEL_* variables are the test's alone, none inherited from this shell."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


async def send_traced(settings: Settings, msisdn: str) -> Sent:
    """One charge, sent from a producer span of a known trace id (its ``traceparent`` header)."""
    sent = Sent(f"O{uuid.uuid4().hex[:10]}", msisdn, secrets.token_hex(16), secrets.token_hex(8))
    traceparent = f"00-{sent.trace_id}-{sent.span_id}-01"
    await produce_at(
        settings,
        command(sent.trace_number, msisdn, AMOUNT),
        partition=None,
        headers=[("content-type", b"application/json"), ("traceparent", traceparent.encode())],
    )
    return sent


@contextlib.asynccontextmanager
async def worker_exporting_to(
    jaeger: Jaeger, settings: Settings, log: Path, schedule_delay_ms: int
) -> AsyncIterator[WorkerProcess]:
    worker = WorkerProcess(
        settings,
        log,
        extra_env={
            "ECASH_OTEL_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": str(schedule_delay_ms),
        },
    )
    await worker.start()
    try:
        yield worker
    finally:
        if worker.running:
            await worker.terminate()


def the_command_is_in(settings: Settings) -> Any:
    """The trace is complete once the command's span and its result's publish are both there."""

    def complete(spans: list[dict[str, Any]]) -> bool:
        names = {s["name"] for s in spans}
        return {f"process {settings.commands_topic}", f"send {settings.results_topic}"} <= names

    return complete


def assert_the_commands_trace(spans: list[dict[str, Any]], sent: Sent, settings: Settings) -> None:
    """The trace as an SRE finds it in Jaeger by the producer's trace id."""
    assert {s["traceId"] for s in spans} == {sent.trace_id}
    for span in spans:
        assert span["resource"]["service.name"] == "ecash-worker"
        assert span["resource"]["service.version"] == __version__

    # The worker's span for the command: CONSUMER, child of the producer's span (remote), the only root.
    process = [s for s in spans if s["name"] == f"process {settings.commands_topic}"]
    assert len(process) == 1
    root = process[0]
    assert root["kind"] == KIND["CONSUMER"]
    assert root["parentSpanId"] == sent.span_id
    assert [s["name"] for s in spans if s.get("parentSpanId") not in {s2["spanId"] for s2 in spans}] == [
        root["name"]
    ]
    own = attributes(root)
    assert own["ecash.trace_number"] == sent.trace_number
    assert own["ecash.command.type"] == "charge"
    assert (own["ecash.outcome"], own["ecash.resolved_by"]) == ("succeeded", "response")
    assert own["messaging.destination.name"] == settings.commands_topic

    # Under it: the Charge answered TOKEN_EXPIRED, the Login it made, the Charge again, then the
    # result's transaction; all the command's spans (nothing of it lost on the way).
    under = sorted(
        (s for s in spans if s.get("parentSpanId") == root["spanId"]),
        key=lambda s: int(s["startTimeUnixNano"]),
    )
    client, producer = KIND["CLIENT"], KIND["PRODUCER"]
    assert [(s["name"], s["kind"]) for s in under] == [
        (f"send {settings.journal_topic}", producer),  # the intent, before the money call
        (CHARGE, client),
        (LOGIN, client),
        (CHARGE, client),
        (f"send {settings.results_topic}", producer),  # outcome, result and offset: one transaction
    ]
    classes = [attributes(s).get("ecash.response_class") for s in under]
    assert classes[1:4] == ["session_expired", "answered", "succeeded"]
    writes = [attributes(s).get("ecash.write") for s in under]
    assert (writes[0], writes[-1]) == ("journal", "outcome")
    assert len(spans) == 1 + len(under)  # nothing deeper: no resolution for this command

    # Nothing a trace viewer shows holds the MSISDN (any form ends with its last 9 digits), the amount
    # or a secret of the API identity.
    texts = [text for span in spans for text in shown(span)]
    assert settings.commands_topic in texts  # the walk does see the values (messaging.destination.name)
    assert sent.trace_number in texts
    for needle in (sent.msisdn[-9:], str(AMOUNT), SANDBOX_API_KEY, SANDBOX_CREDENTIALS):
        assert [text for text in texts if needle in text] == [], needle


def token_expires_once(sandbox: RunningSandbox, trace_number: str) -> None:
    """The command's first Charge finds the session expired: the worker logs in again under the command
    (its first Login happened at start-up, in a trace of its own)."""
    sandbox.sandbox.faults.replace(
        [
            FaultRule(
                operation=Operation.CHARGE,
                kind=FaultKind.TOKEN_EXPIRED,
                count=1,
                trace_numbers=(trace_number,),
            )
        ]
    )


# --- the tests ------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("without_otel_environment")
async def test_the_commands_trace_reaches_jaeger_under_the_producers_span(
    kafka_bootstrap: str, sandbox: RunningSandbox, jaeger: Jaeger, msisdn: str, tmp_path: Path
) -> None:
    settings = fast_settings(
        kafka_bootstrap, sandbox.base_url, f"o{uuid.uuid4().hex[:10]}", tmp_path / "state"
    )
    await create_topics(settings)
    sent = await send_traced(settings, msisdn)
    token_expires_once(sandbox, sent.trace_number)
    async with worker_exporting_to(
        jaeger, settings, tmp_path / "worker.log", schedule_delay_ms=200
    ) as worker:
        results = await wait_results(settings, {sent.trace_number}, timeout_s=60)
        # exported while the worker runs: a batch every 200 ms
        spans = await trace_when(jaeger, sent.trace_id, the_command_is_in(settings), timeout_s=30)
        assert worker.running
    assert results.outcome_of(sent.trace_number) == "succeeded"
    assert worker.returncode == 0, worker.log_tail()
    assert_the_commands_trace(spans, sent, settings)


@pytest.mark.usefixtures("without_otel_environment")
async def test_the_workers_stop_sends_the_last_batch(
    kafka_bootstrap: str, sandbox: RunningSandbox, jaeger: Jaeger, msisdn: str, tmp_path: Path
) -> None:
    settings = fast_settings(
        kafka_bootstrap, sandbox.base_url, f"o{uuid.uuid4().hex[:10]}", tmp_path / "state"
    )
    await create_topics(settings)
    sent = await send_traced(settings, msisdn)
    token_expires_once(sandbox, sent.trace_number)
    # a batch every 10 minutes: nothing is sent while the test runs, but for the stop's flush
    async with worker_exporting_to(
        jaeger, settings, tmp_path / "worker.log", schedule_delay_ms=600_000
    ) as worker:
        await wait_results(settings, {sent.trace_number}, timeout_s=60)
        await asyncio.sleep(1.0)
        assert await jaeger.trace(sent.trace_id) == [], "exported before the stop: the flush is not tested"
        assert await worker.terminate() == 0, worker.log_tail()
    spans = await trace_when(jaeger, sent.trace_id, the_command_is_in(settings), timeout_s=5)
    assert_the_commands_trace(spans, sent, settings)
