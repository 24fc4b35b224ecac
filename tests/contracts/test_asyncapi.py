"""schemas/asyncapi.yaml through @asyncapi/parser (npm, pinned in tools/codegen/package-lock.json, installed
by scripts/ensure-codegen-tools.sh): the AsyncAPI 3 schema, the Kafka bindings' schemas, the JSON Schema
payloads it refers to, and the parser's rules. Nothing is skipped: a missing tool fails the test."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from tests.contracts.test_codegen import INSTALL, TOOLS
from worker.schema_export import DEFAULT_DIR

# The only diagnostic allowed: 3.1.0 exists, but Modelina 5.10.1 reads no model from a 3.1.0 document.
ALLOWED = {("info", "asyncapi-latest-version")}
CLOUD_EVENTS = {"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject", "content-type"}
TRACE_CONTEXT = {"traceparent", "tracestate"}


@pytest.fixture(scope="module")
def parsed() -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not (TOOLS / "node_modules" / "@asyncapi" / "parser").exists():
        pytest.fail(f"node or @asyncapi/parser is missing: {INSTALL}")
    done = subprocess.run(
        [node, str(TOOLS / "validate-asyncapi.mjs"), str(DEFAULT_DIR / "asyncapi.yaml")],
        cwd=TOOLS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def test_the_parser_finds_the_document_valid_with_nothing_to_say(parsed: dict[str, Any]) -> None:
    assert parsed["valid"], parsed["diagnostics"]
    assert [d for d in parsed["diagnostics"] if (d["severity"], d["code"]) not in ALLOWED] == []
    assert parsed["summary"]["version"] == "3.0.0"


def test_servers_offer_tls_and_every_sasl_mechanism_the_worker_speaks(parsed: dict[str, Any]) -> None:
    servers = {s["id"]: s for s in parsed["summary"]["servers"]}
    assert servers["production"]["protocol"] == "kafka-secure"
    assert set(servers["production"]["security"]) == {"scramSha512", "scramSha256", "plain", "oauth2", "X509"}
    assert servers["local"]["protocol"] == "kafka"


def test_the_worker_receives_commands_and_decisions_and_sends_the_rest(parsed: dict[str, Any]) -> None:
    operations = {o["id"]: (o["action"], o["channel"], o["reply"]) for o in parsed["summary"]["operations"]}
    assert operations == {
        "receiveCommand": ("receive", ["commands"], "results"),
        "receiveReviewDecision": ("receive", ["reviewDecisions"], "results"),
        "sendResult": ("send", ["results"], None),
        "sendDeadLetter": ("send", ["deadLetters"], None),
        "sendReviewRecord": ("send", ["review"], None),
    }
    assert all(channel["bindings"] == ["kafka"] for channel in parsed["summary"]["channels"])


def test_headers_and_correlation_as_the_parser_reads_them(parsed: dict[str, Any]) -> None:
    messages = {m["id"]: m for m in parsed["summary"]["messages"]}
    for name in ("result", "deadLetter", "reviewRecord"):
        assert set(messages[name]["headers"]) >= CLOUD_EVENTS | TRACE_CONTEXT, name
    assert {"event_id", "outcome"} <= set(messages["result"]["headers"])
    assert "reason" in messages["deadLetter"]["headers"]
    for name in ("command", "reviewDecision"):
        assert set(messages[name]["headers"]) == TRACE_CONTEXT
    for name in ("command", "reviewDecision", "result", "reviewRecord"):
        assert messages[name]["correlationId"] == "$message.payload#/trace_number"
    assert messages["deadLetter"]["correlationId"] is None  # nobody knows its trace number
    assert all(m["examples"] >= 1 for m in messages.values())
