"""The chaos run's commands that share a trace number across partitions (issue 14), as data, and how the
run waits for and reports them. In memory: no broker."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ecash_dev.chaos.agreement import check_agreement
from ecash_dev.chaos.plan import (
    CROSS_PARTITION_DUPLICATE,
    INJECTED_MAX_LAG,
    TRACE_REUSE,
    ChaosOptions,
    PlannedMessage,
    plan_commands,
    plan_messages,
)
from ecash_dev.chaos.report import offenders, summary_table
from ecash_dev.chaos.run import Timeline, produce_paced, wait_for_every_message
from ecash_dev.stack import ResultTail
from worker.clock import FakeClock
from worker.contracts import Command
from worker.pipeline.key_rule import java_partition

PARTITIONS = 12


def small_plan(seed: int = 11, **shares: float) -> list[PlannedMessage]:
    return plan_messages(2000, 200, seed, partitions=PARTITIONS, **shares)


def test_the_originals_are_the_plain_plan_in_order_and_the_plan_is_seeded() -> None:
    messages = small_plan()
    assert [m.command for m in messages if m.injected is None] == plan_commands(2000, 200, 11)
    assert all(m.partition is None for m in messages if m.injected is None)
    assert small_plan() == messages
    assert small_plan(seed=12) != messages


@pytest.mark.parametrize(("count", "msisdns", "seed"), [(2000, 200, 11), (20_000, 2000, 1), (2000, 200, 3)])
def test_both_kinds_are_at_least_one_percent_of_commands(count: int, msisdns: int, seed: int) -> None:
    kinds = Counter(m.injected for m in plan_messages(count, msisdns, seed, partitions=PARTITIONS))
    assert kinds[None] == count
    assert kinds[CROSS_PARTITION_DUPLICATE] >= count // 100
    assert kinds[TRACE_REUSE] >= count // 100


def test_a_cross_partition_duplicate_is_its_original_again_in_the_next_partition_soon_after() -> None:
    messages = small_plan()
    position = {m.command["trace_number"]: i for i, m in enumerate(messages) if m.injected is None}
    duplicates = [(i, m) for i, m in enumerate(messages) if m.injected == CROSS_PARTITION_DUPLICATE]
    assert duplicates
    for index, duplicate in duplicates:
        original = messages[position[duplicate.command["trace_number"]]]
        assert duplicate.command == original.command  # the exact value, so the same key
        home = java_partition(original.command["msisdn"].encode(), PARTITIONS)
        assert duplicate.partition == (home + 1) % PARTITIONS != home
        assert 0 < index - position[duplicate.command["trace_number"]] <= 2 * INJECTED_MAX_LAG


def test_a_trace_reuse_is_a_valid_command_on_a_wallet_of_another_partition() -> None:
    messages = small_plan()
    originals = {m.command["trace_number"]: m.command for m in messages if m.injected is None}
    reuses = [m for m in messages if m.injected == TRACE_REUSE]
    assert reuses
    for reuse in reuses:
        original = originals[reuse.command["trace_number"]]
        assert reuse.partition is None  # by its key
        assert {k: v for k, v in reuse.command.items() if k != "msisdn"} == {
            k: v for k, v in original.items() if k != "msisdn"
        }
        assert reuse.command["msisdn"] != original["msisdn"]
        assert java_partition(reuse.command["msisdn"].encode(), PARTITIONS) != java_partition(
            original["msisdn"].encode(), PARTITIONS
        )
        Command.model_validate(reuse.command)


def test_no_share_no_injection_and_nonsense_shares_are_refused() -> None:
    kinds = Counter(m.injected for m in small_plan(cross_partition_duplicates=0, trace_reuses=0))
    assert kinds == {None: 2000}
    with pytest.raises(ValueError, match="at most 1"):
        ChaosOptions(cross_partition_duplicates=0.6, trace_reuses=0.5).validate()
    with pytest.raises(ValueError, match=">= 0"):
        ChaosOptions(trace_reuses=-0.1).validate()
    with pytest.raises(ValueError, match="partitions >= 2"):
        ChaosOptions(partitions=1).validate()
    ChaosOptions(partitions=1, cross_partition_duplicates=0, trace_reuses=0).validate()


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], int | None]] = []
        self.flushes = 0

    async def send(self, message: dict[str, Any], partition: int | None = None) -> None:
        self.sent.append((message, partition))

    async def flush(self) -> None:
        self.flushes += 1


async def test_explicit_partitions_go_through_the_partitioned_sender_in_plan_order() -> None:
    messages = small_plan()[:300]
    keyed, elsewhere = Recorder(), Recorder()
    clock = FakeClock()
    timeline = Timeline(clock, clock.monotonic_s())
    await produce_paced(
        keyed,  # type: ignore[arg-type]  # a recorder in the producers' place
        messages,
        1e9,
        timeline,
        elsewhere,  # type: ignore[arg-type]
    )
    assert [m for m, _ in keyed.sent] == [m.command for m in messages if m.partition is None]
    assert elsewhere.sent == [(m.command, m.partition) for m in messages if m.partition is not None]
    assert timeline.sent == 300
    assert keyed.flushes >= 1
    assert elsewhere.flushes >= 1
    with pytest.raises(ValueError, match="PartitionedSender"):
        await produce_paced(keyed, messages, 1e9, timeline)  # type: ignore[arg-type]


async def test_waiting_counts_every_message_of_a_trace_number_not_the_trace_number() -> None:
    clock = FakeClock()
    tail = ResultTail("127.0.0.1:1", "results", clock=clock)  # never started: results set by hand
    tail.results = {"T": {"a": {"resolved_by": "response"}}}
    assert not await wait_for_every_message(tail, {"T": 2}, 1.0, clock)
    tail.results["T"]["m"] = {"resolved_by": "manual"}  # a decision answers no second message
    assert not await wait_for_every_message(tail, {"T": 2}, 1.0, clock)
    tail.results["T"]["b"] = {"resolved_by": "journal"}
    assert await wait_for_every_message(tail, {"T": 2}, 1.0, clock)


def test_the_table_names_the_injected_messages_and_the_new_failures() -> None:
    check = check_agreement(
        {"DUP": 2, "REUSE": 2},
        [
            {"event_id": "d1", "trace_number": "DUP", "outcome": "succeeded", "resolved_by": "response"},
            {"event_id": "d2", "trace_number": "DUP", "outcome": "succeeded", "resolved_by": "response"},
            {"event_id": "r1", "trace_number": "REUSE", "outcome": "declined", "resolved_by": "response"},
        ],
        [{"trace_number": "DUP", "msisdn": None, "amount": None, "type": None}] * 2,
    )
    assert set(offenders(check)) == {"DUP", "REUSE"}
    summary: dict[str, Any] = {
        "ok": check.ok,
        "check": check.to_json(),
        "options": {"commands": 2, "msisdns": 2, "workers": 1, "seed": 1},
        "injected": {CROSS_PARTITION_DUPLICATE: 1, TRACE_REUSE: 1},
        "faults_injected": {},
        "api_calls": {},
        "sandbox_stats": {},
        "kills": 0,
        "unexpected_worker_exits": 0,
        "broker_restarts": 0,
        "elapsed_s": 1.0,
        "workdir": str(Path("chaos-work")),
    }
    table = summary_table(summary)
    assert "  of which sent again to another partition" in table
    assert "trace numbers with two commands acted on (must be 0)  1" in table
    assert "command messages without a result (must be 0)" in table
    assert "ACTED ON TWICE DUP: 2 commands with this trace number acted on" in table
    assert "UNANSWERED REUSE: 1 command message(s) without a result" in table
    assert "verdict" in table
    assert "FAIL" in table
