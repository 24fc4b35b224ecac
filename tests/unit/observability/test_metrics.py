"""Events in, Prometheus samples out: what an SRE reads on /metrics."""

from __future__ import annotations

from typing import get_args, get_type_hints

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from worker import __version__
from worker.contracts import CommandType, Outcome, ResolvedBy
from worker.core.breaker import BreakerState
from worker.events import (
    ApiCallFinished,
    BreakerStateChanged,
    ClaimReadBack,
    CommandConsumed,
    DeadLettered,
    DeadLetterLabel,
    Event,
    FatalConfiguration,
    JournalRestored,
    LoginFinished,
    PartitionsChanged,
    PipelineSnapshot,
    ResolutionFinished,
    ResultPublished,
    RetryScheduled,
    StatusInquiryAnswered,
    TransactionCommitted,
)
from worker.observability import metrics as metrics_module
from worker.observability.metrics import (
    COMMAND_TYPES,
    OPERATIONS,
    OUTCOMES,
    RESOLVED_BY,
    Metrics,
    code_label,
)
from worker.pipeline import intake, strict_json

from .samples import EVERY_EVENT, MSISDN, TRACE, busy_snapshot


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def exposition(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_the_samples_cover_every_event_type() -> None:
    assert {type(e) for e in EVERY_EVENT} == set(get_args(Event))


def test_every_event_is_accepted() -> None:
    metrics = Metrics()
    for event in EVERY_EVENT:
        metrics.hook(event)
    assert value(metrics, "ecash_commands_consumed_total") == 1


def test_result_counts_by_type_outcome_and_resolved_by_and_feeds_end_to_end() -> None:
    metrics = Metrics()
    result = ResultPublished(
        TRACE, MSISDN, CommandType.CREDIT, Outcome.DECLINED, ResolvedBy.RESPONSE, "NOT_ENOUGH_CREDITS", 1, 0.3
    )
    metrics.hook(result)
    metrics.hook(result)
    labels = {"type": "credit", "outcome": "declined", "resolved_by": "response"}
    assert value(metrics, "ecash_results_total", **labels) == 2
    assert value(metrics, "ecash_end_to_end_duration_seconds_count", outcome="declined") == 2
    assert value(metrics, "ecash_end_to_end_duration_seconds_bucket", outcome="declined", le="0.5") == 2
    assert value(metrics, "ecash_end_to_end_duration_seconds_bucket", outcome="declined", le="0.25") == 0


def test_a_result_without_a_kafka_timestamp_is_counted_but_not_timed() -> None:
    metrics = Metrics()
    metrics.hook(
        ResultPublished(TRACE, None, "unknown", Outcome.REJECTED, ResolvedBy.RESPONSE, None, 0, None)
    )
    assert (
        value(metrics, "ecash_results_total", type="unknown", outcome="rejected", resolved_by="response") == 1
    )
    assert value(metrics, "ecash_end_to_end_duration_seconds_count", outcome="rejected") == 0


def test_every_type_outcome_and_resolved_by_is_exported_at_zero_before_any_event() -> None:
    metrics = Metrics()
    for t in COMMAND_TYPES:
        for o in OUTCOMES:
            for r in RESOLVED_BY:
                assert value(metrics, "ecash_results_total", type=t, outcome=o, resolved_by=r) == 0
    assert {"succeeded", "declined", "failed", "rejected", "unresolved"} <= set(OUTCOMES)


@pytest.mark.parametrize("code", ["PROCESSED", "TOKEN_EXPIRED", "not_sent", "ambiguous"])
def test_common_api_codes_are_exported_at_zero_for_every_operation(code: str) -> None:
    metrics = Metrics()
    for op in OPERATIONS:
        assert value(metrics, "ecash_api_calls_total", operation=op, code=code) == 0
        assert value(metrics, "ecash_api_call_duration_seconds_count", operation=op) == 0


def test_api_calls_count_by_operation_and_code_and_time_the_exchange() -> None:
    metrics = Metrics()
    metrics.hook(ApiCallFinished("status", "PAYMENT_NOT_FOUND", 0.04))
    metrics.hook(ApiCallFinished("charge", "ambiguous", 10.0, detail="read timeout"))
    assert value(metrics, "ecash_api_calls_total", operation="status", code="PAYMENT_NOT_FOUND") == 1
    assert value(metrics, "ecash_api_calls_total", operation="charge", code="ambiguous") == 1
    assert value(metrics, "ecash_api_call_duration_seconds_bucket", operation="status", le="0.05") == 1
    assert value(metrics, "ecash_api_call_duration_seconds_sum", operation="charge") == 10.0


@pytest.mark.parametrize(
    ("code", "label"),
    [
        ("PROCESSED", "PROCESSED"),
        ("UNSUPPORTED_PROVIDER", "UNSUPPORTED PROVIDER"),
        ("TO_INVALID_CHANNEL", "TO_INVALID_CHANEL"),
        ("SOME_NEW_CODE", "other"),
        ("not_sent", "not_sent"),
        ("ambiguous", "ambiguous"),
        ("processed", "PROCESSED"),
        ("<html>502 Bad Gateway</html>", "other"),
        ("", "other"),
        ("A" * 65, "other"),
        ("CODE-1", "other"),
    ],
)
def test_code_label_keeps_catalogue_codes_and_maps_the_rest_to_other(code: str, label: str) -> None:
    assert code_label(code) == label


def test_garbage_from_the_server_does_not_grow_the_series_count() -> None:
    metrics = Metrics()
    before = exposition(metrics).count("ecash_api_calls_total{")
    for i in range(500):
        metrics.hook(ApiCallFinished("charge", f"error {i}: <html>", 0.1))
        metrics.hook(ApiCallFinished(f"op{i}", "PROCESSED", 0.1))
    after = exposition(metrics).count("ecash_api_calls_total{")
    assert after - before == 2  # {charge, other} and {other, PROCESSED}
    assert value(metrics, "ecash_api_calls_total", operation="charge", code="other") == 500
    assert value(metrics, "ecash_api_calls_total", operation="other", code="PROCESSED") == 500


def test_msisdn_and_trace_number_never_become_labels() -> None:
    metrics = Metrics()
    for event in EVERY_EVENT:
        metrics.hook(event)
    text = exposition(metrics)
    assert MSISDN not in text
    assert TRACE not in text


def test_unknown_vocabulary_is_bounded_to_other() -> None:
    # mypy refuses these values (the label sets are Literals and enums): the hook still bounds them at
    # run time, for a value built where types are not checked.
    metrics = Metrics()
    metrics.hook(ResultPublished(TRACE, MSISDN, "refund", "maybe", "oracle", None, 1, 1.0))  # type: ignore[arg-type]
    metrics.hook(DeadLettered(0, 1, "Weird Reason With Spaces"))  # type: ignore[arg-type]
    metrics.hook(StatusInquiryAnswered(TRACE, "perhaps", None))  # type: ignore[arg-type]
    assert value(metrics, "ecash_results_total", type="other", outcome="other", resolved_by="other") == 1
    assert value(metrics, "ecash_dead_letters_total", reason="other") == 1
    assert value(metrics, "ecash_status_inquiries_total", answer="other") == 1


def test_resolution_retry_login_and_inquiry_counters() -> None:
    metrics = Metrics()
    metrics.hook(RetryScheduled("credit", "session_expired", 1, 0.0))
    metrics.hook(LoginFinished("relogin", False, "INVALID_CREDENTIAL"))
    metrics.hook(StatusInquiryAnswered(TRACE, "not_found", "PAYMENT_NOT_FOUND"))
    metrics.hook(ResolutionFinished(TRACE, "unresolved", 5, 900.0))
    assert value(metrics, "ecash_retries_total", operation="credit", reason="session_expired") == 1
    assert value(metrics, "ecash_logins_total", kind="relogin", result="failed") == 1
    assert value(metrics, "ecash_logins_total", kind="login", result="ok") == 0
    assert value(metrics, "ecash_status_inquiries_total", answer="not_found") == 1
    assert value(metrics, "ecash_resolutions_finished_total", outcome="unresolved") == 1
    assert value(metrics, "ecash_resolution_duration_seconds_bucket", outcome="unresolved", le="900.0") == 1


def test_journal_restore_breaker_and_partition_changes() -> None:
    metrics = Metrics()
    metrics.hook(JournalRestored(partition=2, records=300, duration_s=1.5))
    metrics.hook(BreakerStateChanged(BreakerState.OPEN, "failure ratio"))
    metrics.hook(BreakerStateChanged(BreakerState.HALF_OPEN, "probe"))
    metrics.hook(PartitionsChanged(assigned=(1, 2, 3), revoked=()))
    assert value(metrics, "ecash_journal_records_restored_total") == 300
    assert value(metrics, "ecash_journal_restore_duration_seconds_count") == 1
    assert value(metrics, "ecash_breaker_transitions_total", state="open") == 1
    assert value(metrics, "ecash_breaker_transitions_total", state="half_open") == 1
    assert value(metrics, "ecash_partition_changes_total", change="assigned") == 3
    assert value(metrics, "ecash_partition_changes_total", change="revoked") == 0


def test_snapshot_gauges_are_read_at_scrape_time() -> None:
    metrics = Metrics()
    current = {"snap": busy_snapshot()}
    metrics.set_snapshot_source(lambda: current["snap"])
    assert value(metrics, "ecash_commands_in_flight") == 7
    assert value(metrics, "ecash_commands_waiting") == 3
    assert value(metrics, "ecash_commands_resolving") == 2
    assert value(metrics, "ecash_assigned_partitions") == 2
    assert value(metrics, "ecash_consumer_lag_messages", partition="0") == 12
    assert value(metrics, "ecash_consumer_lag_seconds", partition="0") == 4.5
    assert value(metrics, "ecash_last_processed_timestamp_seconds") == 1_767_225_600.0
    assert value(metrics, "ecash_logged_in") == 1
    assert value(metrics, "ecash_consuming") == 1
    current["snap"] = PipelineSnapshot(in_flight=1, breaker_state="half_open")
    assert value(metrics, "ecash_commands_in_flight") == 1
    assert value(metrics, "ecash_consumer_lag_messages", partition="0") is None  # partition revoked
    assert value(metrics, "ecash_logged_in") == 0


@pytest.mark.parametrize("state", ["closed", "open", "half_open"])
def test_breaker_state_is_one_hot(state: str) -> None:
    metrics = Metrics()
    metrics.set_snapshot_source(lambda: PipelineSnapshot(breaker_state=state))
    states = {s: value(metrics, "ecash_breaker_state", state=s) for s in ("closed", "open", "half_open")}
    assert states == {s: (1.0 if s == state else 0.0) for s in states}


def test_fatal_configuration_from_the_event_without_a_snapshot_source() -> None:
    metrics = Metrics()
    assert value(metrics, "ecash_fatal_configuration") == 0
    metrics.hook(FatalConfiguration("login refused: INVALID_CREDENTIAL"))
    assert value(metrics, "ecash_fatal_configuration") == 1
    assert metrics.fatal_reason == "login refused: INVALID_CREDENTIAL"


def test_with_a_snapshot_source_the_snapshot_says_whether_fatal_still_stands() -> None:
    metrics = Metrics()
    current = {"snap": PipelineSnapshot(fatal="login refused: INVALID_CREDENTIAL")}
    metrics.set_snapshot_source(lambda: current["snap"])
    metrics.hook(FatalConfiguration("login refused: INVALID_CREDENTIAL"))
    assert value(metrics, "ecash_fatal_configuration") == 1
    current["snap"] = PipelineSnapshot(fatal=None)  # credentials fixed, consumption resumed
    assert value(metrics, "ecash_fatal_configuration") == 0


def test_a_failing_snapshot_source_does_not_break_the_scrape() -> None:
    metrics = Metrics()
    metrics.hook(CommandConsumed(partition=0))

    def broken() -> PipelineSnapshot:
        raise RuntimeError("pipeline mid-rebalance")

    metrics.set_snapshot_source(broken)
    text = exposition(metrics)
    assert "ecash_commands_consumed_total 1.0" in text
    assert "ecash_fatal_configuration 0.0" in text
    assert "ecash_commands_in_flight" not in text
    metrics.hook(FatalConfiguration("APIKey refused"))
    assert "ecash_fatal_configuration 1.0" in exposition(metrics)


def test_build_info_names_the_version() -> None:
    metrics = Metrics()
    families = text_string_to_metric_families(exposition(metrics))
    (sample,) = [s for f in families for s in f.samples if s.name == "ecash_build_info"]
    assert sample.value == 1
    assert sample.labels["version"] == __version__
    assert sample.labels["python_version"].count(".") == 2


def test_process_and_platform_collectors_are_registered() -> None:
    names = {s.name for family in Metrics().registry.collect() for s in family.samples}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"} <= names


def test_naming_follows_prometheus_conventions() -> None:
    metrics = Metrics()
    metrics.set_snapshot_source(busy_snapshot)
    for event in EVERY_EVENT:
        metrics.hook(event)
    families = [f for f in metrics.registry.collect() if f.name.startswith("ecash_")]
    assert len(families) >= 25
    for family in families:
        assert family.type in {"counter", "gauge", "histogram", "info"}, family.name  # never a summary
        assert not family.name.startswith("ecash_ecash_")
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
        for sample in family.samples:
            if family.type == "counter":
                assert sample.name.endswith("_total"), sample.name
            assert not any(unit in sample.name for unit in ("_ms", "_milliseconds", "_minutes"))
    assert not [s for f in families for s in f.samples if s.name.endswith("_created")]


def test_every_metric_family_has_help_text_and_two_instances_do_not_collide() -> None:
    first, second = Metrics(), Metrics()
    first.hook(CommandConsumed(partition=0))
    assert second.registry.get_sample_value("ecash_commands_consumed_total") == 0
    for family in first.registry.collect():
        assert family.documentation, family.name


# The label values pre-created before the label sets became types (issue 15): deriving them from the
# Literals and enums changed no series.
PRE_CREATED_BEFORE = {
    "TRANSPORT_CLASSES": {"not_sent", "ambiguous"},
    "COMMAND_TYPES": {"charge", "credit", "unknown"},
    "BREAKER_STATES": {"closed", "open", "half_open"},
    "LOGIN_KINDS": {"login", "relogin"},
    "LOGIN_RESULTS": {"ok", "failed"},
    "INQUIRY_ANSWERS": {"processed", "uncorroborated", "not_found", "other", "not_sent", "ambiguous"},
    "RESOLUTION_OUTCOMES": {"succeeded", "failed", "unresolved", "resubmit"},
    "RETRY_REASONS": {
        "not_sent",
        "session_expired",
        "read_retry",
        "resubmit",
        "api_unavailable",
        "lease_expired",
    },
    "REJECT_REASONS": {"invalid", "trace_reused", "key_not_msisdn"},
    "DEAD_LETTER_REASONS": {
        "not_json",
        "not_a_command",
        "oversize",
        "no_trace_number",
        "too_deep",
        "number_too_large",
        "duplicate_keys",
        "invalid_review_decision",
        "review_decision_not_applicable",
        "review_decision_refused",
        "review_decision_wrong_topic",
        "not_a_review_decision",
        "internal_error",
    },
    "PARTITION_CHANGES": {"assigned", "revoked", "lost"},
    "PROBE_RESULTS": {"closed", "reopened", "fatal", "no_answer"},
}


@pytest.mark.parametrize("name", sorted(PRE_CREATED_BEFORE))
def test_label_sets_derived_from_types_pre_create_the_same_values(name: str) -> None:
    derived = getattr(metrics_module, name)
    assert len(derived) == len(set(derived))
    assert set(derived) == PRE_CREATED_BEFORE[name]


def test_every_dead_letter_label_the_parser_gives_is_a_known_label() -> None:
    assert set(intake.DEAD_LETTER_REASONS) <= set(get_args(DeadLetterLabel))
    unreadable = set(get_args(get_type_hints(strict_json.Unreadable)["reason"]))
    assert unreadable == {"not_json", "too_deep", "number_too_large"}
    assert unreadable <= set(get_args(DeadLetterLabel))


def test_transactions_and_claim_read_backs_are_histograms_an_sre_can_take_quantiles_of() -> None:
    metrics = Metrics()
    metrics.hook(TransactionCommitted(partition=3, records=14, waited_s=0.02, commit_s=0.012))
    metrics.hook(TransactionCommitted(partition=4, records=6, waited_s=0.001, commit_s=0.3))
    metrics.hook(ClaimReadBack(seconds=0.045))
    assert value(metrics, "ecash_transaction_records_total") == 20
    assert value(metrics, "ecash_transaction_duration_seconds_count") == 2
    assert value(metrics, "ecash_transaction_duration_seconds_bucket", le="0.02") == 1  # 12 ms, not 300
    assert value(metrics, "ecash_transaction_wait_seconds_bucket", le="0.002") == 1
    assert value(metrics, "ecash_claim_read_back_seconds_bucket", le="0.05") == 1
    assert value(metrics, "ecash_claim_read_back_seconds_bucket", le="0.02") == 0
