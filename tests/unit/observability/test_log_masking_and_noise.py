"""Log records in, what reaches the handler out: MSISDNs masked at every level and from every logger,
aiokafka's broker-down errors collapsed into one warning per outage (no I/O: records and a fake clock)."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from worker.clock import FakeClock
from worker.observability.kafka_noise import KAFKA_NOISE_LOGGER_NAME, KafkaNoiseFilter
from worker.observability.logs import RedactionFilter, Redactor, configure_logging, mask_msisdns
from worker.settings import load_settings

MSISDN = "08131234567"
KEY_MSISDN = "628131234567"


def record(
    msg: str, *args: object, name: str = "aiokafka.consumer.fetcher", level: int = logging.DEBUG
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args or None, None)


def redact(rec: logging.LogRecord) -> logging.LogRecord:
    assert RedactionFilter(Redactor()).filter(rec)
    return rec


# --- MSISDN masking --------------------------------------------------------------------------------


def test_mask_msisdns_keeps_the_last_four_digits_of_every_9_to_15_digit_run() -> None:
    text = f"keys {MSISDN}, b'{KEY_MSISDN}' and +{KEY_MSISDN}; amount 100000, offset 12345678"
    assert mask_msisdns(text) == (
        "keys *******4567, b'********4567' and +********4567; amount 100000, offset 12345678"
    )
    assert mask_msisdns("1234567890123456") == "1234567890123456"  # 16 digits: not an MSISDN


def test_an_aiokafka_debug_record_with_an_msisdn_in_its_args_is_masked() -> None:
    key = MSISDN.encode()
    rec = redact(record("Appending record %r to partition %s, key=%r", b"{}", 3, key))
    assert rec.getMessage() == "Appending record b'{}' to partition 3, key=b'*******4567'"
    assert MSISDN not in rec.getMessage()


def test_msisdns_in_any_logger_message_traceback_and_string_fields_are_masked() -> None:
    try:
        raise ValueError(f"bad wallet {MSISDN}")
    except ValueError:
        exc_info = sys.exc_info()
    rec = logging.LogRecord("some.library", logging.ERROR, __file__, 1, "failed for %s", (MSISDN,), exc_info)
    rec.fields = {"detail": f"wallet {MSISDN}", "trace_number": "202601010000001", "msisdn": MSISDN}
    redact(rec)
    assert rec.getMessage() == "failed for *******4567"
    assert rec.exc_text is not None
    assert MSISDN not in rec.exc_text
    assert "*******4567" in rec.exc_text
    assert rec.fields == {  # type: ignore[attr-defined]
        "detail": "wallet *******4567",
        "trace_number": "202601010000001",  # an identifier to search for: kept
        "msisdn": "*******4567",
    }


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        for handler in handlers:
            handler.filters = [f for f in handler.filters if not isinstance(f, RedactionFilter)]
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)


def test_configure_logging_masks_aiokafka_debug_lines_on_every_root_handler(root_logging: None) -> None:
    other_stream = io.StringIO()
    other = logging.StreamHandler(other_stream)
    logging.getLogger().addHandler(other)
    ours = io.StringIO()
    configure_logging(load_settings(log_level="DEBUG", log_format="json"), stream=ours)
    logging.getLogger("aiokafka.producer.producer").debug("send key=%r", MSISDN.encode())
    assert MSISDN not in ours.getvalue()
    assert "*******4567" in ours.getvalue()
    assert MSISDN not in other_stream.getvalue()
    assert "*******4567" in other_stream.getvalue()


# --- broker-down noise -----------------------------------------------------------------------------


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, rec: logging.LogRecord) -> None:
        self.records.append(rec)


@pytest.fixture
def noise() -> Iterator[tuple[KafkaNoiseFilter, FakeClock, Collect]]:
    clock = FakeClock()
    summaries = logging.getLogger(KAFKA_NOISE_LOGGER_NAME + ".test")
    collect = Collect()
    summaries.addHandler(collect)
    summaries.propagate = False
    summaries.setLevel(logging.DEBUG)
    try:
        yield (
            KafkaNoiseFilter(logging.INFO, clock, grace_s=5, quiet_s=5, remind_s=60, logger=summaries),
            clock,
            collect,
        )
    finally:
        summaries.removeHandler(collect)


def connect_error() -> logging.LogRecord:
    return record(
        'Unable connect to "%s:%s": %s',
        "127.0.0.1",
        19092,
        "Connection refused",
        name="aiokafka",
        level=logging.ERROR,
    )


def coordinator_error() -> logging.LogRecord:
    return record(
        "Group Coordinator Request failed: %s",
        "[Error 15] CoordinatorNotAvailableError",
        name="aiokafka.consumer.group_coordinator",
        level=logging.ERROR,
    )


def discovered() -> logging.LogRecord:
    return record(
        "Discovered coordinator %s for group %s",
        1,
        "ecash",
        name="aiokafka.consumer.group_coordinator",
        level=logging.INFO,
    )


def test_the_start_up_coordinator_error_is_no_error_and_ends_in_one_info_line(
    noise: tuple[KafkaNoiseFilter, FakeClock, Collect],
) -> None:
    flt, clock, collect = noise
    error = coordinator_error()
    assert flt.filter(error) is False  # dropped at INFO
    assert error.levelno == logging.DEBUG
    clock.advance(0.3)
    assert flt.filter(discovered()) is True
    assert [(r.levelno, r.getMessage()) for r in collect.records] == [
        (logging.INFO, "kafka answered after 0.3 s of transient errors")
    ]
    assert not flt.in_outage


def test_an_outage_gives_one_warning_a_reminder_per_period_and_one_summary_with_its_duration(
    noise: tuple[KafkaNoiseFilter, FakeClock, Collect],
) -> None:
    flt, clock, collect = noise
    passed = []
    for _ in range(1500):  # 150 s of errors, ten a second
        passed.append(flt.filter(connect_error()))
        passed.append(flt.filter(coordinator_error()))
        clock.advance(0.1)
    assert not any(passed)
    assert flt.filter(discovered()) is True
    lines = [(r.levelno, r.getMessage()) for r in collect.records]
    assert lines == [
        (
            logging.WARNING,
            'kafka unreachable for 5.0 s: Unable connect to "127.0.0.1:19092": Connection refused',
        ),
        (logging.WARNING, "kafka still unreachable after 65.1 s"),
        (logging.WARNING, "kafka still unreachable after 125.2 s"),
        (logging.WARNING, "kafka reachable again after an outage of 150.0 s"),
    ]
    summary = collect.records[-1]
    assert summary.fields["suppressed_lines"] == 3000  # type: ignore[attr-defined]
    assert summary.fields["outage_s"] == 150.0  # type: ignore[attr-defined]
    assert all(r.levelno < logging.ERROR for r in collect.records)


def test_an_outage_ends_after_a_quiet_period_when_no_recovery_line_comes(
    noise: tuple[KafkaNoiseFilter, FakeClock, Collect],
) -> None:
    flt, clock, collect = noise
    for _ in range(80):
        flt.filter(connect_error())
        clock.advance(0.1)
    clock.advance(10)
    assert flt.filter(record("something else", name="worker.pipeline", level=logging.INFO)) is True
    assert [r.getMessage() for r in collect.records] == [
        'kafka unreachable for 5.0 s: Unable connect to "127.0.0.1:19092": Connection refused',
        "kafka reachable again after an outage of 7.9 s",
    ]


@pytest.mark.parametrize(
    ("name", "level", "msg"),
    [  # aiokafka 0.14's format strings, as seen while a real broker was down
        (
            "aiokafka.consumer.group_coordinator",
            logging.ERROR,
            "Error sending %s to node %s [%s] -- marking coordinator dead",
        ),
        (
            "aiokafka.consumer.group_coordinator",
            logging.WARNING,
            "Marking the coordinator dead (node %s)for group %s.",
        ),
        (
            "aiokafka.consumer.group_coordinator",
            logging.WARNING,
            "Heartbeat failed for group %s: coordinator (node %s) is either not started or not valid",
        ),
        ("aiokafka.consumer.fetcher", logging.ERROR, "Failed fetch offsets from %s: %s"),
        ("aiokafka.producer.sender", logging.ERROR, "FindCoordinator Request failed: %s"),
        (
            "aiokafka.producer.sender",
            logging.WARNING,
            "Got error produce response on topic-partition %s, retrying. Error: %s",
        ),
        ("aiokafka.client", logging.WARNING, "Unable to request metadata from node with id %s: %r"),
    ],
)
def test_every_known_broker_down_line_is_demoted(name: str, level: int, msg: str) -> None:
    rec = logging.LogRecord(name, level, __file__, 1, msg, None, None)
    assert KafkaNoiseFilter(logging.INFO, FakeClock()).filter(rec) is False
    assert rec.levelno == logging.DEBUG


def test_a_rebalance_warning_is_not_broker_noise() -> None:
    rec = record(
        "Heartbeat failed for group %s because it is rebalancing",
        "g",
        name="aiokafka.consumer.group_coordinator",
        level=logging.WARNING,
    )
    assert KafkaNoiseFilter(logging.INFO, FakeClock()).filter(rec) is True
    assert rec.levelno == logging.WARNING


def test_at_debug_the_demoted_lines_are_kept_and_other_records_pass_untouched() -> None:
    flt = KafkaNoiseFilter(logging.DEBUG, FakeClock())
    error = connect_error()
    assert flt.filter(error) is True
    assert error.levelname == "DEBUG"
    unrelated = record(
        "Heartbeat failed: %r", "boom", name="aiokafka.consumer.group_coordinator", level=logging.ERROR
    )
    assert KafkaNoiseFilter(logging.INFO, FakeClock()).filter(unrelated) is True
    assert unrelated.levelno == logging.ERROR  # not a known transient: left as aiokafka said it


def test_configure_logging_writes_no_error_for_a_transient_aiokafka_error(root_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(load_settings(log_level="INFO", log_format="json"), stream=stream)
    logging.getLogger("aiokafka.consumer.group_coordinator").error(
        "Group Coordinator Request failed: %s", "[Error 15] CoordinatorNotAvailableError"
    )
    logging.getLogger("aiokafka.consumer.group_coordinator").info(
        "Discovered coordinator %s for group %s", 1, "g"
    )
    levels = [json.loads(line)["level"] for line in stream.getvalue().splitlines()]
    assert "error" not in levels
