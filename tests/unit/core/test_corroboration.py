"""Corroborating a Status Inquiry PROCESSED with the MSISDN's Transaction History: in memory, no sockets.

History lines are built in the spec's wire shape and read by the client's own model (``HistoryEntry``), so
the amounts (``Rp -14.500,00``) and the ``<agent>-<trace>`` trace numbers are parsed as in production.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from worker.contracts import Command
from worker.core.corroboration import (
    Corroborated,
    Direction,
    Expected,
    NotCorroborated,
    corroborate,
    echo_mismatch,
    expected_for,
    history_unreadable,
    matches,
    trace_matches,
)
from worker.ecash.models import HistoryEntry

MSISDN = "08131234567"
CHARGE = Expected("20160630123472", Decimal("14500"), "charge", MSISDN)
CREDIT = Expected("T1", Decimal("1000"), "credit", MSISDN)


def rupiah(value: Decimal) -> str:
    sign = "-" if value < 0 else ""
    grouped = f"{abs(value):,.2f}".translate(str.maketrans(",.", ".,"))
    return f"Rp {sign}{grouped}"


def line(trace: str | None, amount: Decimal | str | None, **extra: Any) -> HistoryEntry:
    wire: dict[str, Any] = {
        "username": "001",
        "transactionNumber": extra.pop("number", "20160701000000000001"),
        "trxDateTime": "2016-07-01T16:37:45+07:00",
        "transactionDate": "01/07/2016",
        "status": "PROCESSED",
        **extra,
    }
    if trace is not None:
        wire["traceNumber"] = trace
    if amount is not None:
        wire["amount"] = amount if isinstance(amount, str) else rupiah(amount)
    return HistoryEntry.model_validate(wire)


# --- the examples --------------------------------------------------------------------------------------


def test_the_spec_example_line_corroborates_a_charge_of_its_amount() -> None:
    entry = line("001-20160630123472", "Rp -14.500,00", number="N1")
    verdict = corroborate(CHARGE, [entry])
    assert verdict == Corroborated(
        "N1",
        "2016-07-01T16:37:45+07:00",
        "the Transaction History of MSISDN 08131234567 shows trace number 20160630123472 "
        "(transaction N1 at 2016-07-01T16:37:45+07:00)",
    )


def test_an_empty_history_does_not_show_the_trace_number() -> None:
    assert corroborate(CHARGE, []) == NotCorroborated(
        "Status Inquiry answered PROCESSED but the Transaction History of MSISDN 08131234567 "
        "does not show trace number 20160630123472 (0 entries read)"
    )


def test_another_trace_number_with_the_same_amount_is_not_ours() -> None:
    verdict = corroborate(CHARGE, [line("001-20160630123473", Decimal("-14500"))])
    assert isinstance(verdict, NotCorroborated)
    assert "does not show trace number 20160630123472 (1 entry read)" in verdict.evidence


def test_our_trace_number_with_another_amount_or_direction_is_not_ours() -> None:
    wrong_amount = line("001-T1", Decimal("2000"), number="N2")
    wrong_direction = line("001-T1", Decimal("-1000"), number="N3")
    verdict = corroborate(CREDIT, [wrong_amount, wrong_direction])
    assert verdict == NotCorroborated(
        "Status Inquiry answered PROCESSED but the Transaction History of MSISDN 08131234567 shows trace "
        "number T1 only as transaction N2 with amount Rp 2.000,00 (a credit of 1000 would show as 1000), "
        "transaction N3 with amount Rp -1.000,00 (a credit of 1000 would show as 1000)"
    )


def test_our_trace_number_with_a_status_other_than_processed_is_not_ours() -> None:
    verdict = corroborate(CREDIT, [line("001-T1", Decimal("1000"), status="FAILED", number="N4")])
    assert isinstance(verdict, NotCorroborated)
    assert "transaction N4 with status FAILED" in verdict.evidence


def test_an_amount_that_cannot_be_read_is_not_a_match_but_a_missing_one_is_not_checked() -> None:
    assert isinstance(corroborate(CREDIT, [line("001-T1", "one thousand")]), NotCorroborated)
    assert isinstance(corroborate(CREDIT, [line("001-T1", None)]), Corroborated)


def test_a_missing_status_is_not_checked() -> None:
    assert isinstance(corroborate(CREDIT, [line("001-T1", Decimal("1000"), status=None)]), Corroborated)


def test_the_first_matching_line_wins_after_lines_that_do_not_match() -> None:
    lines = [
        line("001-T2", Decimal("1000"), number="A"),
        line("001-T1", Decimal("999"), number="B"),
        line("001-T1", Decimal("1000"), number="C"),
        line("001-T1", Decimal("1000"), number="D"),
    ]
    verdict = corroborate(CREDIT, lines)
    assert isinstance(verdict, Corroborated)
    assert verdict.transaction_number == "C"
    assert [matches(CREDIT, entry) for entry in lines] == [False, False, True, True]


def test_trace_numbers_are_matched_after_the_agent_prefix_or_bare() -> None:
    assert trace_matches("001-T1", "T1")
    assert trace_matches("agent01-T1", "T1")
    assert trace_matches(" T1 ", "T1")
    assert not trace_matches("001-T11", "T1")
    assert not trace_matches("001-XT1", "T1")
    assert not trace_matches("T1-001", "T1")
    assert not trace_matches("", "T1")
    assert not trace_matches(None, "T1")


def test_the_echo_must_be_our_trace_number() -> None:
    assert echo_mismatch(CREDIT, "T1") is None
    assert echo_mismatch(CREDIT, " T1 ") is None
    assert echo_mismatch(CREDIT, None) == NotCorroborated(
        "Status Inquiry answered PROCESSED without echoing a trace number (asked T1)"
    )
    assert echo_mismatch(CREDIT, "") is not None
    # The spec's own example: asked 10005, answered 100005. Not believed.
    mismatch = echo_mismatch(Expected("10005", Decimal("100000"), "charge", MSISDN), "100005")
    assert mismatch == NotCorroborated(
        "Status Inquiry answered PROCESSED for trace number '100005', not '10005'"
    )


def test_history_that_cannot_be_read_is_no_corroboration() -> None:
    assert history_unreadable(CREDIT, "ApiUnavailable: 503") == NotCorroborated(
        "Status Inquiry answered PROCESSED but the Transaction History of MSISDN 08131234567 could not be "
        "read: ApiUnavailable: 503"
    )


def test_expected_for_a_command_signs_its_amount_as_history_does() -> None:
    charge = Command.model_validate(
        {"type": "charge", "trace_number": "T9", "msisdn": MSISDN, "amount": "1500.50"}
    )
    credit = charge.model_copy(update={"type": "credit"})
    assert expected_for(charge) == Expected("T9", Decimal("1500.50"), "charge", MSISDN)
    assert expected_for(charge).signed_amount == Decimal("-1500.50")
    assert expected_for(credit).signed_amount == Decimal("1500.50")


# --- properties ------------------------------------------------------------------------------------------

TRACES = st.text(alphabet="0123456789ABCDEFxyz", min_size=1, max_size=12)
AGENTS = st.sampled_from(["001", "agent01", "AG"])
AMOUNTS = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999999"), places=2)
DIRECTIONS: st.SearchStrategy[Direction] = st.sampled_from(["charge", "credit"])


@st.composite
def expectations(draw: st.DrawFn) -> Expected:
    return Expected(draw(TRACES), draw(AMOUNTS), draw(DIRECTIONS), MSISDN)


@st.composite
def other_lines(draw: st.DrawFn, expected: Expected) -> list[HistoryEntry]:
    """Lines that are not ours: another trace number, whatever their amount (the same one included)."""
    out = []
    for index in range(draw(st.integers(0, 8))):
        trace = draw(TRACES.filter(lambda t: t != expected.trace_number))
        amount = draw(st.sampled_from([expected.signed_amount, -expected.signed_amount, Decimal("5")]))
        out.append(line(f"{draw(AGENTS)}-{trace}", amount, number=f"O{index}"))
    return out


@given(st.data(), expectations())
def test_lines_of_other_trace_numbers_never_corroborate(data: st.DataObject, expected: Expected) -> None:
    verdict = corroborate(expected, data.draw(other_lines(expected)))
    assert isinstance(verdict, NotCorroborated)
    assert f"does not show trace number {expected.trace_number}" in verdict.evidence


@given(st.data(), expectations(), AGENTS)
def test_our_line_corroborates_wherever_it_stands(
    data: st.DataObject, expected: Expected, agent: str
) -> None:
    others = data.draw(other_lines(expected))
    ours = line(f"{agent}-{expected.trace_number}", expected.signed_amount, number="OURS")
    at = data.draw(st.integers(0, len(others)))
    verdict = corroborate(expected, [*others[:at], ours, *others[at:]])
    assert isinstance(verdict, Corroborated)
    assert verdict.transaction_number == "OURS"


@given(st.data(), expectations(), AGENTS)
def test_our_trace_number_the_other_way_round_never_corroborates(
    data: st.DataObject, expected: Expected, agent: str
) -> None:
    others = data.draw(other_lines(expected))
    reversed_ = line(f"{agent}-{expected.trace_number}", -expected.signed_amount, number="REV")
    verdict = corroborate(expected, [*others, reversed_])
    assert isinstance(verdict, NotCorroborated)
    assert "transaction REV with amount" in verdict.evidence


@given(TRACES, st.text(max_size=14))
def test_an_echo_is_believed_only_when_it_is_the_trace_number(trace: str, echoed: str) -> None:
    expected = Expected(trace, Decimal("1"), "charge", MSISDN)
    assert (echo_mismatch(expected, echoed) is None) == (echoed.strip() == trace)
