"""The reconciliation's comparison, on fabricated results and history: every disagreement it must catch,
and the agreements it must not flag."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from worker.contracts import CommandType, Outcome, ResolvedBy, Result
from worker.ecash.models import HistoryEntry
from worker.ops.output import Console, Format
from worker.ops.reconcile import (
    Kind,
    Report,
    WalletLine,
    Window,
    is_ours,
    print_report,
    reconcile,
    settled,
    wallets_in,
)

WIB = timezone(timedelta(hours=7))
RICH = "0811000000001"
OTHER = "0811000000002"
DAY = Window(date(2026, 1, 2), date(2026, 1, 2))
NOON = datetime(2026, 1, 2, 12, 0, tzinfo=WIB)


def result(
    trace: str,
    outcome: Outcome = Outcome.SUCCEEDED,
    amount: str = "1000",
    kind: CommandType = CommandType.CHARGE,
    msisdn: str = RICH,
    at: datetime = NOON,
    resolved_by: ResolvedBy = ResolvedBy.RESPONSE,
) -> Result:
    return Result(
        event_id=f"e-{trace}-{outcome}-{at.isoformat()}",
        trace_number=trace,
        type=kind,
        msisdn=msisdn,
        amount=Decimal(amount),
        outcome=outcome,
        resolved_by=resolved_by,
        detail="fabricated",
        completed_at=at,
    )


def line(
    trace: str | None,
    amount: str = "Rp -1.000,00",
    msisdn: str = RICH,
    txn: str | None = None,
    at: datetime = NOON,
    agent: str = "agent01",
) -> WalletLine:
    data: dict[str, Any] = {
        "amount": amount,
        "username": agent,
        "transactionNumber": txn or f"N-{trace}",
        "trxDateTime": at.isoformat(),
        "transactionDate": f"{at:%d/%m/%Y}",
        "status": "PROCESSED",
    }
    if trace is not None:
        data["traceNumber"] = f"{agent}-{trace}"
    return WalletLine(msisdn, HistoryEntry.model_validate(data))


def check(
    results: list[Result],
    history: list[WalletLine],
    window: Window = DAY,
    checked: tuple[str, ...] = (RICH, OTHER),
    unavailable: dict[str, str] | None = None,
) -> Report:
    return reconcile(results, history, window, checked_wallets=checked, unavailable=unavailable)


def kinds(report: Report) -> set[tuple[Kind, str | None]]:
    return {(f.kind, f.trace_number) for f in report.findings}


def test_charges_and_credits_that_match_history_agree() -> None:
    report = check(
        [result("C1"), result("C2", amount="2500", kind=CommandType.CREDIT), result("C3", Outcome.DECLINED)],
        [line("C1", "Rp -1.000,00"), line("C2", "Rp 2.500,00")],
    )
    assert report.agrees
    assert report.findings == ()
    assert report.traces_checked == 3


def test_money_moved_without_any_result_is_reported() -> None:
    report = check([], [line("X1")])
    assert kinds(report) == {(Kind.MONEY_WITHOUT_SUCCESS, "X1")}
    finding = report.findings[0]
    assert finding.msisdn == RICH
    assert finding.result_outcome is None
    assert finding.history_amounts == (Decimal("-1000"),)
    assert "no result" in finding.detail


def test_money_moved_although_the_result_says_declined_or_failed() -> None:
    report = check([result("D1", Outcome.DECLINED), result("F1", Outcome.FAILED)], [line("D1"), line("F1")])
    assert kinds(report) == {(Kind.MONEY_WITHOUT_SUCCESS, "D1"), (Kind.MONEY_WITHOUT_SUCCESS, "F1")}
    assert {f.result_outcome for f in report.findings} == {"declined", "failed"}


def test_success_without_money_is_reported_for_a_wallet_whose_history_was_read() -> None:
    report = check([result("S1")], [])
    assert kinds(report) == {(Kind.SUCCESS_WITHOUT_MONEY, "S1")}
    assert report.findings[0].result_amount == Decimal("-1000")


def test_success_is_not_called_moneyless_when_the_wallet_history_could_not_be_read() -> None:
    report = check([result("S1")], [], checked=(), unavailable={RICH: "history answered GENERAL_ERROR"})
    assert kinds(report) == {(Kind.HISTORY_UNAVAILABLE, None)}
    assert report.findings[0].msisdn == RICH
    assert not report.agrees


def test_amounts_that_differ_are_reported() -> None:
    report = check([result("A1", amount="1000")], [line("A1", "Rp -2.000,00")])
    assert kinds(report) == {(Kind.AMOUNT_MISMATCH, "A1")}
    assert "Rp -2.000,00" in report.findings[0].detail


def test_a_charge_shown_as_money_in_is_an_amount_mismatch() -> None:
    report = check([result("A2", amount="1000", kind=CommandType.CHARGE)], [line("A2", "Rp 1.000,00")])
    assert kinds(report) == {(Kind.AMOUNT_MISMATCH, "A2")}


def test_an_unreadable_history_amount_is_a_mismatch_not_an_agreement() -> None:
    report = check([result("A3")], [line("A3", "about a thousand")])
    assert kinds(report) == {(Kind.AMOUNT_MISMATCH, "A3")}


def test_the_same_trace_twice_in_history_is_a_double_movement() -> None:
    report = check([result("D2")], [line("D2", txn="N1"), line("D2", txn="N2")])
    assert kinds(report) == {(Kind.DUPLICATE_IN_HISTORY, "D2")}
    assert report.findings[0].transaction_numbers == ("N1", "N2")


def test_one_entry_seen_twice_through_overlapping_pages_is_not_a_duplicate() -> None:
    report = check([result("P1")], [line("P1", txn="N1"), line("P1", txn="N1")])
    assert report.agrees


def test_unresolved_results_are_listed_for_attention() -> None:
    report = check([result("U1", Outcome.UNRESOLVED)], [])
    assert kinds(report) == {(Kind.UNRESOLVED, "U1")}


def test_unresolved_with_money_in_history_is_also_money_without_success() -> None:
    report = check([result("U2", Outcome.UNRESOLVED)], [line("U2")])
    assert kinds(report) == {(Kind.UNRESOLVED, "U2"), (Kind.MONEY_WITHOUT_SUCCESS, "U2")}


def test_a_manual_resolution_supersedes_the_unresolved_result() -> None:
    later = NOON + timedelta(hours=1)
    results = [
        result("U3", Outcome.UNRESOLVED),
        result("U3", Outcome.SUCCEEDED, at=later, resolved_by=ResolvedBy.MANUAL),
    ]
    assert check(results, [line("U3")]).agrees
    failed = [
        result("U4", Outcome.UNRESOLVED),
        result("U4", Outcome.FAILED, at=later, resolved_by=ResolvedBy.MANUAL),
    ]
    assert check(failed, []).agrees


def test_a_rejected_reuse_of_a_trace_number_does_not_hide_the_first_success() -> None:
    results = [result("R1"), result("R1", Outcome.REJECTED, amount="5000", at=NOON + timedelta(minutes=5))]
    assert settled(results) == results[0]
    assert check(results, [line("R1")]).agrees


def test_succeeded_and_failed_for_one_trace_number_conflict() -> None:
    results = [result("K1"), result("K1", Outcome.FAILED, at=NOON + timedelta(minutes=1))]
    assert kinds(check(results, [line("K1")])) == {(Kind.CONFLICTING_RESULTS, "K1")}


def test_money_on_another_wallet_than_the_result_names() -> None:
    report = check([result("W1", msisdn=RICH)], [line("W1", msisdn=OTHER)])
    assert kinds(report) == {(Kind.WALLET_MISMATCH, "W1")}
    assert "*******0002" in report.findings[0].detail
    assert OTHER not in report.findings[0].detail


def test_only_trace_numbers_dated_in_the_window_are_checked() -> None:
    before = NOON - timedelta(days=3)
    report = check([result("OLD", at=before)], [line("OLD2", at=before)])
    assert report.agrees
    assert report.traces_checked == 0


def test_a_result_just_after_midnight_finds_money_that_moved_just_before() -> None:
    moved = datetime(2026, 1, 1, 23, 59, 50, tzinfo=WIB)
    finished = datetime(2026, 1, 2, 0, 0, 30, tzinfo=WIB)
    report = check([result("M1", at=finished)], [line("M1", at=moved)])
    assert report.agrees
    assert report.traces_checked == 1


def test_the_window_counts_days_in_the_api_time_zone() -> None:
    # 18:00 UTC on the 1st is 01:00 WIB on the 2nd: inside a window of the 2nd.
    evening_utc = datetime(2026, 1, 1, 18, 0, tzinfo=UTC)
    assert DAY.contains(evening_utc)
    assert not DAY.contains(datetime(2026, 1, 1, 16, 59, tzinfo=UTC))
    assert wallets_in([result("Z", at=evening_utc, msisdn=OTHER)], DAY) == [OTHER]
    assert DAY.history_range() == (date(2026, 1, 1), date(2026, 1, 3))


def test_history_entries_of_other_agents_are_not_ours() -> None:
    ours = line("T1").entry
    theirs = line("T1", agent="agent02").entry
    assert is_ours(ours, "agent01")
    assert not is_ours(theirs, "agent01")
    assert is_ours(theirs, None)
    assert not is_ours(line(None).entry, None)


def test_the_report_as_json_carries_a_summary_and_every_finding() -> None:
    report = check([result("S1")], [line("X1")])
    out = io.StringIO()
    print_report(report, Console(Format.JSON, out, io.StringIO()))
    document = json.loads(out.getvalue())
    assert document["summary"]["agrees"] is False
    assert document["summary"]["disagreements"] == {"money_without_success": 1, "success_without_money": 1}
    assert {(f["kind"], f["trace_number"]) for f in document["findings"]} == {
        ("money_without_success", "X1"),
        ("success_without_money", "S1"),
    }
    by_trace = {f["trace_number"]: f for f in document["findings"]}
    assert by_trace["X1"]["history_amounts"] == ["-1000"]
    assert by_trace["S1"]["result_amount"] == "-1000"


def test_the_report_as_a_table_ends_with_a_verdict() -> None:
    out = io.StringIO()
    print_report(check([result("C1")], [line("C1")]), Console(Format.TABLE, out, io.StringIO()))
    assert out.getvalue().strip().endswith("1 trace numbers on 2 wallets checked; all agree")
