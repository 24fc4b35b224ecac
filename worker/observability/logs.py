"""Structured logs: one JSON object per line for machines, one readable line per event on a terminal.

``configure_logging(settings)`` installs the one handler on the root logger; ``log_hook(event)`` (or an
``EventLogger`` with an injected clock) turns domain events into log lines. Every record passes through a
``RedactionFilter``: secrets named in the settings, ``key=value`` pairs whose key says secret (APIKey,
Credentials, token, password...) and long opaque strings (API keys, session tokens, encrypted credentials)
are replaced by ``[REDACTED]``, and MSISDNs keep only their last four digits: the ``msisdn`` field, and
any run of 9 to 15 digits in any logger's message (aiokafka's DEBUG lines print record keys, which are
MSISDNs), its arguments, its traceback and its other string fields (``trace_number`` is kept as it is).
The filter goes on every handler of the root logger, with ``KafkaNoiseFilter`` (worker/observability/
kafka_noise.py) in front of it: aiokafka's broker-down errors become one warning per outage.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from worker.clock import Clock, SystemClock
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
    LoopLagged,
    PartitionFenced,
    ResolutionFinished,
    ResultPublished,
    ReviewDecisionRefused,
    TransactionCommitted,
)
from worker.observability.kafka_noise import KafkaNoiseFilter
from worker.settings import LogFormat, Settings
from worker.tracing import current_ids

__all__ = [
    "EVENT_LOGGER_NAME",
    "REDACTED",
    "EventLogger",
    "JsonFormatter",
    "RedactionFilter",
    "Redactor",
    "TextFormatter",
    "choose_format",
    "configure_logging",
    "event_name",
    "log_hook",
    "mask_msisdn",
    "mask_msisdns",
    "masked_value",
]

EVENT_LOGGER_NAME = "worker.events"
REDACTED = "[REDACTED]"
_MIN_SECRET_LEN = 6
_SECRET_WORDS = r"api[_-]?key|credentials?|password|passwd|secret|token|authorization"  # noqa: S105 - names, no value
# A key starts where a run of [\w-] starts, not at every word boundary inside one: from each boundary the
# lazy [\w-]*? scans to the run's end, so a long run of "a1-a1-..." cost time quadratic in its length
# (24,000 characters: 14 s per log line). Each run is now scanned once; what is redacted is the same.
# A value already redacted (a configured secret, replaced first) is left as it is: "APIKey: [REDACTED]"
# used to come out "APIKey: [REDACTED]]".
_KEY_VALUE = re.compile(
    rf"(?i)(?<![\w-])([\w-]*?(?:{_SECRET_WORDS}))([\"']?\s*[:=]\s*[\"']?)(?!\[REDACTED\])([^\s\"'&,;)}}\]]+)"
)
# API keys (56), session tokens (48): long opaque runs with a digit. Trace numbers are <= 32 characters;
# response codes (OTP_VALIDATION_FAILED_OTP_ALREADY_VALIDATED) and URL paths have no digit or break at "/".
_OPAQUE = re.compile(r"(?<![A-Za-z0-9+=_-])[A-Za-z0-9+=_-]{40,}(?![A-Za-z0-9+=_-])")
_NUMBERED = re.compile(r"(.+)[-_]\d{1,6}")
_SECRET_FIELD = re.compile(rf"(?i)^[\w-]*(?:{_SECRET_WORDS})$")
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
# MSISDN-shaped: 9 to 15 digits not inside a longer run of digits (08131234567, 628131234567, +628...).
_MSISDN_RUN = re.compile(r"(?<!\d)\d{9,15}(?!\d)")
_UNMASKED_FIELDS = frozenset({"trace_number"})  # an identifier an SRE searches for, never an MSISDN
_REMEMBERED_TEXTS = 4096  # short texts whose redaction a filter remembers (a log line's vocabulary)
_REMEMBERED_CHARS = 128


def masked_value(match: re.Match[str]) -> str:
    """A secret-looking ``key=value`` match with its value replaced: the key and separator stay."""
    return match.group(1) + match.group(2) + REDACTED


def mask_msisdn(msisdn: str | None) -> str | None:
    """``08131234567`` -> ``*******4567``: enough to match a complaint, not enough to identify a wallet."""
    if msisdn is None:
        return None
    keep = 4 if len(msisdn) > 4 else 0
    return "*" * (len(msisdn) - keep) + msisdn[len(msisdn) - keep :]


def mask_msisdns(text: str) -> str:
    """Every MSISDN-shaped run of digits in ``text`` masked as ``mask_msisdn`` masks one."""
    return _MSISDN_RUN.sub(lambda m: "*" * (len(m.group(0)) - 4) + m.group(0)[-4:], text)


def event_name(event: Event) -> str:
    """``ResultPublished`` -> ``result_published``."""
    return _CAMEL.sub("_", type(event).__name__).lower()


class Redactor:
    """Replaces secrets in text: known secret values, secret-looking key=value pairs, long opaque runs.

    ``public`` are names the operator configured (topics, the group, the instance id): a long run with a
    digit inside one of them (``payments-prod-2026-ecash-worker-blue-green``) is what an SRE searches the
    log for, not a secret, and is left alone."""

    def __init__(self, secrets: Iterable[str] = (), *, public: Iterable[str] = ()) -> None:
        values = {s for s in secrets if len(s) >= _MIN_SECRET_LEN}
        self._values = sorted(values, key=len, reverse=True)
        self._public = frozenset(run for name in public for run in _OPAQUE.findall(name)) - values

    def __call__(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, REDACTED)
        text = _KEY_VALUE.sub(masked_value, text)
        return mask_msisdns(_OPAQUE.sub(self._redact_if_digit, text))

    def _redact_if_digit(self, match: re.Match[str]) -> str:
        run = match.group(0)
        if not any(ch.isdigit() for ch in run) or run in self._public:
            return run
        named = _NUMBERED.fullmatch(run)  # a configured name with a partition: ecash-...-commands-3
        return run if named is not None and named.group(1) in self._public else REDACTED

    @classmethod
    def from_settings(cls, settings: Settings) -> Redactor:
        secrets = [
            settings.api_key,
            settings.api_credentials,
            settings.api_password,
            settings.kafka_sasl_password,
        ]
        public = [
            settings.group_id,
            settings.kafka_group_instance_id or "",
            settings.kafka_sasl_username or "",
            *settings.topic_names(),
        ]
        return cls((s.get_secret_value() for s in secrets if s is not None), public=public)


class RedactionFilter(logging.Filter):
    """Defence in depth: renders the message, redacts it, its structured fields and any traceback."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redact_long = redactor
        # A result line's message and fields come from a small vocabulary ("result published: success",
        # "charge", "PROCESSED"): short texts are redacted once and remembered. The redactor is a pure
        # function of the text, so the line is the same; it took ~45% of a result line's cost.
        self._redact_short = functools.lru_cache(maxsize=_REMEMBERED_TEXTS)(redactor)

    def _redact(self, text: str) -> str:
        return self._redact_short(text) if len(text) <= _REMEMBERED_CHARS else self._redact_long(text)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "redacted_by", None) is self:  # one record, several handlers: redacted once
            return True  # (again, "APIKey: [REDACTED]" would become "APIKey: [REDACTED]]")
        record.redacted_by = self
        record.msg = self._redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        extra = getattr(record, "fields", None)
        if isinstance(extra, Mapping):
            record.fields = {key: self._field(key, value) for key, value in extra.items()}
        return True

    def _field(self, key: str, value: object) -> object:
        if _secret_field(key):
            return REDACTED
        if key == "msisdn" and isinstance(value, str):
            return mask_msisdn(value) if not value.startswith("*") else value
        if key in _UNMASKED_FIELDS and isinstance(value, str):
            return value
        if isinstance(value, str):
            return self._redact(value)
        return value


