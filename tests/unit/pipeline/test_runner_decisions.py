"""The runner's pure decisions, table-driven: backpressure, commits, lag, dispatch, activation."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition

from worker.clock import FakeClock
from worker.pipeline import activation, backpressure
from worker.pipeline.commits import StreamOffsets, committable_offsets
from worker.pipeline.dispatch import (
    FAILURES_BEFORE_DEAD_LETTER,
    Failures,
    after_failures,
    decision_intake,
    job_of,
)
from worker.pipeline.intake import DeadLetterReason, Parsed, parse_command
from worker.pipeline.lag import age_s, highwater, lag_messages
from worker.pipeline.ownership import COMMANDS, DECISIONS

T = "ecash.commands"


def tps(*partitions: int) -> frozenset[TopicPartition]:
    return frozenset(TopicPartition(T, p) for p in partitions)


# --- backpressure ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fatal", "buffered", "max_buffered", "full_for_s", "hold", "wait"),
    [
        (None, 0, 10, 0.0, False, False),
        (None, 9, 10, 0.0, False, False),
        (None, 10, 10, 0.0, False, True),  # at the bound: wait for room, neither fetch nor pause
        (None, 10, 10, 0.99, False, True),
        (None, 10, 10, 1.0, True, False),  # full for FULL_PATIENCE_S: pause all, poll on
        (None, 12, 10, 5.0, True, False),
        ("agent refused", 0, 10, 0.0, True, False),  # a fatal configuration error stops fetching
        ("agent refused", 10, 10, 0.0, True, False),
    ],
)
def test_at_the_bound_the_runner_waits_for_room_then_pauses_everything(
    fatal: str | None, buffered: int, max_buffered: int, full_for_s: float, hold: bool, wait: bool
) -> None:
    """Pausing makes aiokafka drop what it fetched for the partition (fetched again later, and held in a
    reference cycle meanwhile): at the bound the runner first waits for room, for FULL_PATIENCE_S."""
    assert (
        backpressure.hold_all(
            fatal=fatal, buffered=buffered, max_buffered=max_buffered, full_for_s=full_for_s
        )
        is hold
    )
    assert (
        backpressure.wait_for_room(
            fatal=fatal, buffered=buffered, max_buffered=max_buffered, full_for_s=full_for_s
        )
        is wait
    )


@pytest.mark.parametrize(
    ("buffered", "max_buffered", "records"),
    [(0, 10_000, 1000), (0, 10, 10), (7, 10, 3), (10, 10, 1), (15, 10, 1)],
)
def test_fetch_max_records(buffered: int, max_buffered: int, records: int) -> None:
    assert backpressure.fetch_max_records(buffered=buffered, max_buffered=max_buffered) == records


@pytest.mark.parametrize(
    ("assigned", "paused_now", "owned", "needs_reset", "hold", "pause", "resume"),
    [
        pytest.param(tps(0, 1), tps(), {0, 1}, set(), False, tps(), tps(), id="all owned, none paused"),
        pytest.param(tps(0, 1), tps(0, 1), {0, 1}, set(), False, tps(), tps(0, 1), id="activated: resume"),
        pytest.param(tps(0, 1), tps(), {0}, set(), False, tps(1), tps(), id="not owned yet: pause"),
        pytest.param(tps(0, 1), tps(), {0, 1}, {1}, False, tps(1), tps(), id="waiting for a rewind"),
        pytest.param(tps(0, 1), tps(0), {0, 1}, set(), True, tps(1), tps(), id="hold all: pause the rest"),
        pytest.param(tps(0, 1), tps(0, 1), {0, 1}, set(), True, tps(), tps(), id="hold all: already paused"),
        pytest.param(
            tps(0), tps(0, 5), {0}, set(), False, tps(), tps(0), id="a paused one no longer assigned"
        ),
    ],
)
def test_pause_changes(
    assigned: frozenset[TopicPartition],
    paused_now: frozenset[TopicPartition],
    owned: set[int],
    needs_reset: set[int],
    hold: bool,
    pause: frozenset[TopicPartition],
    resume: frozenset[TopicPartition],
) -> None:
    changes = backpressure.pause_changes(
        assigned, paused_now, owned=owned, needs_reset=needs_reset, hold=hold
    )
    assert (changes.pause, changes.resume) == (pause, resume)


@pytest.mark.parametrize(
    ("needs_reset", "running", "now"),
    [([1, 2], set(), [1, 2]), ([1, 2], {1}, [2]), ([1], {1, 3}, []), ([], {1}, [])],
)
def test_a_partition_is_rewound_once_none_of_its_jobs_runs(
    needs_reset: list[int], running: set[int], now: list[int]
) -> None:
    assert backpressure.resettable(needs_reset, running) == now


# --- commits ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("commands", "decisions", "expected"),
    [
        (None, None, {}),
        (5, None, {COMMANDS: 5}),
        (None, 2, {DECISIONS: 2}),
        (5, 2, {COMMANDS: 5, DECISIONS: 2}),
        (0, 0, {COMMANDS: 0, DECISIONS: 0}),  # 0 is an offset, not nothing
    ],
)
def test_committable_offsets(commands: int | None, decisions: int | None, expected: dict[str, int]) -> None:
    assert committable_offsets(commands, decisions) == expected


def test_stream_offsets_commit_the_lowest_unfinished_offset_of_each_stream() -> None:
    offsets = StreamOffsets(T, "ecash.review.decisions")
    for offset in (10, 11, 12):
        offsets.of(COMMANDS).of(0).add(offset)
    offsets.of(DECISIONS).of(0).add(4)
    offsets.of(COMMANDS).of(0).done(10)
    offsets.of(COMMANDS).of(0).done(12)
    assert offsets.committable(0) == {COMMANDS: 11, DECISIONS: 4}
    offsets.of(DECISIONS).of(0).done(4)
    assert offsets.committable(0) == {COMMANDS: 11, DECISIONS: 5}
    assert (offsets.topic_of(COMMANDS), offsets.topic_of(DECISIONS)) == (T, "ecash.review.decisions")


def test_a_rewind_forgets_the_partition_and_returns_where_to_read_again() -> None:
    offsets = StreamOffsets(T, "d")
    offsets.of(COMMANDS).of(1).add(7)
    offsets.of(COMMANDS).of(1).add(8)
    assert offsets.rewind_points(1) == (7, None)
    assert offsets.committable(1) == {}
    assert offsets.rewind_points(2) == (None, None)


# --- lag ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("high", "known_end", "committable", "committed", "lag"),
    [
        (100, None, 90, None, 10),
        (None, 100, 90, None, 10),  # paused: only the end offsets asked for
        (95, 100, 90, None, 10),  # the later of the two
        (100, 95, 90, None, 10),
        (100, None, None, 80, 20),  # nothing seen since the commit: from the committed offset
        (100, None, None, None, None),
        (None, None, 90, None, None),
        (90, None, 95, None, 0),  # never negative
    ],
)
def test_lag_messages(
    high: int | None, known_end: int | None, committable: int | None, committed: int | None, lag: int | None
) -> None:
    assert lag_messages(high, known_end, committable, committed) == lag


@pytest.mark.parametrize(
    ("now_s", "oldest_ms", "age"),
    [(100.0, None, 0.0), (100.0, 0, 0.0), (100.0, 90_000, 10.0), (100.0, 101_000, 0.0)],
)
def test_age_s(now_s: float, oldest_ms: int | None, age: float) -> None:
    assert age_s(now_s, oldest_ms) == age


def test_highwater_is_none_until_the_consumer_knows_it() -> None:
    class Consumer:
        def highwater(self, tp: TopicPartition) -> int | None:
            if tp.partition == 0:
                raise AssertionError("not assigned")
            return None if tp.partition == 1 else 42

    assert [highwater(Consumer(), TopicPartition(T, p)) for p in (0, 1, 2)] == [None, None, 42]


# --- dispatch -----------------------------------------------------------------------------------------

COMMAND = b'{"type":"charge","trace_number":"T1","msisdn":"08131234567","amount":"100000"}'
DECISION = (
    b'{"type":"review_decision","trace_number":"T1","msisdn":"08131234567","decision":"succeeded",'
    b'"operator":"op","reason":"checked"}'
)


@pytest.mark.parametrize(
    ("failed", "dead_letter"),
    [
        (None, False),
        ((1, "KeyError"), False),
        ((FAILURES_BEFORE_DEAD_LETTER - 1, "KeyError"), False),
        ((FAILURES_BEFORE_DEAD_LETTER, "KeyError"), True),
        ((FAILURES_BEFORE_DEAD_LETTER + 4, "ValueError"), True),
    ],
)
def test_a_message_that_failed_too_often_is_dead_lettered(
    failed: tuple[int, str] | None, dead_letter: bool
) -> None:
    letter = after_failures(failed)
    assert (letter is not None) is dead_letter
    if letter is not None and failed is not None:
        assert letter.reason == "internal_error"
        assert f"failed {failed[0]} times ({failed[1]}); no money call was made" in letter.detail


def test_failures_count_per_message_until_cleared() -> None:
    failures = Failures()
    assert [failures.record(0, 5, "KeyError") for _ in range(3)] == [1, 2, 3]
    assert failures.get(0, 5) == (3, "KeyError")
    assert failures.get(0, 6) is None
    failures.clear(0, 5)
    assert failures.get(0, 5) is None


def test_only_review_decisions_are_taken_from_the_decisions_topic() -> None:
    command = parse_command(COMMAND, max_bytes=65536)
    assert isinstance(command, Parsed)
    refused = decision_intake(command, commands_topic=T, decisions_topic="d")
    assert isinstance(refused, DeadLetterReason)
    assert refused.reason == "not_a_review_decision"
    decision = parse_command(DECISION, max_bytes=65536)
    assert decision_intake(decision, commands_topic=T, decisions_topic="d") is decision
    garbage = parse_command(b"{", max_bytes=65536)
    assert decision_intake(garbage, commands_topic=T, decisions_topic="d") is garbage


@pytest.mark.parametrize(("stream", "topic"), [(COMMANDS, None), (DECISIONS, "d")])
def test_a_job_carries_its_message(stream: str, topic: str | None) -> None:
    message = SimpleNamespace(
        partition=3, offset=9, timestamp=1234, key=b"08131234567", value=COMMAND, headers=[("h", b"v")]
    )
    intake = parse_command(COMMAND, max_bytes=65536)
    job = job_of(message, intake, stream=stream, decisions_topic="d")
    assert (job.partition, job.offset, job.timestamp_ms, job.key, job.value) == (
        3,
        9,
        1234,
        b"08131234567",
        COMMAND,
    )
    assert (job.headers, job.stream, job.topic, job.lane) == ([("h", b"v")], stream, topic, "3:08131234567")


# --- activation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("assigned", "owned", "activating", "new"),
    [
        ({0, 1, 2}, set(), set(), [0, 1, 2]),
        ({2, 0, 1}, {1}, {2}, [0]),
        ({1}, {1}, set(), []),
        (set(), {1}, set(), []),
    ],
)
def test_to_activate(assigned: set[int], owned: set[int], activating: set[int], new: list[int]) -> None:
    assert activation.to_activate(assigned, owned, activating) == new


@pytest.mark.parametrize(
    ("attempt", "delay_s"), [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (5, 30.0), (9, 30.0)]
)
def test_retry_delay_s(attempt: int, delay_s: float) -> None:
    assert activation.retry_delay_s(attempt) == delay_s


def test_chunks() -> None:
    assert [list(c) for c in activation.chunks(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(activation.chunks([], 3)) == []


@pytest.mark.parametrize(
    ("fail_times", "attempts", "activated", "undone"), [(0, 3, True, 0), (2, 3, True, 2), (3, 3, False, 3)]
)
async def test_activation_is_retried_and_undone_after_each_failure(
    fail_times: int, attempts: int, activated: bool, undone: int
) -> None:
    clock = FakeClock()
    calls = {"once": 0, "undo": 0}

    async def once() -> None:
        calls["once"] += 1
        if calls["once"] <= fail_times:
            raise RuntimeError("restore failed")

    async def undo() -> None:
        calls["undo"] += 1

    assert await activation.activate_with_retries(0, attempts, once, undo, clock) is activated
    assert calls["undo"] == undone
    assert clock.slept_s == [activation.retry_delay_s(a) for a in range(1, min(fail_times, attempts - 1) + 1)]
