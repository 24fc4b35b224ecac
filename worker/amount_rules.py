"""What a command's amount may be, checked before ``Decimal`` ever sees it. Pure.

The bank's amount field is 12 characters (``amount M (12)``, Status Inquiry, which the worker sends with
the command's amount whenever an answer is ambiguous), in rupiah with at most 2 decimals. The largest
amount that always fits, cents included, is ``999999999.99``: that is the maximum. Every rule is checked
on the text (or the integer) first, so no input can make ``Decimal`` raise or allocate: ``1e400``, a
30-digit number, ``NaN`` and ``Infinity`` are refused by shape before any arithmetic.

Each refusal is a ``PydanticCustomError`` whose type is the rule's name (``amount_exponent``...), so a
rejected result names the field and the rule.
"""

from __future__ import annotations

import re
from decimal import Decimal

from pydantic_core import PydanticCustomError

__all__ = [
    "AMOUNT_DESCRIPTION",
    "AMOUNT_JSON_SCHEMA",
    "AMOUNT_RULES_SUMMARY",
    "AMOUNT_TEXT_PATTERN",
    "MAX_AMOUNT",
    "MAX_AMOUNT_CHARS",
    "MAX_DECIMALS",
    "MAX_INTEGER_DIGITS",
    "command_amount",
]

MAX_AMOUNT = Decimal("999999999.99")
MAX_INTEGER_DIGITS = 9
MAX_DECIMALS = 2
MAX_AMOUNT_CHARS = MAX_INTEGER_DIGITS + 1 + MAX_DECIMALS  # the bank's field: 12 characters
AMOUNT_RULES_SUMMARY = (
    'A decimal string of digits ("100000", "1500.50") or a JSON integer: > 0, at most 999999999.99, '
    "at most 2 decimals; no sign, no exponent, no float, no NaN/Infinity"
)


def _amount_pattern() -> str:
    """Exactly the strings ``command_amount`` accepts, as one regular expression (RE2 and ECMA-262 alike).

    No lookahead, so "greater than zero" is spelled out: an integer part of 1 to 9 digits with a non-zero
    digit (``0{k}[1-9][0-9]{0,8-k}``: leading zeros count towards the 9) and an optional 1-2 decimals; or
    an integer part of zeros and decimals that are not all zero. ``tests/unit/test_amount_pattern.py``
    checks it against the runtime on arbitrary strings."""
    nonzero_integer = "|".join(
        "0" * k + "[1-9]" + (f"[0-9]{{0,{MAX_INTEGER_DIGITS - 1 - k}}}" if k < MAX_INTEGER_DIGITS - 1 else "")
        for k in range(MAX_INTEGER_DIGITS)
    )
    zero_integer = f"0{{1,{MAX_INTEGER_DIGITS}}}"
    return (
        f"^(?:(?:{nonzero_integer})(?:\\.[0-9]{{1,{MAX_DECIMALS}}})?"
        f"|{zero_integer}\\.(?:[1-9][0-9]?|0[1-9]))$"
    )


AMOUNT_TEXT_PATTERN = _amount_pattern()
AMOUNT_DESCRIPTION = (
    "A decimal string: ASCII digits, at most 9 before the point, optionally a point and 1 or 2 decimals "
    '("100000", "1500.50", "0.01"); greater than 0, at most 999999999.99; no sign, no exponent, no spaces. '
    "The worker also reads a JSON integer (1 to 999999999) from producers written before version 1; "
    "never a JSON number with a point."
)
AMOUNT_JSON_SCHEMA = {
    "type": "string",
    "pattern": AMOUNT_TEXT_PATTERN,
    "maxLength": MAX_AMOUNT_CHARS,
    "description": AMOUNT_DESCRIPTION,
    "examples": ["100000", "1500.50"],
}

_AMOUNT_TEXT = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,2})?")
_CENT = Decimal("0.01")


def _refuse(rule: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(rule, message)


def command_amount(value: object) -> Decimal:
    """The amount of a command, from JSON (a string or an integer) or from code (a ``Decimal``).

    Raises ``PydanticCustomError`` (a pydantic validation error inside a model), never anything else."""
    if isinstance(value, bool):
        raise _refuse("amount_type", 'amount must be a decimal string such as "1500.50", not a boolean')
    if isinstance(value, float):
        raise _refuse(
            "amount_float", 'amount must be a decimal string such as "1500.50" or an integer, never a float'
        )
    if isinstance(value, str):
        return _from_text(value)
    if isinstance(value, int):
        return _from_integer(value)
    if isinstance(value, Decimal):
        return _from_decimal(value)
    raise _refuse("amount_type", 'amount must be a decimal string such as "1500.50" or an integer')


def _from_text(text: str) -> Decimal:
    if len(text) > MAX_AMOUNT_CHARS:  # before any parsing: a megabyte of digits costs nothing
        raise _refuse(
            "amount_too_long",
            "amount is longer than 12 characters; the largest amount is 999999999.99",
        )
    if _AMOUNT_TEXT.fullmatch(text) is None:
        raise _refuse(*_why_not_an_amount(text))
    value = Decimal(text)  # safe: at most 9 + 2 ASCII digits
    if value <= 0:
        raise _refuse("amount_not_positive", "amount must be greater than zero")
    return value


def _why_not_an_amount(text: str) -> tuple[str, str]:
    lowered = text.strip().lower().lstrip("+-")
    if lowered in ("nan", "snan", "inf", "infinity"):
        return "amount_not_finite", "amount must be a finite number, not NaN or Infinity"
    if text[:1] in ("-", "+"):
        return "amount_sign", "amount must be greater than zero and written without a sign"
    if "e" in lowered and any(ch.isdigit() for ch in lowered):
        return "amount_exponent", "amount must be written in digits, without exponent notation (1e5)"
    if re.fullmatch(r"[0-9]+\.[0-9]{3,}", text):
        return "amount_scale", "amount has more than 2 decimal places"
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", text):
        return "amount_too_large", "amount has more than 9 digits before the point (max 999999999.99)"
    return (
        "amount_format",
        'amount must be ASCII digits with an optional point and 1-2 decimals, such as "1500.50"',
    )


def _from_integer(value: int) -> Decimal:
    if value <= 0:
        raise _refuse("amount_not_positive", "amount must be greater than zero")
    if value > MAX_AMOUNT:  # int vs Decimal compares exactly, however large the int
        raise _refuse("amount_too_large", "amount is over the maximum of 999999999.99")
    return Decimal(value)


def _from_decimal(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise _refuse("amount_not_finite", "amount must be a finite number, not NaN or Infinity")
    if value <= 0:
        raise _refuse("amount_not_positive", "amount must be greater than zero")
    if value > MAX_AMOUNT:  # compared before quantize, which cannot hold 1E+400 at 2 decimals
        raise _refuse("amount_too_large", "amount is over the maximum of 999999999.99")
    if value != value.quantize(_CENT):
        raise _refuse("amount_scale", "amount has more than 2 decimal places")
    return value
