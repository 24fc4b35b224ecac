"""aiokafka's broker-down noise, collapsed: no ERROR for a broker that is only briefly unreachable.

While a broker is down aiokafka logs an ERROR (or WARNING) at every retry, several a second, and at every
start one ``Group Coordinator Request failed`` while the group coordinator is elected. ``KafkaNoiseFilter``
sits on the worker's log handler and turns these known transient lines into one outage:

- each transient line is demoted to DEBUG (kept only when the log level is DEBUG);
- once the outage has lasted ``grace_s``: one WARNING ``kafka unreachable for N s: <first error>``, and one
  reminder every ``remind_s`` while it lasts;
- when the broker answers again (aiokafka logs that it discovered a coordinator, joined or synced a group),
  or nothing transient was seen for ``quiet_s``: one WARNING ``kafka reachable again after an outage of
  N s`` with the number of lines suppressed. An outage shorter than ``grace_s`` (the start-up election)
  ends with one INFO line instead.

An outage therefore gives a bounded number of lines at INFO and above: 2 + duration / ``remind_s``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from worker.clock import Clock, SystemClock

__all__ = [
    "KAFKA_NOISE_LOGGER_NAME",
    "RECOVERY_PREFIXES",
    "TRANSIENT_PREFIXES",
    "KafkaNoiseFilter",
    "is_recovery",
    "is_transient",
]

KAFKA_NOISE_LOGGER_NAME = "worker.kafka_connection"

# aiokafka's format strings (record.msg, before %-formatting) for failures that retry by themselves.
TRANSIENT_PREFIXES: tuple[str, ...] = (
    "Unable connect to ",  # client: bootstrap or node
    "Unable to request metadata from ",
    "Unable to update metadata from ",
    "Group Coordinator Request failed",
    "FindCoordinator Request failed",
    "Failed fetch messages from ",
    "Failed fetch offsets from ",
    "Heartbeat send request failed",
    "Heartbeat session expired",
    "Heartbeat failed for group %s: coordinator",  # "... (node %s) is either not started or not valid"
    "Error sending ",  # "%s to node %s [%s] -- marking coordinator dead"
    "Marking the coordinator dead",
    "Got error produce response",  # retriable only: ": %s", and "on topic-partition %s, retrying. ..."
    "Cannot send ",
    "Could not send ",
)
# aiokafka's INFO lines that prove a broker answered.
RECOVERY_PREFIXES: tuple[str, ...] = (
    "Discovered coordinator ",
    "Joined group ",
    "Successfully synced group ",
)


def is_transient(record: logging.LogRecord) -> bool:
    return (
        record.name.startswith("aiokafka")
        and record.levelno >= logging.WARNING
        and str(record.msg).startswith(TRANSIENT_PREFIXES)
    )


def is_recovery(record: logging.LogRecord) -> bool:
    return record.name.startswith("aiokafka") and str(record.msg).startswith(RECOVERY_PREFIXES)


@dataclass
class _Outage:
    started_s: float
    last_s: float
    first: str
    suppressed: int = 0
    reported: bool = False
    reminded_s: float = 0.0


class KafkaNoiseFilter(logging.Filter):
    """Handler filter: see the module's docstring. ``level`` is the configured log level (DEBUG keeps the
    demoted lines). Its own lines come from the ``worker.kafka_connection`` logger."""

    def __init__(
        self,
        level: int = logging.INFO,
        clock: Clock | None = None,
        *,
        grace_s: float = 5.0,
        quiet_s: float = 5.0,
        remind_s: float = 300.0,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__()
        self._level = level
        self._clock = clock or SystemClock()
        self._grace_s = grace_s
        self._quiet_s = quiet_s
        self._remind_s = remind_s
        self._logger = logger or logging.getLogger(KAFKA_NOISE_LOGGER_NAME)
        self._outage: _Outage | None = None

    @property
    def in_outage(self) -> bool:
        return self._outage is not None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == self._logger.name:
            return True  # our own summary lines
        now = self._clock.monotonic_s()
        if is_transient(record):
            return self._transient(record, now)
        if is_recovery(record):
            self._close(now, end_s=now)
        else:
            self.check(now)
        return True

    def check(self, now: float | None = None) -> None:
        """End an outage nothing transient was heard of for ``quiet_s`` (called with every record)."""
        now = self._clock.monotonic_s() if now is None else now
        outage = self._outage
        if outage is not None and now - outage.last_s >= self._quiet_s:
            self._close(now, end_s=outage.last_s)

    def _transient(self, record: logging.LogRecord, now: float) -> bool:
        outage = self._outage
        if outage is None:
            outage = self._outage = _Outage(started_s=now, last_s=now, first=record.getMessage())
        elif now - outage.last_s >= self._quiet_s:
            self._close(now, end_s=outage.last_s)  # the earlier outage ended unseen: this is a new one
            outage = self._outage = _Outage(started_s=now, last_s=now, first=record.getMessage())
        outage.last_s = now
        outage.suppressed += 1
        lasted_s = now - outage.started_s
        if not outage.reported and lasted_s >= self._grace_s:
            outage.reported = True
            outage.reminded_s = now
            self._say(logging.WARNING, f"kafka unreachable for {lasted_s:.1f} s: {outage.first}", outage, now)
        elif outage.reported and now - outage.reminded_s >= self._remind_s:
            outage.reminded_s = now
            self._say(logging.WARNING, f"kafka still unreachable after {lasted_s:.1f} s", outage, now)
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return self._level <= logging.DEBUG

    def _close(self, now: float, *, end_s: float) -> None:
        outage, self._outage = self._outage, None
        if outage is None:
            return
        lasted_s = max(end_s - outage.started_s, 0.0)
        if outage.reported:
            message = f"kafka reachable again after an outage of {lasted_s:.1f} s"
            self._say(logging.WARNING, message, outage, now, lasted_s)
        else:
            message = f"kafka answered after {lasted_s:.1f} s of transient errors"
            self._say(logging.INFO, message, outage, now, lasted_s)

    def _say(
        self, level: int, message: str, outage: _Outage, now: float, lasted_s: float | None = None
    ) -> None:
        fields = {
            "outage_s": round(now - outage.started_s if lasted_s is None else lasted_s, 3),
            "suppressed_lines": outage.suppressed,
            "first_error": outage.first,
        }
        self._logger.log(level, message, extra={"event_name": "kafka_connection", "fields": fields})
