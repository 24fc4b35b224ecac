from __future__ import annotations

from decimal import Decimal

import pytest

from worker.ecash.amounts import AmountError, parse_amount, wire_amount


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2300000.00", Decimal("2300000.00")),
        ("5000000.00", Decimal("5000000.00")),
        ("0.00", Decimal("0")),
        ("Rp -14.500,00", Decimal("-14500.00")),
        ("Rp 1.000,00", Decimal("1000.00")),
        ("Rp -5.000,00", Decimal("-5000.00")),
        ("-Rp 5.000", Decimal("-5000")),
        ("Rp 12.345.678,90", Decimal("12345678.90")),
        ("Rp 999", Decimal("999")),
        ("Rp 1234567", Decimal("1234567")),
        ("IDR 1.000", Decimal("1000")),
        ("1.000,5", Decimal("1000.5")),
        ("1,250,000.00", Decimal("1250000.00")),
        ("100000", Decimal("100000")),
        (" 42 ", Decimal("42")),
        (7, Decimal("7")),
    ],
)
def test_the_apis_amount_spellings_parse_to_exact_decimals(text: str | int, value: Decimal) -> None:
    assert parse_amount(text) == value


def test_without_a_currency_prefix_a_dot_is_a_decimal_point() -> None:
    assert parse_amount("1.50") == Decimal("1.50")
    assert parse_amount("Rp 1.500") == Decimal("1500")


@pytest.mark.parametrize("text", ["", "Rp", "abc", "1.2.3", "--5", "- Rp -5", "NaN", "Infinity", "1e5"])
def test_garbage_is_refused_with_amount_error(text: str) -> None:
    with pytest.raises(AmountError):
        parse_amount(text)


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (Decimal("100000"), "100000"),
        (Decimal("1E+5"), "100000"),
        (Decimal("100000.00"), "100000"),
        (Decimal("1500.50"), "1500.50"),
        (Decimal("0.01"), "0.01"),
    ],
)
def test_amounts_go_out_as_plain_decimal_strings(value: Decimal, wire: str) -> None:
    assert wire_amount(value) == wire


@pytest.mark.parametrize(
    "value", [Decimal("1.005"), Decimal("0"), Decimal("-1"), Decimal("NaN"), Decimal("Infinity")]
)
def test_an_amount_that_would_be_rounded_or_is_not_positive_is_refused(value: Decimal) -> None:
    with pytest.raises(AmountError):
        wire_amount(value)


def test_a_float_is_never_an_amount() -> None:
    with pytest.raises(TypeError):
        wire_amount(100000.0)  # type: ignore[arg-type]
