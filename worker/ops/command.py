"""What every operator's command shares: its exit codes, its error, its settings, how it is run.

Every command reads the worker's own settings (``ECASH_*``, ``worker.settings.load_settings``), so it talks
to the same Kafka topics and the same E-Cash host as the worker it serves. Exit codes mean the same thing
in every command:

- 0: done; the answer is the good one (PROCESSED, succeeded, all agree).
- 1: answered, but not the good answer (another response code, declined/failed/rejected, a disagreement).
- 2: configuration or usage error (a bad ``ECASH_*`` value, a missing topic, an invalid argument).
- 3: unreachable (the E-Cash API or the Kafka cluster did not answer).
- 4: ``send``: the command ended ``unresolved`` (handed to manual review).
- 5: ``send`` / ``review resolve``: no result arrived within the wait.

``send`` and ``review resolve`` also watch the dead-letter topic: if the worker dead-letters the very
message they produced, they say why at once (exit 1) instead of waiting in vain.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from types import SimpleNamespace
from typing import Any, TextIO

from aiokafka.errors import KafkaError
from pydantic import ValidationError

from worker.ops.output import Console, choose_format
from worker.settings import Settings, SettingsError, load_settings, load_settings_without_api

__all__ = [
    "EXIT_CONFIG",
    "EXIT_NOT_OK",
    "EXIT_NO_RESULT",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_UNRESOLVED",
    "Body",
    "OpsError",
    "invalid",
    "ops_settings",
    "quiet_kafka_logs",
    "run_command",
]

EXIT_OK = 0
EXIT_NOT_OK = 1
EXIT_CONFIG = 2
EXIT_UNREACHABLE = 3
EXIT_UNRESOLVED = 4
EXIT_NO_RESULT = 5


class OpsError(Exception):
    """A command cannot go on: the message is for the operator, ``exit_code`` for the shell."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def invalid(what: str, exc: ValidationError) -> OpsError:
    """``invalid command: msisdn: String should match pattern ...`` (exit 2). Values are not echoed."""
    reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or what}: {e['msg']}" for e in exc.errors())
    return OpsError(f"invalid {what}: {reasons}", EXIT_CONFIG)


def ops_settings(needs_api: bool = True) -> Settings:
    """The worker's settings from the environment; a bad value is a configuration error (exit 2).
    Without ``needs_api`` (the command only talks to Kafka) the API identity is not required."""
    try:
        return load_settings() if needs_api else load_settings_without_api()
    except SettingsError as exc:
        raise OpsError(str(exc), EXIT_CONFIG) from None


Body = Callable[[Settings, Console], Coroutine[Any, Any, int]]


def run_command(
    name: str,
    args: SimpleNamespace,
    body: Body,
    out: TextIO | None = None,
    err: TextIO | None = None,
    *,
    needs_api: bool = True,
) -> int:
    """Load the settings, run ``body`` in a fresh event loop, turn an ``OpsError`` into its exit code."""
    console = Console(
        choose_format(getattr(args, "output", None), out or sys.stdout), out or sys.stdout, err or sys.stderr
    )
    quiet_kafka_logs()
    try:
        settings = ops_settings(needs_api)
        return asyncio.run(body(settings, console))
    except OpsError as exc:
        console.note(f"ecash-worker {name}: {exc}")
        return exc.exit_code
    except KafkaError as exc:  # the cluster went away in the middle of the command
        console.note(f"ecash-worker {name}: Kafka stopped answering ({type(exc).__name__}: {exc})")
        return EXIT_UNREACHABLE


def quiet_kafka_logs() -> None:
    """aiokafka logs connection failures itself; the commands say it once, in their own words. (Records
    still propagate to handlers a host process configured; only Python's last-resort stderr is avoided.)"""
    logger = logging.getLogger("aiokafka")
    if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
        logger.addHandler(logging.NullHandler())
