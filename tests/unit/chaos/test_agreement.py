"""The chaos run's and the demo's verdict: results against the ledger, per trace number."""

from __future__ import annotations

from typing import Any

from worker.agreement import check_agreement


def result(trace: str, outcome: str, *, event: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event or f"e-{trace}",
        "trace_number": trace,
        "outcome": outcome,
        "resolved_by": extra.pop("resolved_by", "response"),
        "msisdn": extra.pop("msisdn", "0813000000001"),
        "amount": extra.pop("amount", "1000"),
        "type": extra.pop("type", "charge"),
        "detail": extra.pop("detail", ""),
    }


def executed(trace: str, **extra: Any) -> dict[str, Any]:
    return {
        "trace_number": trace,
        "msisdn": extra.get("msisdn", "0813000000001"),
        "amount": extra.get("amount", "1000.00"),
        "type": extra.get("type", "charge"),
    }


def test_results_that_match_the_ledger_agree() -> None:
    check = check_agreement(
        {"T1": 1, "T2": 1, "T3": 1},
        [
            result("T1", "succeeded"),
            result("T2", "declined"),
            result("T3", "failed", resolved_by="status_inquiry"),
        ],
        [executed("T1")],
    )
    assert check.ok
    assert (check.commands, check.results, check.exactly_one) == (3, 3, 3)
    assert check.outcomes == {"succeeded": 1, "declined": 1, "failed": 1}
    assert check.resolved_by == {"response": 2, "status_inquiry": 1}


def test_a_republished_result_is_seen_twice_and_a_second_distinct_one_is_reported() -> None:
    check = check_agreement(
        {"T1": 1, "T2": 1},
        [
            result("T1", "succeeded"),
            result("T1", "succeeded"),
            result("T2", "succeeded", event="a"),
            result("T2", "succeeded", event="b"),
        ],
        [executed("T1"), executed("T2")],
    )
    # no money moved twice, nothing lost, nothing disagrees; but a read_committed reader saw T1's result
    # twice, which exactly-once results never allow
    assert not check.ok
    assert check.seen_twice == {"T1": 1}
    assert check.exactly_one == 1
    assert check.result_count_mismatch == {"T2": (1, 2)}


def test_money_moved_twice_is_a_double_charge() -> None:
    check = check_agreement({"T1": 1}, [result("T1", "succeeded")], [executed("T1"), executed("T1")])
    assert not check.ok
    assert check.double_charges == {"T1": 2}


def test_a_command_without_result_is_lost() -> None:
    check = check_agreement({"T1": 1, "T2": 1}, [result("T1", "declined")], [])
    assert not check.ok
    assert check.lost == ("T2",)


def test_success_without_money_and_money_without_success_disagree() -> None:
    check = check_agreement(
        {"T1": 1, "T2": 1, "T3": 1},
        [result("T1", "succeeded"), result("T2", "failed"), result("T3", "rejected")],
        [executed("T2"), executed("T3")],
    )
    assert not check.ok
    reasons = {d.trace_number: d.reason for d in check.disagreements}
    assert reasons["T1"] == "succeeded, but no money moved"
    assert "money moved, but the result says failed" in reasons["T2"]
    assert "money moved, but the result says rejected" in reasons["T3"]


def test_money_on_another_wallet_or_amount_disagrees() -> None:
    check = check_agreement(
        {"T1": 1, "T2": 1},
        [result("T1", "succeeded"), result("T2", "succeeded", amount="1000.50")],
        [executed("T1", msisdn="0813000000009"), executed("T2", amount="1000.00")],
    )
    reasons = {d.trace_number: d.reason for d in check.disagreements}
    assert "another wallet" in reasons["T1"]
    assert "for 1000.00" in reasons["T2"]


def test_unresolved_is_honest_until_a_manual_decision_settles_it() -> None:
    pending = result("T1", "unresolved", detail="no conclusion within 20 s", resolved_by="status_inquiry")
    open_check = check_agreement(
        {"T1": 1, "T2": 1}, [pending, result("T2", "unresolved", event="x")], [executed("T1")]
    )
    assert open_check.ok
    assert open_check.unresolved == {"T1": "no conclusion within 20 s", "T2": ""}
    closed = result("T1", "succeeded", event="manual", resolved_by="manual")
    closed_check = check_agreement({"T1": 1}, [pending, closed], [executed("T1")])
    assert closed_check.unresolved == {}
    assert closed_check.ok


def test_a_duplicate_and_a_reused_trace_number_count_per_message() -> None:
    check = check_agreement(
        {"DUP": 2, "REUSE": 2},
        [
            result("DUP", "succeeded", event="d1"),
            result("DUP", "succeeded", event="d2", resolved_by="journal"),
            result("REUSE", "succeeded", event="r1"),
            result("REUSE", "rejected", event="r2", resolved_by="journal", amount="9000"),
        ],
        [executed("DUP"), executed("REUSE")],
    )
    assert check.ok
    assert (check.messages, check.results, check.exactly_one) == (4, 4, 4)


def test_conflicting_final_outcomes_disagree_whatever_the_ledger() -> None:
    check = check_agreement(
        {"T1": 1}, [result("T1", "succeeded", event="a"), result("T1", "failed", event="b")], [executed("T1")]
    )
    assert [d.reason for d in check.disagreements] == ["conflicting results: succeeded and failed"]
