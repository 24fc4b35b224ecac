"""The chaos run's and the demo's verdict: results against the ledger, per trace number."""

from __future__ import annotations

from typing import Any

import pytest

from ecash_dev.chaos.agreement import check_agreement


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


# --- one trace number, one payment: commands that share a trace number across partitions ---------------

A, B = "0813000000001", "0813000000002"


def test_a_cross_partition_duplicate_answered_from_the_journal_agrees() -> None:
    check = check_agreement(
        {"DUP": 2},
        [
            result("DUP", "succeeded", event="first"),
            result("DUP", "succeeded", event="copy", resolved_by="journal"),
        ],
        [executed("DUP")],
    )
    assert check.ok
    assert check.acted_on_twice == {}
    assert check.unanswered == {}
    assert (check.messages, check.exactly_one) == (2, 2)


def test_a_cross_partition_duplicate_executed_twice_is_acted_on_twice_and_a_double_charge() -> None:
    check = check_agreement(
        {"DUP": 2},
        [result("DUP", "succeeded", event="first"), result("DUP", "succeeded", event="copy")],
        [executed("DUP"), executed("DUP")],
    )
    assert not check.ok
    assert check.double_charges == {"DUP": 2}
    assert check.acted_on_twice == {"DUP": 2}
    assert check.disagreements == ()  # each result matches an execution: the fault is the second one


@pytest.mark.parametrize("winner", [A, B])
def test_a_trace_number_reused_on_another_wallet_agrees_when_the_other_is_rejected(winner: str) -> None:
    loser = B if winner == A else A
    check = check_agreement(
        {"T": 2},
        [
            result("T", "succeeded", event=f"e-{winner}", msisdn=winner),
            result("T", "rejected", event=f"e-{loser}", msisdn=loser, resolved_by="journal"),
        ],
        [executed("T", msisdn=winner)],
    )
    assert check.ok
    assert check.acted_on_twice == {}


def test_a_reuse_answered_as_a_success_on_its_own_wallet_disagrees_with_the_ledger() -> None:
    check = check_agreement(
        {"T": 2},
        [
            result("T", "succeeded", event="a", msisdn=A),
            result("T", "succeeded", event="b", msisdn=B, resolved_by="journal"),
        ],
        [executed("T", msisdn=A)],
    )
    assert not check.ok
    assert check.acted_on_twice == {}
    reasons = [d.reason for d in check.disagreements]
    assert reasons == [f"money moved on another wallet ({A}) than the result's"]


def test_two_commands_acted_on_is_caught_even_when_no_money_moved() -> None:
    check = check_agreement(
        {"T": 2},
        [
            result("T", "declined", event="a", msisdn=A),
            result("T", "declined", event="b", msisdn=B),
        ],
        [],
    )
    assert check.double_charges == {}
    assert check.disagreements == ()
    assert check.acted_on_twice == {"T": 2}
    assert not check.ok


def test_a_duplicate_never_answered_is_unanswered_not_lost() -> None:
    check = check_agreement({"DUP": 2, "ONE": 1}, [result("DUP", "succeeded"), result("ONE", "failed")], [])
    assert check.lost == ()
    assert check.unanswered == {"DUP": 1}
    assert check.result_count_mismatch == {"DUP": (2, 1)}
    assert not check.ok


def test_an_operators_decision_closes_the_command_it_answers_not_another() -> None:
    pending = result("T", "unresolved", event="u", resolved_by="status_inquiry")
    decided = result("T", "succeeded", event="m", resolved_by="manual")
    duplicate = result("T", "unresolved", event="d", resolved_by="journal")
    check = check_agreement({"T": 2}, [pending, decided, duplicate], [executed("T")])
    assert check.acted_on_twice == {}
    assert check.unanswered == {}
    assert check.ok
    alone = check_agreement({"T": 1}, [decided, result("T", "failed", event="x")], [])
    assert alone.acted_on_twice == {"T": 2}  # a decision with no unresolved command is a command acted on


def test_a_rejected_command_was_not_acted_on_whatever_resolved_it() -> None:
    check = check_agreement(
        {"T": 3},
        [
            result("T", "succeeded", event="a"),
            result("T", "rejected", event="b", msisdn=B),  # e.g. key_not_msisdn: resolved_by response
            result("T", "rejected", event="c", msisdn=B, resolved_by="journal"),
        ],
        [executed("T")],
    )
    assert check.acted_on_twice == {}
    assert check.ok
