"""Money on the wire: parsing the API's amount strings into Decimal, formatting ours. Pure functions.

The API writes amounts two ways: plain decimals in most answers (``"2300000.00"``) and Indonesian
formatting in Transaction History (``"Rp -14.500,00"``: ``.`` groups thousands, ``,`` marks decimals,
the sign after ``Rp``). We send plain decimal strings (``"100000"``), never exponents, never floats.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from worker.contracts import format_amount

__all__ = ["AmountError", "parse_amount", "wire_amount"]

_PLAIN = re.compile(r"[+-]?\d+(\.\d+)?")
_INDONESIAN = re.compile(r"[+-]?\d{1,3}(\.\d{3})*(,\d+)?")
_ENGLISH_GROUPED = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?")
_CURRENCY = re.compile(r"^(rp\.?|idr)\s*", re.IGNORECASE)


class AmountError(ValueError):
    """An amount string the API wrote in a shape we do not recognise."""


def parse_amount(text: str | int | Decimal) -> Decimal:
    """``"2300000.00"``, ``"Rp -14.500,00"``, ``"Rp 1.000,00"``, ``"-Rp 5.000"`` -> Decimal.

    Without a currency prefix a lone ``.`` is a decimal point (``"1.50"`` is 1.50), as in the plain
    answers; with ``Rp`` it groups thousands (``"Rp 1.000"`` is 1000), as in history.
    """
    if isinstance(text, bool):
        raise AmountError("a boolean is not an amount")
    if isinstance(text, int | Decimal):
        return _finite(Decimal(text))
    raw = text.strip()
    sign = ""
    if raw.startswith(("+", "-")):
        sign, raw = raw[0], raw[1:].lstrip()
    prefixed = bool(_CURRENCY.match(raw))
    body = _CURRENCY.sub("", raw).replace(" ", "").replace("\u00a0", "")
    if body.startswith(("+", "-")):
        if sign:
            raise AmountError(f"two signs in amount {text!r}")
        sign, body = body[0], body[1:]
    return _finite(_to_decimal(sign, body, prefixed, text))


def _to_decimal(sign: str, body: str, prefixed: bool, original: str) -> Decimal:
    if not prefixed and _PLAIN.fullmatch(body):
        digits = body
    elif _INDONESIAN.fullmatch(body):
        digits = body.replace(".", "").replace(",", ".")
    elif _ENGLISH_GROUPED.fullmatch(body):
        digits = body.replace(",", "")
    elif _PLAIN.fullmatch(body):
        digits = body
    else:
        raise AmountError(f"not an amount: {original!r}")
    try:
        return Decimal(sign + digits)
    except InvalidOperation as exc:  # pragma: no cover - the patterns above only let digits through
        raise AmountError(f"not an amount: {original!r}") from exc


def _finite(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise AmountError("amount must be finite")
    return value


def wire_amount(value: Decimal) -> str:
    """Our amount as the API wants it: ``100000``, ``1500.50``. Refuses what would be silently rounded."""
    if isinstance(value, float):
        raise TypeError("amounts are Decimal, never float")
    if not value.is_finite() or value <= 0:
        raise AmountError("amount must be a finite number above zero")
    if value != value.quantize(Decimal("0.01")):
        raise AmountError("amount has more than 2 decimal places")
    return format_amount(value)
