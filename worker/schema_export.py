"""``ecash-worker schemas``: write (or check) the JSON Schema files of the message contracts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from worker.contracts import CONTRACTS

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "schemas"


def render() -> dict[str, str]:
    """File name -> content, deterministic."""
    out: dict[str, str] = {}
    for name, model in CONTRACTS.items():
        schema = model.model_json_schema(
            mode="validation" if name in ("command", "review_decision") else "serialization"
        )
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://ecash-worker.invalid/schemas/{name}.schema.json"
        out[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def drift(directory: Path) -> list[str]:
    problems = []
    for file_name, content in render().items():
        path = directory / file_name
        if not path.exists():
            problems.append(f"{path} is missing")
        elif path.read_text() != content:
            problems.append(f"{path} differs from the pydantic models")
    return problems


def configure_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("schemas", help="write or check schemas/*.schema.json from the contracts")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--check", action="store_true", help="exit 1 if the files drifted from the models")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.check:
        problems = drift(args.dir)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    args.dir.mkdir(parents=True, exist_ok=True)
    for file_name, content in render().items():
        (args.dir / file_name).write_text(content)
        print(f"wrote {args.dir / file_name}")
    return 0
