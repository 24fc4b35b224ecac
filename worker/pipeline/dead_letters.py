"""A dead letter keeps everything: the original bytes, headers, where it came from, and why."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Protocol

from worker.contracts import DeadLetter
from worker.pipeline.intake import DeadLetterReason

__all__ = ["Source", "dead_letter"]


class Source(Protocol):
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def dead_letter(source: Source, *, topic: str, reason: DeadLetterReason, now: datetime) -> DeadLetter:
    return DeadLetter(
        reason=f"{reason.reason}: {reason.detail}",
        topic=topic,
        partition=source.partition,
        offset=source.offset,
        key_b64=_b64(source.key),
        value_b64=_b64(source.value),
        headers=[(name, base64.b64encode(value or b"").decode()) for name, value in source.headers],
        timestamp_ms=source.timestamp_ms,
        dead_lettered_at=now,
    )


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()
