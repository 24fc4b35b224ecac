"""The record headers of what the worker publishes: CloudEvents (binary content mode of the Kafka protocol
binding, `ce_` attributes) and the W3C trace context copied from the message being answered. Pure.

Every result, dead letter and review record carries (values UTF-8):

- ``ce_specversion`` ``1.0``; ``ce_id`` (results: the ``event_id``; dead letters and review records: the
  stable ids below); ``ce_source`` (``/ecash-worker/<commands topic>``); ``ce_type``
  (``id.co.mandiri.ecash.<contract>.v<schema_version>``); ``ce_time`` (RFC 3339, UTC: the record's own
  time); ``ce_subject`` (the trace number, when there is one); ``content-type`` ``application/json``;
- ``traceparent`` and ``tracestate``, copied from the answered message's headers when its ``traceparent`` is
  well-formed (W3C Trace Context level 1); a malformed one is dropped, never copied, and a ``tracestate``
  travels only with a ``traceparent``, and only when it is well-formed itself.

``ce_id`` is stable: the same record published again (after a crash) has the same id, so ``ce_source`` +
``ce_id`` identifies one event as CloudEvents requires.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from worker.contracts import EVENT_NAMESPACE, SCHEMA_VERSION

__all__ = [
    "CE_SPECVERSION",
    "CONTENT_TYPE",
    "Headers",
    "ce_type",
    "cloud_event",
    "dead_letter_id",
    "merged",
    "review_record_id",
    "trace_context",
    "valid_traceparent",
    "valid_tracestate",
]

Headers = tuple[tuple[str, bytes], ...]

CE_SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
TYPE_PREFIX = "id.co.mandiri.ecash"


def ce_type(contract: str, version: int = SCHEMA_VERSION) -> str:
    """``id.co.mandiri.ecash.result.v1``: the contract and its major version (``schema_version``)."""
    return f"{TYPE_PREFIX}.{contract}.v{version}"


def dead_letter_id(topic: str, partition: int, offset: int) -> str:
    """One dead letter per source message: the same message dead-lettered again has the same id."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"dead_letter:{topic}:{partition}:{offset}"))


def review_record_id(item_key: str, state: str) -> str:
    """Two events per review item, its opening and its closing (``state``), each with a stable id."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"review:{item_key}:{state}"))


def ce_time(at: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` (a naive time is taken as UTC)."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.isoformat().replace("+00:00", "Z")


def cloud_event(
    *,
    event_id: str,
    contract: str,
    source: str,
    time: datetime,
    subject: str | None,
) -> Headers:
    headers: list[tuple[str, bytes]] = [
        ("ce_specversion", CE_SPECVERSION.encode()),
        ("ce_id", event_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", ce_type(contract).encode()),
        ("ce_time", ce_time(time).encode()),
    ]
    if subject:
        headers.append(("ce_subject", subject.encode("utf-8", "replace")))
    headers.append(("content-type", CONTENT_TYPE.encode()))
    return tuple(headers)


# --- W3C Trace Context (https://www.w3.org/TR/trace-context/) ----------------------------------------
# version "-" trace-id "-" parent-id "-" trace-flags, lowercase hex; version ff is invalid; trace-id and
# parent-id are not all zeros; version 00 is exactly these 55 characters, a later version may append
# "-" and more (read the first four fields: the spec's forward compatibility rule).
_TRACEPARENT = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<parent>[0-9a-f]{16})-[0-9a-f]{2}(?P<rest>-[\x21-\x7e]*)?"
)
# list-member: key "=" value; key: simple (lcalpha then [a-z0-9_\-*/], up to 256) or multi-tenant
# (tenant@system); value: up to 256 printable ASCII characters without "," and "=", not ending in a space.
_TS_KEY = re.compile(r"[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13}")
_TS_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
TRACESTATE_MAX_MEMBERS = 32
TRACESTATE_MAX_BYTES = 512  # what a propagator must at least pass on; longer is dropped, not cut


def valid_traceparent(value: str) -> bool:
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return False
    version = match["version"]
    if version == "ff" or (version == "00" and match["rest"] is not None):
        return False
    return match["trace"] != "0" * 32 and match["parent"] != "0" * 16


def valid_tracestate(value: str) -> bool:
    if not value or len(value) > TRACESTATE_MAX_BYTES:
        return False
    members = [member.strip(" \t") for member in value.split(",")]
    members = [member for member in members if member]  # empty list-members are allowed, and ignored
    if not members or len(members) > TRACESTATE_MAX_MEMBERS:
        return False
    keys: set[str] = set()
    for member in members:
        key, eq, val = member.partition("=")
        if not eq or not _TS_KEY.fullmatch(key) or not _TS_VALUE.fullmatch(val) or key in keys:
            return False
        keys.add(key)
    return True


def trace_context(incoming: Iterable[tuple[str, bytes | None]]) -> Headers:
    """``traceparent`` (and ``tracestate``) to copy from a message's headers: nothing unless exactly one
    well-formed ``traceparent``; ``tracestate`` headers are joined (list semantics) and kept if well-formed.
    Header names are matched case-insensitively (HTTP bridges change case); values must be ASCII."""
    parents: list[str] = []
    states: list[str] = []
    for name, value in incoming:
        lowered = name.lower()
        if lowered not in ("traceparent", "tracestate"):
            continue
        text = _ascii(value)
        if lowered == "traceparent":
            parents.append(text if text is not None else "")
        elif text is not None:
            states.append(text)
        else:
            states.append("\x00")  # not ASCII: makes the joined tracestate invalid
    if len(parents) != 1 or not valid_traceparent(parents[0]):
        return ()
    out: list[tuple[str, bytes]] = [("traceparent", parents[0].encode())]
    state = ",".join(states)
    if states and valid_tracestate(state):
        out.append(("tracestate", state.encode()))
    return tuple(out)


def _ascii(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        return None


def merged(*parts: Sequence[tuple[str, bytes]]) -> Headers:
    return tuple(header for part in parts for header in part)
