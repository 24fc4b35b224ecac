"""What the stack's parts share: the error, a free port, a log's tail, SIGTERM as Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
LOG_TAIL_LINES = 20


class StackError(Exception):
    """A process of the stack did not start or answer; the message says where to look."""


def namespaced(prefix: str, partitions: int) -> dict[str, Any]:
    """Settings that give one run its own consumer group and topics (``<prefix>.commands``, ...)."""
    return {
        "group_id": f"{prefix}-group",
        "commands_topic": f"{prefix}.commands",
        "results_topic": f"{prefix}.results",
        "dlq_topic": f"{prefix}.dlq",
        "review_topic": f"{prefix}.review",
        "journal_topic": f"{prefix}.journal",
        "claims_topic": f"{prefix}.claims",
        "review_decisions_topic": f"{prefix}.review.decisions",
        "topic_partitions": partitions,
    }


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (another process may still take it before you do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def tail(path: Path | None, lines: int = LOG_TAIL_LINES, max_bytes: int = 64 * 1024) -> str:
    """The last ``lines`` lines of a log file (empty if there is none), for an error message."""
    if path is None:
        return ""
    try:
        with path.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - max_bytes))
            text = log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


async def cancelled_by_sigterm(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` so that SIGTERM cancels it as Ctrl-C does (its ``finally`` blocks stop the stack)."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
