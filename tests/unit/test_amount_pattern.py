"""The amount pattern in the schemas accepts exactly the strings the worker accepts.

JSON Schema patterns are ECMA-262 regular expressions, and producers' validators are often RE2 (Go) or
ECMA (JavaScript). The pattern is written for both (no lookaround, no backreference); here it is matched
with ECMA semantics (``$`` only at the very end: Python's ``$`` would also match before a final newline).
``tests/contracts/test_codegen.py`` runs the same pattern through Go's regexp and JavaScript's RegExp.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic_core import PydanticCustomError

from worker.amount_rules import AMOUNT_TEXT_PATTERN, MAX_AMOUNT, command_amount
from worker.schema_export import DEFAULT_DIR

_ECMA = re.compile(AMOUNT_TEXT_PATTERN.removesuffix("$") + r"\Z")


def schema_accepts(text: str) -> bool:
    return _ECMA.search(text) is not None


def worker_accepts(text: str) -> bool:
    try:
        command_amount(text)
    except PydanticCustomError:
        return False
    return True


AMOUNT_LIKE = st.text(alphabet="0123456789.", max_size=14)
NEAR_MISS = st.text(alphabet="0123456789.-+eE ,\n\t\u0661\uff11", max_size=14)
DECIMALS = st.decimals(Decimal("0"), MAX_AMOUNT * 10, places=3).map(lambda d: f"{d:f}")
PADDED = st.tuples(
    st.integers(0, 10**10), st.integers(0, 12), st.sampled_from(["", ".0", ".00", ".5", ".05", ".000"])
).map(lambda t: str(t[0]).zfill(t[1]) + t[2])


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.text(max_size=16), AMOUNT_LIKE, NEAR_MISS, DECIMALS, PADDED))
@example("0")
@example("0.00")
@example("0.01")
@example("000000000.01")
@example("0000000000.01")
@example("000000001")
@example("0000000001")
@example("999999999.99")
@example("1000000000")
@example("1.")
@example(".5")
@example("5\n")
@example("1.000")
@example("00.10")
def test_the_pattern_and_the_runtime_agree(text: str) -> None:
    assert schema_accepts(text) == worker_accepts(text), text


def test_the_pattern_is_re2_and_ecma_compatible() -> None:
    for construct in ("(?=", "(?!", "(?<", "\\1", "\\d", "\\w", "\\b", "(?P", "\\Z", "\\A"):
        assert construct not in AMOUNT_TEXT_PATTERN
    assert AMOUNT_TEXT_PATTERN.startswith("^")
    assert AMOUNT_TEXT_PATTERN.endswith("$")
    assert AMOUNT_TEXT_PATTERN.count("$") == 1


def test_the_schemas_carry_this_pattern() -> None:
    command = json.loads((DEFAULT_DIR / "command.schema.json").read_text())
    result = json.loads((DEFAULT_DIR / "result.schema.json").read_text())
    assert command["properties"]["amount"]["pattern"] == AMOUNT_TEXT_PATTERN
    assert command["properties"]["amount"]["type"] == "string"
    assert result["properties"]["amount"]["pattern"] == AMOUNT_TEXT_PATTERN
