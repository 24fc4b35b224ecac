"""``ecash-worker run``: the worker itself, configured by ECASH_* environment variables."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from worker.settings import SettingsError, load_settings


def configure_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the worker (settings from ECASH_* environment variables; see docs/settings.md)",
        description=(
            "Consume charge/credit commands from Kafka, move money through the E-Cash API, publish results."
        ),
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"ecash-worker: {exc}", file=sys.stderr)
        return 2
    from worker.service import run_worker

    return asyncio.run(run_worker(settings))