@functools.lru_cache(maxsize=1024)
def _secret_field(key: str) -> bool:
    return _SECRET_FIELD.match(key) is not None


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _record_fields(record: logging.LogRecord) -> dict[str, Any]:
    extra = getattr(record, "fields", None)
    return dict(extra) if isinstance(extra, Mapping) else {}


class JsonFormatter(logging.Formatter):
    """``{"ts": ..., "level": "info", "event": "result_published", ..., "msg": ..., "logger": ...}``"""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "event": getattr(record, "event_name", "log"),
        }
        line.update(_record_fields(record))
        line.update(current_ids())  # after the redaction filter: a hex id is not an MSISDN
        line["msg"] = record.getMessage()
        line["logger"] = record.name
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """``2026-01-01T00:00:00.000Z INFO    result_published succeeded  trace_number=T1 msisdn=*******4567``"""

    def format(self, record: logging.LogRecord) -> str:
        name = getattr(record, "event_name", record.name)
        pairs = " ".join(f"{k}={v}" for k, v in _record_fields(record).items() if v is not None)
        text = f"{_timestamp(record)} {record.levelname:<7} {name} {record.getMessage()}"
        if pairs:
            text += f"  {pairs}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text += "\n" + record.exc_text
        return text


def choose_format(setting: LogFormat, stream: TextIO) -> LogFormat:
    if setting is not LogFormat.AUTO:
        return setting
    isatty = getattr(stream, "isatty", None)
    return LogFormat.TEXT if callable(isatty) and isatty() else LogFormat.JSON


