"""Fault decisions: which misbehaviour applies to which call, deterministically, without I/O."""

from __future__ import annotations

import pytest

from ecash_dev.sandbox.faults import (
    FaultInjector,
    FaultKind,
    FaultRule,
    FaultSpecError,
    parse_fault_spec,
    rule_from_json,
)
from worker.ecash.wire import Operation


def injector(*specs: str, seed: int = 7) -> FaultInjector:
    return FaultInjector.from_rules([parse_fault_spec(spec) for spec in specs], seed)


def test_compact_syntax_examples() -> None:
    rule = parse_fault_spec("charge:hang_after_commit:p=0.05")
    assert (rule.operation, rule.kind, rule.probability) == (
        Operation.CHARGE,
        FaultKind.HANG_AFTER_COMMIT,
        0.05,
    )
    rule = parse_fault_spec("*:latency:ms=20")
    assert (rule.operation, rule.latency_ms) == ("*", 20.0)
    rule = parse_fault_spec("Credit:RESET_AFTER_COMMIT:count=2")
    assert (rule.operation, rule.kind, rule.count) == (Operation.CREDIT, FaultKind.RESET_AFTER_COMMIT, 2)
    rule = parse_fault_spec("charge:http_5xx_after_commit:trace=T1|T2,status=503")
    assert (rule.trace_numbers, rule.http_status) == (("T1", "T2"), 503)
    assert parse_fault_spec("status:status_lag:lag_s=5").lag_s == 5.0


@pytest.mark.parametrize(
    "spec",
    [
        "charge",
        "charge:explode",
        "transfer:latency:ms=5",
        "charge:latency",
        "charge:latency:ms=5,colour=red",
        "charge:status_lag:lag_s=5",
        "login:token_expired",
        "charge:hang_after_commit:p=1.5",
        "charge:http_5xx_after_commit:status=404",
    ],
)
def test_bad_specs_are_refused_with_a_reason(spec: str) -> None:
    with pytest.raises(FaultSpecError, match=r"\S"):
        parse_fault_spec(spec)


def test_admin_rules_may_be_strings_or_objects() -> None:
    as_object = rule_from_json({"operation": "charge", "kind": "malformed_json", "count": 1})
    assert as_object == parse_fault_spec("charge:malformed_json:count=1")
    with pytest.raises(FaultSpecError):
        rule_from_json({"kind": "latency"})


def test_a_rule_without_probability_or_count_applies_to_every_matching_call() -> None:
    faults = injector("charge:http_5xx_before_commit")
    assert all(faults.plan(Operation.CHARGE, f"T{i}").before is not None for i in range(5))
    assert faults.plan(Operation.CREDIT, "T9").before is None


def test_count_applies_to_the_next_n_calls_only() -> None:
    faults = injector("charge:reset_after_commit:count=2")
    kinds = [faults.plan(Operation.CHARGE, f"T{i}").after for i in range(4)]
    assert [k is not None for k in kinds] == [True, True, False, False]
    assert faults.snapshot()[0]["remaining"] == 0
    assert faults.snapshot()[0]["applied"] == 2


def test_trace_numbers_target_specific_calls() -> None:
    faults = injector("*:hang_after_commit:trace=T2|T3")
    hung = [t for t in ("T1", "T2", "T3", "T4") if faults.plan(Operation.CHARGE, t).after is not None]
    assert hung == ["T2", "T3"]
    assert faults.plan(Operation.STATUS, "T2").after is not None  # "*" covers Status of that trace too


def test_probability_is_deterministic_under_a_seed_whatever_the_order() -> None:
    traces = [f"T{i}" for i in range(400)]

    def hung(order: list[str], seed: int) -> set[str]:
        faults = injector("charge:hang_after_commit:p=0.3", seed=seed)
        return {t for t in order if faults.plan(Operation.CHARGE, t).after is not None}

    first = hung(traces, seed=1)
    assert hung(list(reversed(traces)), seed=1) == first
    assert hung(traces, seed=2) != first
    assert 0.2 * 400 < len(first) < 0.4 * 400


def test_a_retried_trace_gets_a_fresh_draw() -> None:
    faults = injector("status:http_5xx_before_commit:p=0.5")
    outcomes = {faults.plan(Operation.STATUS, "T1").before is not None for _ in range(40)}
    assert outcomes == {True, False}


def test_probability_rate_is_close_to_the_configured_one() -> None:
    faults = injector("*:malformed_json:p=0.05", seed=42)
    hits = sum(faults.plan(Operation.BALANCE, None).after is not None for _ in range(4000))
    assert 120 < hits < 280


def test_latencies_add_up_and_the_first_disruptive_rule_wins() -> None:
    faults = injector(
        "*:latency:ms=10",
        "charge:latency:ms=5",
        "charge:reset_after_commit:count=1",
        "charge:http_5xx_before_commit:count=1",
    )
    plan = faults.plan(Operation.CHARGE, "T1")
    assert plan.latency_ms == 15.0
    assert plan.before is None
    assert plan.after is not None
    assert plan.after.kind is FaultKind.RESET_AFTER_COMMIT
    assert plan.kinds == [FaultKind.LATENCY, FaultKind.RESET_AFTER_COMMIT]
    # The shadowed 5xx rule kept its one use for the next call.
    second = faults.plan(Operation.CHARGE, "T2")
    assert second.before is not None
    assert second.before.kind is FaultKind.HTTP_5XX_BEFORE_COMMIT


def test_before_and_after_kinds_are_told_apart() -> None:
    for spec, phase in [
        ("charge:token_expired", "before"),
        ("charge:http_5xx_before_commit", "before"),
        ("charge:hang_after_commit", "after"),
        ("charge:http_5xx_after_commit", "after"),
        ("charge:reset_after_commit", "after"),
        ("charge:malformed_json", "after"),
    ]:
        plan = injector(spec).plan(Operation.CHARGE, "T1")
        assert (plan.before is not None, plan.after is not None) == (phase == "before", phase == "after"), (
            spec
        )


def test_status_lag_applies_to_status_only_and_token_expired_never_to_login() -> None:
    faults = injector("*:status_lag:lag_s=5", "*:token_expired")
    assert faults.plan(Operation.STATUS, "T1").status_lag_s == 5.0
    assert faults.plan(Operation.CHARGE, "T1").status_lag_s == 0.0
    assert faults.plan(Operation.LOGIN, None).before is None
    assert faults.plan(Operation.BALANCE, None).before is not None


def test_replace_add_and_clear() -> None:
    faults = injector("charge:malformed_json")
    faults.add([FaultRule(kind=FaultKind.LATENCY, latency_ms=1)])
    assert [r["kind"] for r in faults.snapshot()] == ["malformed_json", "latency"]
    faults.replace([parse_fault_spec("credit:hang_after_commit")])
    assert faults.plan(Operation.CHARGE, "T1").after is None
    faults.clear()
    assert faults.plan(Operation.CREDIT, "T1").after is None
    assert faults.snapshot() == []
