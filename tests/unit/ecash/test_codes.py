from __future__ import annotations

import re
from pathlib import Path

import pytest

from worker.ecash.codes import (
    CATALOGUE,
    CallClass,
    canonical,
    classify_money_code,
    describe,
    is_fatal_config_code,
    is_known,
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "response-codes.md"

DECLINED = [
    "NOT_ENOUGH_CREDITS",
    "MEMBER_NOT_FOUND",
    "MEMBER_NOT_REGISTERED",
    "TO_NOT_FOUND",
    "MAX_DAILY_AMOUNT_RECEIVER_EXCEEDED",
    "MAX_MONTH_AMOUNT_EXCEEDED",
    "RECEIVER_UPPER_CREDIT_LIMIT_REACHED",
    "BLOCKED",
    "BLOCKED_GROUPID",
    "CHANNEL_BLOCKED",
    "INVALID_PARAMETER",
    "INVALID_PARAMETERS",
    "TRANSFER_TYPE_NOT_ALLOWED",
    "INVALID_CREDENTIAL",
    "NOT_ALLOWED",
    "FROM_INVALID_CHANNEL",
    "TO_INVALID_CHANEL",
    "FROM_NOT_FOUND",
    "UNKNOWN_TRXTYPE",
]
AMBIGUOUS = [
    "GENERAL_ERROR",
    "FAILED",
    "REQUEST_RECEIVED",
    "VALID",
    "ALREADY_REGISTERED",
    "OTP_VALIDATION_FAILED_OTP_ALREADY_VALIDATED",
    "PAYMENT_NOT_FOUND",
    "NO_TRANSACTION",
]


def test_the_catalogue_has_the_51_rows_of_section_3_and_both_codes_of_row_48() -> None:
    rows = sorted({info.row for info in CATALOGUE.values()})
    assert rows == list(range(1, 52))
    assert {info.code for info in CATALOGUE.values() if info.row == 48} == {
        "TRANSFER_TYPE_NOT_ALLOWED",
        "INVALID_PARAMETERS",
    }
    assert len(CATALOGUE) == 52
    assert all(info.description for info in CATALOGUE.values())


def test_processed_succeeds_and_token_expired_asks_for_a_new_session() -> None:
    assert classify_money_code("PROCESSED") is CallClass.SUCCEEDED
    assert classify_money_code("TOKEN_EXPIRED") is CallClass.SESSION_EXPIRED


@pytest.mark.parametrize("code", DECLINED)
def test_definite_refusals_are_declined(code: str) -> None:
    assert classify_money_code(code) is CallClass.DECLINED


@pytest.mark.parametrize("code", AMBIGUOUS)
def test_codes_that_do_not_rule_out_a_booking_are_ambiguous(code: str) -> None:
    assert classify_money_code(code) is CallClass.AMBIGUOUS


@pytest.mark.parametrize("code", [None, "", "   ", "SOMETHING_NEW", "PROCESSED_MAYBE", "x" * 10_000, "é\x00"])
def test_missing_or_unknown_codes_are_ambiguous_and_never_raise(code: str | None) -> None:
    assert classify_money_code(code) is CallClass.AMBIGUOUS
    assert not is_fatal_config_code(code)
    assert not is_fatal_config_code(code, login=True)
    assert len(describe(code)) < 200


@pytest.mark.parametrize(
    ("spelling", "code"),
    [
        ("UNSUPPORTED PROVIDER", "UNSUPPORTED PROVIDER"),
        ("UNSUPPORTED_PROVIDER", "UNSUPPORTED PROVIDER"),
        ("TO_INVALID_CHANEL", "TO_INVALID_CHANEL"),
        ("TO_INVALID_CHANNEL", "TO_INVALID_CHANEL"),
        (" processed ", "PROCESSED"),
        ("Not_Enough_Credits", "NOT_ENOUGH_CREDITS"),
    ],
)
def test_printed_and_probable_wire_spellings_are_the_same_code(spelling: str, code: str) -> None:
    assert canonical(spelling) == code
    assert is_known(spelling)
    assert classify_money_code(spelling) is CATALOGUE[code].money_class


def test_configuration_refusals_are_declined_and_flagged_fatal() -> None:
    for code in ("INVALID_CREDENTIAL", "NOT_ALLOWED", "IPG_AUTH_FAILED", "INVALID_NAME_OR_SECRETWORD"):
        assert classify_money_code(code) is CallClass.DECLINED
        assert is_fatal_config_code(code)
        assert is_fatal_config_code(code, login=True)
    assert not is_fatal_config_code("NOT_ENOUGH_CREDITS")
    assert not is_fatal_config_code("PROCESSED", login=True)


def test_member_or_agent_codes_are_fatal_only_as_the_answer_to_login() -> None:
    for code in ("BLOCKED", "USER_NOT_FOUND"):
        assert not is_fatal_config_code(code)
        assert is_fatal_config_code(code, login=True)


def test_describe_names_the_code_and_its_meaning() -> None:
    assert describe("FAILED") == "FAILED (Transaction is fail)"
    assert describe(None) == "no response code"
    assert "not a documented response code" in describe("NEW_CODE")


def _doc_rows() -> dict[str, tuple[str, str]]:
    rows: dict[str, tuple[str, str]] = {}
    for line in DOC.read_text().splitlines():
        match = re.match(r"\| (\d+) \| `([^`]+)` \| [^|]+ \| (\w+) \| ([\w ]+) \|", line)
        if match:
            rows[match.group(2)] = (match.group(3), match.group(4).strip())
    return rows


def test_the_documented_table_agrees_with_the_catalogue() -> None:
    rows = _doc_rows()
    assert set(rows) == set(CATALOGUE)
    for code, info in CATALOGUE.items():
        documented_class, documented_fatal = rows[code]
        assert documented_class == info.money_class.value, code
        expected_fatal = (
            "yes" if info.fatal_config else ("login only" if is_fatal_config_code(code, login=True) else "no")
        )
        assert documented_fatal == expected_fatal, code