def configure_logging(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """Install the worker's one log handler on the root logger (replacing any earlier one of ours)."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    fmt = choose_format(settings.log_format, stream)
    handler.setFormatter(TextFormatter() if fmt is LogFormat.TEXT else JsonFormatter())
    level = logging.getLevelName(settings.log_level)
    handler.addFilter(KafkaNoiseFilter(level if isinstance(level, int) else logging.INFO))
    redaction = RedactionFilter(Redactor.from_settings(settings))
    handler.addFilter(redaction)
    handler.set_name("ecash-worker")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "ecash-worker"]:
        root.removeHandler(old)
    root.addHandler(handler)
    for other in root.handlers:  # any handler someone else installed: MSISDNs and secrets masked there too
        for stale in [f for f in other.filters if isinstance(f, RedactionFilter) and f is not redaction]:
            other.removeFilter(stale)  # an earlier configuration's: its secrets and names, not these
        other.addFilter(redaction)
    root.setLevel(settings.log_level)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # httpx says "HTTP Request: POST ..." at INFO for every call: a second line per command, saying less
    # than the worker's own events (and a few percent of its CPU, docs/performance.md). Shown at DEBUG.
    logging.getLogger("httpx").setLevel(logging.NOTSET if settings.log_level == "DEBUG" else logging.WARNING)
    # The OTLP exporter warns at every retry while the tracing backend is away (about one a second); its
    # error for a dropped batch stays. Tracing never stops the worker (docs/runbook.md, tracing backend down).
    logging.getLogger("opentelemetry.exporter.otlp").setLevel(
        logging.NOTSET if settings.log_level == "DEBUG" else logging.ERROR
    )
    logging.captureWarnings(True)
    return handler


class EventLogger:
    """Turns events into log lines. Relogins bunched within a window are flagged as a storm (WARNING)."""

    def __init__(
        self,
        clock: Clock | None = None,
        logger: logging.Logger | None = None,
        relogin_storm_count: int = 3,
        relogin_storm_window_s: float = 60.0,
    ) -> None:
        self._clock = clock or SystemClock()
        self._logger = logger or logging.getLogger(EVENT_LOGGER_NAME)
        self._storm_count = relogin_storm_count
        self._storm_window_s = relogin_storm_window_s
        self._relogins_at: deque[float] = deque()

    def __call__(self, event: Event) -> None:
        level, message = self._describe(event)
        storm = isinstance(event, LoginFinished) and event.kind == "relogin" and self._storm()
        if storm:
            level = max(level, logging.WARNING)
            message = f"relogin storm: {len(self._relogins_at)} relogins in {self._storm_window_s:g} s"
        if not self._logger.isEnabledFor(level):
            return
        fields = _event_fields(event)
        if storm:
            fields["relogins_in_window"] = len(self._relogins_at)
        self._logger.log(level, message, extra={"event_name": event_name(event), "fields": fields})

    def _storm(self) -> bool:
        now = self._clock.monotonic_s()
        self._relogins_at.append(now)
        while self._relogins_at and now - self._relogins_at[0] > self._storm_window_s:
            self._relogins_at.popleft()
        return len(self._relogins_at) >= self._storm_count

    @staticmethod
    def _describe(event: Event) -> tuple[int, str]:  # noqa: C901 - one flat case per event type
        match event:
            case FatalConfiguration():
                return logging.ERROR, f"stopped on a configuration error: {event.reason}"
            case DeadLettered():
                return logging.WARNING, f"message dead-lettered: {event.reason}"
            case ResultPublished() if event.outcome == "unresolved":
                return logging.WARNING, "result unresolved: handed to manual review"
            case ResolutionFinished() if event.outcome == "unresolved":
                return logging.WARNING, "resolution deadline passed: outcome unknown"
            case BreakerStateChanged() if event.state == "open":
                return logging.WARNING, f"circuit breaker open: {event.reason}"
            case LoginFinished() if not event.ok:
                return logging.WARNING, f"{event.kind} failed: {event.code}"
            case BreakerProbed() if event.result in {"fatal", "no_answer"}:
                return logging.WARNING, f"breaker probe: {event.result}"
            case ApiCallFinished() if event.code == "PROCESSED":
                return logging.DEBUG, f"{event.operation}: {event.code}"
            case CommandConsumed():
                return logging.DEBUG, "command consumed"
            case TransactionCommitted() | ClaimReadBack() | LoopLagged():  # many a second: in the metrics
                return logging.DEBUG, _summary(event)
            case PartitionFenced():
                return logging.WARNING, f"partition {event.partition} lost: {event.reason}"
            case ReviewDecisionRefused():
                return logging.WARNING, f"review decision for {event.trace_number} held: {event.reason}"
        return logging.INFO, _summary(event)


def _summary(event: Event) -> str:
    match event:
        case ResultPublished():
            return f"result published: {event.outcome}"
        case ResolutionFinished():
            return f"resolution finished: {event.outcome}"
        case BreakerStateChanged():
            return f"circuit breaker {event.state}: {event.reason}"
        case ApiCallFinished():
            return f"{event.operation}: {event.code}"
        case LoginFinished():
            return f"{event.kind} succeeded"
        case BreakerProbed():
            return f"breaker probe: {event.result}"
    return event_name(event).replace("_", " ")


_RENAMES = {"response_code": "code"}


def _event_fields(event: Event) -> dict[str, Any]:
    """The event's fields for the log line: MSISDN masked, ``response_code`` as ``code``, floats to the ms."""
    out: dict[str, Any] = {}
    for name, shown_as in _field_names(type(event)):
        value = getattr(event, name)
        if name == "msisdn":
            value = mask_msisdn(value)
        elif isinstance(value, float):
            value = round(value, 3)
        elif isinstance(value, tuple):
            value = list(value)
        out[shown_as] = value
    return out


_FIELD_NAMES: dict[type[Any], tuple[tuple[str, str], ...]] = {}


def _field_names(kind: type[Any]) -> tuple[tuple[str, str], ...]:
    """An event type's fields, and the name each has in a log line (one lookup per type, not per line)."""
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(
            (f.name, _RENAMES.get(f.name, f.name)) for f in dataclass_fields(kind)
        )
    return names


_DEFAULT_EVENT_LOGGER = EventLogger()


def log_hook(event: Event) -> None:
    """The hook to add to ``FanOut``: logs one event with the system clock."""
    _DEFAULT_EVENT_LOGGER(event)
