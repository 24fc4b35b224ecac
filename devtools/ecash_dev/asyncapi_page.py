"""docs/asyncapi.md, generated from schemas/asyncapi.yaml: the Kafka interface as a page to read.

    python -m ecash_dev.asyncapi_page            # write docs/asyncapi.md
    python -m ecash_dev.asyncapi_page --check    # exit 1 if docs/asyncapi.md is not what the YAML gives

tests/unit/test_asyncapi_page.py fails when the page is stale; tests/contracts/test_asyncapi.py validates
the YAML itself with the AsyncAPI parser.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click
import yaml

from worker import commandline
from worker.commandline import Command, help_text

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "schemas" / "asyncapi.yaml"
PAGE = ROOT / "docs" / "asyncapi.md"


def _resolve(document: dict[str, Any], node: Any) -> Any:
    """Follow a local ``$ref`` (``#/components/...``); anything else as it is."""
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
        target: Any = document
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _ref_name(node: Any) -> str:
    return str(node["$ref"]).rsplit("/", 1)[-1] if isinstance(node, dict) and "$ref" in node else "?"


def message_headers(document: dict[str, Any], message: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A message's header properties and required names, its traits' first (AsyncAPI 3: the message's own
    fields win; a ``required`` list is replaced, not merged)."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for trait in message.get("traits", []):
        headers = _resolve(document, trait).get("headers", {})
        properties.update(headers.get("properties", {}))
        required = list(headers.get("required", required))
    own = message.get("headers", {})
    properties.update(own.get("properties", {}))
    required = list(own.get("required", required))
    return properties, required


def render(document: dict[str, Any]) -> str:
    info = document["info"]
    out = [
        f"# {info['title']}: the Kafka interface (AsyncAPI {document['asyncapi']})",
        "",
        "<!-- Generated from schemas/asyncapi.yaml by `python -m ecash_dev.asyncapi_page`: edit the YAML, "
        "not this page (tests/unit/test_asyncapi_page.py fails when it is stale). -->",
        "",
        f"Contract version {info['version']}. The rules for producers and consumers, with every example "
        "checked: [contracts.md](contracts.md). The document itself: "
        "[schemas/asyncapi.yaml](../schemas/asyncapi.yaml), validated by `@asyncapi/parser` in "
        "`tests/contracts/test_asyncapi.py`.",
        "",
        info["description"].strip(),
        "",
        "## Servers",
        "",
    ]
    servers = document.get("servers", {})
    out += _table(
        ["server", "host", "protocol", "security (any one)", ""],
        (
            [
                f"`{name}`",
                f"`{server['host']}`",
                f"`{server['protocol']}`",
                ", ".join(f"`{_ref_name(s)}`" for s in server.get("security", [])) or "none",
                server.get("description", ""),
            ]
            for name, server in servers.items()
        ),
    )
    schemes = document.get("components", {}).get("securitySchemes", {})
    out += ["", "### Security schemes", ""]
    out += _table(
        ["scheme", "type", ""],
        ([f"`{name}`", f"`{s['type']}`", s.get("description", "")] for name, s in schemes.items()),
    )
    out += ["", "## Channels", ""]
    rows = []
    for name, channel in document["channels"].items():
        kafka = channel.get("bindings", {}).get("kafka", {})
        config = kafka.get("topicConfiguration", {})
        messages = ", ".join(f"`{_ref_name(m)}`" for m in channel.get("messages", {}).values())
        rows.append(
            [
                f"`{channel['address']}` ({name})",
                messages,
                str(kafka.get("partitions", "")),
                str(kafka.get("replicas", "")),
                ",".join(config.get("cleanup.policy", [])),
                channel.get("summary", ""),
            ]
        )
    out += _table(["topic", "messages", "partitions", "replicas", "cleanup.policy", ""], rows)
    out += [
        "",
        "Partitions and replicas are the defaults a production deployment uses (`ECASH_TOPIC_PARTITIONS`, "
        "`ECASH_TOPIC_REPLICATION_FACTOR`: docs/kafka.md); every topic has the same count.",
        "",
    ]
    for channel in document["channels"].values():
        if channel.get("description"):
            out += [f"- **`{channel['address']}`**: {' '.join(channel['description'].split())}"]
    out += ["", "## Operations (the worker's side)", ""]
    out += _table(
        ["operation", "action", "channel", "reply", ""],
        (
            [
                f"`{name}`",
                op["action"],
                f"`{_resolve(document, op['channel'])['address']}`",
                f"`{_resolve(document, op['reply']['channel'])['address']}`" if "reply" in op else "",
                " ".join([op.get("summary", ""), op.get("description", "")]).strip(),
            ]
            for name, op in document["operations"].items()
        ),
    )
    out += [
        "",
        "A payment team does the opposite: it *sends* to `ecash.commands` and *receives* from "
        "`ecash.results`.",
        "",
        "## Messages",
        "",
    ]
    for message in document["components"]["messages"].values():
        out += _message(document, message)
    return "\n".join(out).rstrip() + "\n"


def _message(document: dict[str, Any], message: dict[str, Any]) -> list[str]:
    payload = message["payload"]["$ref"].removeprefix("./")
    out = [f"### {message['name']}", "", message.get("summary", ""), ""]
    content_type = message.get("contentType", "application/json")
    out += [f"- payload: [`schemas/{payload}`](../schemas/{payload}) (`{content_type}`)"]
    if "correlationId" in message:
        correlation = _resolve(document, message["correlationId"])
        out += [f"- correlationId: `{correlation['location']}`"]
    key = message.get("bindings", {}).get("kafka", {}).get("key")
    if key:
        out += [f"- record key: {key.get('description', key.get('type', ''))}"]
    properties, required = message_headers(document, message)
    if properties:
        out += ["", "| header | required | |", "|---|---|---|"]
        for name, schema in properties.items():
            schema = _resolve(document, schema)
            text = schema.get("description", "")
            if "const" in schema:
                text = f"`{schema['const']}`" + (f": {text}" if text else "")
            out += [f"| `{name}` | {'yes' if name in required else ''} | {_cell(text)} |"]
    for example in message.get("examples", []):
        title = example.get("summary") or example.get("name", "")
        out += ["", f"Example: {title}", "", "```json"]
        shown = {k: example[k] for k in ("headers", "payload") if k in example}
        out += [json.dumps(shown, indent=1, ensure_ascii=False)]
        out += ["```"]
    return [*out, ""]


def load(source: Path = SOURCE) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(source.read_text())
    return document


@click.command("asyncapi_page", cls=Command, help=help_text(__doc__))
@click.option("--check", is_flag=True, help="exit 1 if the page is stale")
def command(check: bool) -> int:
    page = render(load())
    if check:
        if not PAGE.exists() or PAGE.read_text() != page:
            print(
                f"{PAGE.relative_to(ROOT)} is stale: run python -m ecash_dev.asyncapi_page", file=sys.stderr
            )
            return 1
        return 0
    PAGE.write_text(page)
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return commandline.main(command, argv, "python -m ecash_dev.asyncapi_page")


if __name__ == "__main__":
    sys.exit(main())
