"""Fetched messages to jobs: parse, decide what the message is, and hand it to its lane.

A command message is parsed and put through the key rule (key_rule.py), unless the journal already holds a
record for this very message (accepted before the key rule existed: it is carried on). A message whose
handling failed ``FAILURES_BEFORE_DEAD_LETTER`` times with no money call in doubt is dead-lettered instead
of tried again. A message on the decisions topic that is not a review decision is dead-lettered. Each
message's offset is pending in its stream (commits.py) until its job ends.

The decisions are pure functions (``after_failures``, ``decision_intake``, ``job_of``); ``Dispatcher``
applies them with the journal, the offsets and the lanes.
"""

from __future__ import annotations

from typing import Any

from worker.events import CommandConsumed, EventSink
from worker.pipeline.commits import StreamOffsets
from worker.pipeline.intake import DeadLetterReason, Decision, Framing, Intake, Parsed, parse_command
from worker.pipeline.journal import Journal, JournalState
from worker.pipeline.key_rule import on_commands_topic
from worker.pipeline.lanes import Lanes
from worker.pipeline.ownership import COMMANDS, DECISIONS
from worker.pipeline.processor import Job

__all__ = [
    "FAILURES_BEFORE_DEAD_LETTER",
    "Dispatcher",
    "Failures",
    "after_failures",
    "decision_intake",
    "job_of",
]

FAILURES_BEFORE_DEAD_LETTER = 3  # an unexpected error on one message, before any money call

Failure = tuple[int, str]  # (how many times, the last exception's type name)


def after_failures(failed: Failure | None) -> DeadLetterReason | None:
    """The dead letter for a message that failed too often, or None: it is tried again. (The caller
    dead-letters it only when no money call for it is in doubt.)"""
    if failed is None or failed[0] < FAILURES_BEFORE_DEAD_LETTER:
        return None
    return DeadLetterReason(
        "internal_error",
        f"handling this message failed {failed[0]} times ({failed[1]}); no money call was made",
    )


def decision_intake(intake: Intake, *, commands_topic: str, decisions_topic: str) -> Intake:
    """Only review decisions (or what cannot be read at all) are taken from the decisions topic."""
    if isinstance(intake, Decision | DeadLetterReason):
        return intake
    return DeadLetterReason(
        "not_a_review_decision",
        f"only review decisions are read from {decisions_topic}; commands go to {commands_topic}",
    )


def job_of(message: Any, intake: Intake, *, stream: str, decisions_topic: str) -> Job:
    return Job(
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=message.timestamp,
        key=message.key,
        value=message.value,
        headers=[(k, v) for k, v in (message.headers or ())],
        intake=intake,
        stream=stream,
        topic=decisions_topic if stream == DECISIONS else None,
    )


class Failures:
    """Unexpected failures per message (partition, offset), until it finishes."""

    def __init__(self) -> None:
        self._counts: dict[tuple[int, int], Failure] = {}

    def get(self, partition: int, offset: int) -> Failure | None:
        return self._counts.get((partition, offset))

    def record(self, partition: int, offset: int, error: str) -> int:
        count = self._counts.get((partition, offset), (0, ""))[0] + 1
        self._counts[(partition, offset)] = (count, error)
        return count

    def clear(self, partition: int, offset: int) -> None:
        self._counts.pop((partition, offset), None)


class Dispatcher:
    def __init__(
        self,
        *,
        commands_topic: str,
        decisions_topic: str,
        max_bytes: int,
        framing: Framing = "plain",
        journal: Journal,
        offsets: StreamOffsets,
        lanes: Lanes[Job],
        failures: Failures,
        sink: EventSink,
    ) -> None:
        self._topic = commands_topic
        self._decisions_topic = decisions_topic
        self._max_bytes = max_bytes
        self._framing: Framing = framing
        self._journal = journal
        self._offsets = offsets
        self._lanes = lanes
        self._failures = failures
        self._sink = sink

    def command(self, message: Any) -> None:
        parsed = parse_command(message.value, max_bytes=self._max_bytes, framing=self._framing)
        intake = on_commands_topic(parsed, message.key, decisions_topic=self._decisions_topic)
        if isinstance(parsed, Parsed) and self._journaled(message, parsed):
            intake = parsed  # accepted before the key rule existed: carry its journal record on
        letter = after_failures(self._failures.get(message.partition, message.offset))
        if letter is not None and self._no_intent(message, intake):
            intake = letter
        self._sink.emit(CommandConsumed(message.partition))
        self._submit(message, intake, stream=COMMANDS)

    def decision(self, message: Any) -> None:
        intake = decision_intake(
            parse_command(message.value, max_bytes=self._max_bytes, framing=None),
            commands_topic=self._topic,
            decisions_topic=self._decisions_topic,
        )
        self._submit(message, intake, stream=DECISIONS)

    def _submit(self, message: Any, intake: Intake, *, stream: str) -> None:
        """Hand a message to its lane; its offset stays pending in its stream until its job commits it."""
        job = job_of(message, intake, stream=stream, decisions_topic=self._decisions_topic)
        self._offsets.of(stream).of(message.partition).add(message.offset, message.timestamp)
        self._lanes.submit(job)

    def _journaled(self, message: Any, intake: Parsed) -> bool:
        """This very message has a journal record (accepted before the key rule): carry it on."""
        record = self._journal.get(message.partition, intake.command.trace_number)
        return record is not None and (record.partition, record.offset) == (message.partition, message.offset)

    def _no_intent(self, message: Any, intake: object) -> bool:
        """True unless the journal holds a money call in doubt for this message (that one is resolved,
        never dead-lettered)."""
        if not isinstance(intake, Parsed):
            return True
        record = self._journal.get(message.partition, intake.command.trace_number)
        return record is None or record.state is JournalState.DONE
