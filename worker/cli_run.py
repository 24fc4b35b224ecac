"""``ecash-worker run``: the worker itself, configured by ECASH_* environment variables.

Exit codes: 0 stopped (SIGTERM or Ctrl-C, also during start-up), 2 a bad setting (one line per problem on
stderr, ``ecash-worker: ECASH_X: what is wrong``), 3 Kafka did not answer at start, 4 a partition could
not be activated (``ECASH_RESTORE_ATTEMPTS``).
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import click

from worker.commandline import Command, arguments
from worker.preflight import preflight
from worker.settings import SettingsError, load_settings

__all__ = ["EXIT_CONFIG", "command", "report", "run"]

EXIT_CONFIG = 2


@click.command(
    "run",
    cls=Command,
    short_help="run the worker (settings from ECASH_* environment variables; see docs/settings.md)",
    help="Consume charge/credit commands from Kafka, move money through the E-Cash API, publish results.",
)
@click.pass_context
def command(ctx: click.Context) -> int:
    return run(arguments(ctx))


def report(exc: SettingsError) -> int:
    for line in exc.lines:
        print(f"ecash-worker: {line}", file=sys.stderr)
    return EXIT_CONFIG


def run(args: SimpleNamespace) -> int:
    try:
        settings = load_settings()
        preflight(settings)
    except SettingsError as exc:
        return report(exc)
    from worker.service import run as run_service

    try:
        return run_service(settings)
    except KeyboardInterrupt:  # Ctrl-C before the worker's own handler was installed
        return 0
