"""schemas/asyncapi.yaml, in Python: its examples are what the worker reads and publishes (payloads under
their schema and model; headers under their schema and exactly the headers the worker writes), and
docs/asyncapi.md is generated from it. (tests/contracts/test_asyncapi.py runs @asyncapi/parser on it.)"""

from __future__ import annotations

import base64
import json
from typing import Any

import jsonschema
import pytest

from ecash_dev import asyncapi_page
from worker.contracts import CONTRACTS, DeadLetter, Result, ReviewRecord
from worker.pipeline.headers import trace_context
from worker.pipeline.publisher import Outbox
from worker.schema_export import DEFAULT_DIR

DOCUMENT = asyncapi_page.load()
MESSAGES: dict[str, dict[str, Any]] = DOCUMENT["components"]["messages"]
CONTRACT_OF = {
    "command": "command",
    "reviewDecision": "review_decision",
    "result": "result",
    "deadLetter": "dead_letter",
    "reviewRecord": "review_record",
}
OUTBOX = Outbox("ecash.results", "ecash.commands.dlq", "ecash.review", source="/ecash-worker/ecash.commands")
EXAMPLES = [
    (name, i, ex) for name, message in MESSAGES.items() for i, ex in enumerate(message.get("examples", []))
]


def test_the_page_is_generated_from_the_document() -> None:
    assert asyncapi_page.PAGE.read_text() == asyncapi_page.render(DOCUMENT), (
        "docs/asyncapi.md is stale: run python -m ecash_dev.asyncapi_page"
    )


def test_every_message_has_examples_and_every_contract_a_message() -> None:
    assert set(MESSAGES) == set(CONTRACT_OF)
    assert set(CONTRACT_OF.values()) == set(CONTRACTS)
    assert all(message.get("examples") for message in MESSAGES.values())


@pytest.mark.parametrize(("name", "index", "example"), EXAMPLES, ids=lambda v: str(v)[:20])
def test_each_example_payload_is_valid_under_its_schema_and_model(
    name: str, index: int, example: Any
) -> None:
    contract = CONTRACT_OF[name]
    schema = json.loads((DEFAULT_DIR / f"{contract}.schema.json").read_text())
    assert [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(example["payload"])] == []
    CONTRACTS[contract].model_validate(example["payload"])


@pytest.mark.parametrize(("name", "index", "example"), EXAMPLES, ids=lambda v: str(v)[:20])
def test_each_example_has_exactly_the_headers_the_worker_writes(name: str, index: int, example: Any) -> None:
    properties, required = asyncapi_page.message_headers(DOCUMENT, MESSAGES[name])
    schema = {
        "type": "object",
        "properties": {k: _resolved(v) for k, v in properties.items()},
        "required": required,
        "additionalProperties": False,
    }
    headers = example.get("headers", {})
    assert [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(headers)] == []
    incoming = [(k, v.encode()) for k, v in headers.items() if k in ("traceparent", "tracestate")]
    assert dict(trace_context(incoming)) == {k: v for k, v in incoming}  # examples carry only valid ones
    payload = example["payload"]
    if name == "result":
        written = OUTBOX.result(Result.model_validate(payload), incoming).headers
    elif name == "deadLetter":
        letter = DeadLetter.model_validate(payload)
        key = base64.b64decode(letter.key_b64) if letter.key_b64 else None
        written = OUTBOX.dead_letter(letter, key, incoming).headers
    elif name == "reviewRecord":
        written = OUTBOX.review(ReviewRecord.model_validate(payload), incoming).headers
    else:
        return  # read by the worker: its headers are only the optional trace context
    assert {k: v.decode() for k, v in written} == headers


def _resolved(node: Any) -> Any:
    if isinstance(node, dict) and "$ref" in node:
        target: Any = DOCUMENT
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        return target
    return node


def test_what_the_worker_writes_is_declared_for_every_published_message() -> None:
    for name in ("result", "deadLetter", "reviewRecord"):
        properties, required = asyncapi_page.message_headers(DOCUMENT, MESSAGES[name])
        assert {"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"} <= set(required)
        assert {"traceparent", "tracestate", "ce_subject"} <= set(properties)
