"""``ecash-worker run``: the worker itself, configured by ECASH_* environment variables.

Exit codes: 0 stopped (SIGTERM or Ctrl-C, also during start-up), 2 a bad setting (one line per problem on
stderr, ``ecash-worker: ECASH_X: what is wrong``), 3 Kafka did not answer at start, 4 a partition could
not be activated (``ECASH_RESTORE_ATTEMPTS``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from worker.preflight import preflight
from worker.settings import SettingsError, load_settings

__all__ = ["EXIT_CONFIG", "configure_parser", "report", "run"]

EXIT_CONFIG = 2


def configure_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the worker (settings from ECASH_* environment variables; see docs/settings.md)",
        description=(
            "Consume charge/credit commands from Kafka, move money through the E-Cash API, publish results."
        ),
    )
    parser.set_defaults(func=run)


def report(exc: SettingsError) -> int:
    for line in exc.lines:
        print(f"ecash-worker: {line}", file=sys.stderr)
    return EXIT_CONFIG


def run(args: argparse.Namespace) -> int:
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
