"""The JSON examples of docs/contracts.md, each marked with the contract it is an instance of.

An example is a fenced ``json`` block right after a ``<!-- example: NAME -->`` line (NAME a key of
``worker.contracts.CONTRACTS``). tests/unit/test_contracts.py validates each against its schema and its
pydantic model; tests/contracts/test_codegen.py round-trips each through the generated Go and TypeScript.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[1] / "docs" / "contracts.md"
_EXAMPLE = re.compile(r"^<!-- example: (\w+) -->\n```json\n(.*?)\n```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Example:
    contract: str
    line: int
    message: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.contract}@contracts.md:{self.line}"


def examples() -> list[Example]:
    text = DOC.read_text()
    found = []
    for match in _EXAMPLE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        found.append(Example(match.group(1), line, json.loads(match.group(2))))
    return found


def unmarked_json_blocks() -> int:
    """Fenced json blocks without a marker: every JSON example must be checked."""
    return len(re.findall(r"```json\n", DOC.read_text())) - len(examples())
