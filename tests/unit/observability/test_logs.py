"""Events in, log lines out: what an SRE reads in the log stream, and what must never be in it."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from pydantic import SecretStr

from worker.clock import FakeClock
from worker.contracts import CommandType, Outcome, ResolvedBy
from worker.core.breaker import BreakerState
from worker.events import (
    ApiCallFinished,
    BreakerProbed,
    BreakerStateChanged,
    ClaimReadBack,
    CommandConsumed,
    DeadLettered,
    Event,
    FatalConfiguration,
    LoginFinished,
    ProbeResult,
    ResolutionFinished,
    ResultPublished,
    TransactionCommitted,
)
from worker.observability.logs import EventLogger, configure_logging, log_hook, mask_msisdn
from worker.settings import Settings, load_settings

from .samples import EVERY_EVENT, MSISDN, TRACE

API_KEY = "live-api-key-9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a392817"
CREDENTIALS = "Zm9vYmFyYmF6cXV4c2VjcmV0Y3JlZGVudGlhbHM="
SASL_PASSWORD = "kafka-pa55word"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


pytestmark = pytest.mark.usefixtures("restore_root_logger")


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "api_key": SecretStr(API_KEY),
        "api_credentials": SecretStr(CREDENTIALS),
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "PLAIN",
        "kafka_sasl_username": "worker",
        "kafka_sasl_password": SecretStr(SASL_PASSWORD),
        "log_format": "json",
        "log_level": "DEBUG",
    }
    values.update(overrides)
    return load_settings(**values)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def logged(event: Event, clock: FakeClock | None = None, **overrides: Any) -> list[dict[str, Any]]:
    stream = io.StringIO()
    configure_logging(settings(**overrides), stream=stream)
    EventLogger(clock=clock or FakeClock())(event)
    return json_lines(stream)


def test_a_result_is_one_json_line_with_the_fields_an_sre_searches_by() -> None:
    event = ResultPublished(
        TRACE, MSISDN, CommandType.CHARGE, Outcome.SUCCEEDED, ResolvedBy.RESPONSE, "PROCESSED", 2, 0.2504
    )
    (line,) = logged(event)
    assert line["level"] == "info"
    assert line["event"] == "result_published"
    assert line["trace_number"] == TRACE
    assert line["msisdn"] == "*******4567"
    assert line["outcome"] == "succeeded"
    assert line["code"] == "PROCESSED"
    assert line["attempts"] == 2
    assert line["end_to_end_s"] == 0.25
    assert line["ts"].endswith("Z")
    assert MSISDN not in json.dumps(line)


def test_log_hook_uses_the_installed_handler() -> None:
    stream = io.StringIO()
    configure_logging(settings(), stream=stream)
    log_hook(DeadLettered(partition=4, offset=99, reason="oversize"))
    (line,) = json_lines(stream)
    assert (line["event"], line["level"], line["partition"], line["offset"]) == (
        "dead_lettered",
        "warning",
        4,
        99,
    )


@pytest.mark.parametrize(
    ("event", "level"),
    [
        (
            ResultPublished(
                TRACE,
                MSISDN,
                CommandType.CREDIT,
                Outcome.UNRESOLVED,
                ResolvedBy.STATUS_INQUIRY,
                None,
                3,
                900.0,
            ),
            "warning",
        ),
        (
            ResultPublished(
                TRACE,
                MSISDN,
                CommandType.CREDIT,
                Outcome.DECLINED,
                ResolvedBy.RESPONSE,
                "NOT_ENOUGH_CREDITS",
                1,
                0.1,
            ),
            "info",
        ),
        (ResolutionFinished(TRACE, "unresolved", 5, 900.0), "warning"),
        (ResolutionFinished(TRACE, "succeeded", 1, 5.0), "info"),
        (DeadLettered(0, 1, "not_json"), "warning"),
        (BreakerStateChanged(BreakerState.OPEN, "failure ratio 0.7"), "warning"),
        (BreakerStateChanged(BreakerState.CLOSED, "probe succeeded"), "info"),
        (BreakerProbed(ProbeResult.REOPENED, 0.5), "info"),
        (BreakerProbed(ProbeResult.NO_ANSWER, 30.0), "warning"),
        (LoginFinished("login", False, "INVALID_CREDENTIAL"), "warning"),
        (FatalConfiguration("login refused: INVALID_CREDENTIAL"), "error"),
        (ApiCallFinished("charge", "PROCESSED", 0.1), "debug"),
        (ApiCallFinished("charge", "ambiguous", 10.0), "info"),
        (CommandConsumed(1), "debug"),
    ],
)
def test_levels_follow_what_needs_attention(event: Event, level: str) -> None:
    (line,) = logged(event)
    assert line["level"] == level


def test_every_event_logs_one_line_at_debug() -> None:
    stream = io.StringIO()
    configure_logging(settings(), stream=stream)
    logger = EventLogger(clock=FakeClock())
    for event in EVERY_EVENT:
        logger(event)
    lines = json_lines(stream)
    assert [line["event"] for line in lines] == [
        "api_call_finished",
        "login_finished",
        "retry_scheduled",
        "command_consumed",
        "command_rejected",
        "dead_lettered",
        "result_published",
        "resolution_started",
        "status_inquiry_answered",
        "resolution_finished",
        "journal_restored",
        "breaker_state_changed",
        "breaker_probed",
        "fatal_configuration",
        "partitions_changed",
        "partition_fenced",
        "review_decision_refused",
        "transaction_committed",
        "claim_read_back",
        "loop_lagged",
    ]
    assert all(MSISDN not in json.dumps(line) for line in lines)


def test_info_level_hides_per_call_debug_lines() -> None:
    lines = logged(ApiCallFinished("charge", "PROCESSED", 0.1), log_level="INFO")
    assert lines == []


def test_bunched_relogins_are_flagged_as_a_storm() -> None:
    stream = io.StringIO()
    configure_logging(settings(), stream=stream)
    clock = FakeClock()
    logger = EventLogger(clock=clock, relogin_storm_count=3, relogin_storm_window_s=60.0)
    for _ in range(3):
        logger(LoginFinished("relogin", True, "PROCESSED"))
        clock.advance(10.0)
    levels = [(line["level"], line["msg"]) for line in json_lines(stream)]
    assert levels[:2] == [("info", "relogin succeeded"), ("info", "relogin succeeded")]
    assert levels[2] == ("warning", "relogin storm: 3 relogins in 60 s")


def test_relogins_spread_out_are_not_a_storm() -> None:
    stream = io.StringIO()
    configure_logging(settings(log_level="WARNING"), stream=stream)
    clock = FakeClock()
    logger = EventLogger(clock=clock, relogin_storm_count=3, relogin_storm_window_s=60.0)
    for _ in range(6):
        logger(LoginFinished("relogin", True, "PROCESSED"))
        clock.advance(31.0)
    assert stream.getvalue() == ""


def test_text_format_on_a_terminal() -> None:
    stream = Tty()
    configure_logging(settings(log_format="auto"), stream=stream)
    EventLogger(clock=FakeClock())(
        ResultPublished(TRACE, MSISDN, CommandType.CHARGE, Outcome.FAILED, ResolvedBy.JOURNAL, None, 1, None)
    )
    line = stream.getvalue().strip()
    assert " INFO    result_published result published: failed" in line
    assert "msisdn=*******4567" in line
    assert "end_to_end_s" not in line  # None fields are left out of the text form
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_auto_format_is_json_when_not_a_terminal() -> None:
    stream = io.StringIO()
    configure_logging(settings(log_format="auto"), stream=stream)
    logging.getLogger("aiokafka").warning("coordinator dead")
    (line,) = json_lines(stream)
    assert (line["event"], line["logger"], line["msg"]) == ("log", "aiokafka", "coordinator dead")


def test_configure_twice_keeps_one_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(settings(), stream=first)
    configure_logging(settings(), stream=second)
    logging.getLogger("x").warning("once")
    assert first.getvalue() == ""
    assert len(json_lines(second)) == 1


@pytest.mark.parametrize(
    ("msisdn", "masked"),
    [("08131234567", "*******4567"), ("628123456789012", "***********9012"), ("1234", "****"), (None, None)],
)
def test_msisdn_keeps_only_its_last_four_digits(msisdn: str | None, masked: str | None) -> None:
    assert mask_msisdn(msisdn) == masked


def test_no_secret_reaches_the_log_whatever_is_logged() -> None:
    stream = io.StringIO()
    s = settings()
    configure_logging(s, stream=stream)
    log = logging.getLogger("worker.careless")
    log.info("settings: %r", s)
    log.info("settings: %s", s.model_dump())
    log.info("key %s", s.api_key)
    log.info("raw key %s and creds %s", API_KEY, CREDENTIALS)
    log.warning("sent headers APIKey: %s Credentials=%s", API_KEY, CREDENTIALS)
    log.warning('login body {"token": "esr5656hka2osxj73f9s8jcw53b1d3ertqf43k8xq2xsypvk"}')
    log.info("dsn", extra={"fields": {"password": "hunter2hunter2", "api_key": "abc", "msisdn": MSISDN}})
    try:
        raise RuntimeError(f"connect failed with sasl password {SASL_PASSWORD}")
    except RuntimeError:
        log.exception("kafka down")
    output = stream.getvalue()
    for secret in (
        API_KEY,
        CREDENTIALS,
        SASL_PASSWORD,
        "hunter2hunter2",
        "esr5656hka2osxj73f9s8jcw53b1d3ertqf43k8xq2xsypvk",
    ):
        assert secret not in output
    assert MSISDN not in output
    assert "[REDACTED]" in output
    assert "kafka down" in output
    assert "RuntimeError" in output


def test_a_text_seen_before_is_redacted_every_time_short_or_long() -> None:
    """Short texts' redactions are remembered (a result line's vocabulary repeats); every line still
    comes out redacted, and a long text (not remembered) the same way."""
    stream = io.StringIO()
    configure_logging(settings(), stream=stream)
    log = logging.getLogger("worker.careless")
    long_tail = "x" * 200
    for _ in range(3):
        log.warning("header APIKey: %s", API_KEY)
        log.info("call", extra={"fields": {"detail": f"Credentials={CREDENTIALS}", "outcome": "success"}})
        log.info("long %s %s", API_KEY, long_tail)
    lines = json_lines(stream)
    assert len(lines) == 9
    assert API_KEY not in stream.getvalue()
    assert CREDENTIALS not in stream.getvalue()
    assert [line["msg"] for line in lines[0::3]] == ["header APIKey: [REDACTED]"] * 3
    assert [line["detail"] for line in lines[1::3]] == ["Credentials=[REDACTED]"] * 3
    assert [line["outcome"] for line in lines[1::3]] == ["success"] * 3
    assert [line["msg"] for line in lines[2::3]] == [f"long [REDACTED] {long_tail}"] * 3


def test_redaction_leaves_ordinary_operational_text_alone() -> None:
    stream = io.StringIO()
    configure_logging(settings(), stream=stream)
    text = (
        "POST http://127.0.0.1:18080/eCashHost/NonTransactionManager/TransactionHistory answered "
        "OTP_VALIDATION_FAILED_OTP_ALREADY_VALIDATED for trace 2016041312050101, "
        "transaction 20151234560989110928"
    )
    logging.getLogger("worker.client").info(text)
    (line,) = json_lines(stream)
    assert line["msg"] == text


def test_the_configured_topic_and_group_names_stay_readable_however_long() -> None:
    # 40+ characters with a digit look like a token to the opaque-run rule; an SRE greps for these names.
    group = "payments-prod-2026-ecash-worker-blue-green"
    commands = "payments-prod-2026-ecash-worker-commands-v2"
    stream = io.StringIO()
    configure_logging(settings(group_id=group, commands_topic=commands), stream=stream)
    log = logging.getLogger("worker.runner")
    log.info("joined %s, assigned %s-3 and %s.3", group, commands, f"{group}.{commands}")
    log.info("session token esr5656hka2osxj73f9s8jcw53b1d3ertqf43k8xq2xsypvk, key %s", API_KEY)
    first, second = (line["msg"] for line in json_lines(stream))
    assert first == f"joined {group}, assigned {commands}-3 and {group}.{commands}.3"
    assert "esr5656hka2osxj73f9s8jcw53b1d3ertqf43k8xq2xsypvk" not in second
    assert API_KEY not in second
    assert second.count("[REDACTED]") == 2


def test_a_secret_configured_as_a_name_too_is_still_redacted() -> None:
    stream = io.StringIO()
    configure_logging(settings(group_id=API_KEY), stream=stream)
    logging.getLogger("worker.runner").info("group %s", API_KEY)
    (line,) = json_lines(stream)
    assert API_KEY not in line["msg"]


@pytest.mark.parametrize(("level", "shown"), [("INFO", False), ("WARNING", False), ("DEBUG", True)])
def test_httpx_s_line_per_request_is_shown_only_at_debug(level: str, shown: bool) -> None:
    """One INFO line per result: httpx's own "HTTP Request: POST ..." line per call would be a second."""
    stream = io.StringIO()
    configure_logging(settings(log_level=level), stream=stream)
    logging.getLogger("httpx").info('HTTP Request: POST http://h/eCashHost/Charge "HTTP/1.1 200 OK"')
    logging.getLogger("httpx").warning("a warning from httpx is always shown")
    messages = [line["msg"] for line in json_lines(stream)]
    assert ('HTTP Request: POST http://h/eCashHost/Charge "HTTP/1.1 200 OK"' in messages) is shown
    assert "a warning from httpx is always shown" in messages


def test_transactions_and_claim_read_backs_are_not_logged_at_info() -> None:
    """Many a second each: the metrics have them (ecash_transaction_*, ecash_claim_read_back_seconds)."""
    stream = io.StringIO()
    configure_logging(settings(log_level="INFO"), stream=stream)
    logger = EventLogger(clock=FakeClock())
    logger(TransactionCommitted(partition=3, records=14, waited_s=0.02, commit_s=0.012))
    logger(ClaimReadBack(seconds=0.045))
    assert json_lines(stream) == []


@pytest.mark.parametrize(("level", "shown"), [("INFO", False), ("DEBUG", True)])
def test_the_otlp_exporter_s_retry_warnings_are_shown_only_at_debug_its_errors_always(
    level: str, shown: bool
) -> None:
    stream = io.StringIO()
    configure_logging(settings(log_level=level), stream=stream)
    exporter = logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    exporter.warning("Transient error Connection refused encountered while exporting span batch, retrying")
    exporter.error("Failed to export span batch")
    messages = [line["msg"] for line in json_lines(stream)]
    assert any("retrying" in m for m in messages) is shown
    assert "Failed to export span batch" in messages
