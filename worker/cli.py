"""``ecash-worker``: one command, a subcommand per job. Each subcommand lives in the module it concerns."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand name -> module providing configure_parser(subparsers) and run(args) -> int
SUBCOMMANDS: dict[str, str] = {
    "run": "worker.cli_run",
    "check": "worker.observability.check",
    "sandbox": "worker.sandbox.cli",
    "kafka": "worker.devkafka.cli",
    "schemas": "worker.schema_export",
    "api": "worker.ops.api_cli",
    "send": "worker.ops.send",
    "review": "worker.ops.review",
    "reconcile": "worker.ops.reconcile",
    "demo": "worker.demo",
    "chaos": "worker.chaos",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecash-worker",
        description=(
            "Moves money through the Mandiri e-cash H2H API from Kafka commands, "
            "at most once per trace number."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # a broken install must say which part is missing
            raise SystemExit(
                f"ecash-worker: cannot load the '{name}' command ({module_name}): {exc}"
            ) from exc
        module.configure_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
