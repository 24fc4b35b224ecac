"""The fingerprint: same money movement, same hash; a different movement, a different one."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from worker.contracts import Command
from worker.core.fingerprint import fingerprint

BASE: dict[str, Any] = {
    "type": "charge",
    "trace_number": "2016041312050101",
    "msisdn": "08131234567",
    "amount": Decimal("100000"),
}


def command(**changes: Any) -> Command:
    return Command(**(BASE | changes))


def test_fingerprint_is_stable_across_releases() -> None:
    # Pinned: fingerprints live in the journal for days; changing the recipe would refuse redeliveries.
    assert fingerprint(command()) == "5382f4cdb670d2242d355abfe43da4f3"


@pytest.mark.parametrize(
    "amount", [Decimal("100000.00"), Decimal("100000.0"), "100000", 100000, Decimal("1E+5")]
)
def test_equal_amounts_give_the_same_fingerprint(amount: object) -> None:
    assert fingerprint(command(amount=amount)) == fingerprint(command())


def test_cents_are_normalized_too() -> None:
    assert fingerprint(command(amount="1500.5")) == fingerprint(command(amount=Decimal("1500.50")))


@pytest.mark.parametrize(
    "changes",
    [
        {"type": "credit"},
        {"msisdn": "08131234568"},
        {"amount": Decimal("100000.01")},
        {"transfer_type_id": "7"},
        {"account_type_id": "6"},
    ],
    ids=["type", "msisdn", "amount", "transfer_type_id", "account_type_id"],
)
def test_parameters_that_move_money_change_the_fingerprint(changes: dict[str, Any]) -> None:
    assert fingerprint(command(**changes)) != fingerprint(command())


@pytest.mark.parametrize(
    "changes",
    [
        {"description": "monthly fee"},
        {"metadata": {"order": "A-1"}},
        {"expires_at": datetime(2026, 1, 2, tzinfo=UTC)},
        {"trace_number": "OTHER1"},
    ],
    ids=["description", "metadata", "expires_at", "trace_number"],
)
def test_other_fields_do_not_change_the_fingerprint(changes: dict[str, Any]) -> None:
    assert fingerprint(command(**changes)) == fingerprint(command())


def test_fingerprint_is_32_hex_characters() -> None:
    value = fingerprint(command())
    assert len(value) == 32
    assert int(value, 16) >= 0
