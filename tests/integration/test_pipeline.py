"""The pipeline end to end: real Kafka broker, the sandbox over a real socket, the worker in-process."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaTimeoutError

from ecash_dev.sandbox.faults import FaultKind, FaultRule
from ecash_dev.sandbox.server import RunningSandbox, serve_sandbox
from ecash_dev.sandbox.state import Ledger, SandboxConfig, WalletSpec
from tests.integration.harness import (
    Results,
    command,
    create_topics,
    eventually,
    fast_settings,
    produce,
    produce_at,
    read_topic,
    running_worker,
    wait_results,
)
from worker.contracts import Result
from worker.ecash.wire import Operation
from worker.events import ResolutionStarted
from worker.pipeline.headers import dead_letter_id
from worker.pipeline.ownership import OutRecord
from worker.pipeline.publisher import Incoming, Outbox

pytestmark = pytest.mark.kafka

RICH = "0811000000001"
POOR = "0811000000002"
CAPPED = "0811000000003"
UNKNOWN = "0819999999999"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    config = SandboxConfig(
        wallets=[
            WalletSpec(msisdn=RICH, balance=Decimal("1000000")),
            WalletSpec(msisdn=POOR, balance=Decimal("500")),
            WalletSpec(msisdn=CAPPED, balance=Decimal("0"), upper_credit_limit=Decimal("10000")),
        ],
        auto_create_wallets=False,
    )
    async with serve_sandbox(config) as running:
        yield running


def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


async def test_charge_and_credit_end_to_end_with_one_result_each(
    kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    settings = fast_settings(kafka_bootstrap, sandbox.base_url, prefix(), tmp_path)
    await create_topics(settings)
    commands = [
        command("C1", RICH, 1000, "charge"),
        command("C2", RICH, 2500, "credit", metadata={"order": "A-1"}),
        command("C3", POOR, 1000, "charge"),  # not enough credits
        command("C4", UNKNOWN, 1000, "charge"),  # member not found
        command("C5", CAPPED, 20000, "credit"),  # above the upper credit limit
        command("C6", CAPPED, 5000, "credit"),
    ]
    await produce(settings, commands[:2] + commands[4:])
    # with trace context: well-formed on C3 (copied onto its result), malformed on C4 (dropped)
    await produce_at(
        settings,
        commands[2],
        partition=None,
        headers=[("traceparent", TRACEPARENT.encode()), ("tracestate", b"congo=t61rcWkgMzE")],
    )
    await produce_at(
        settings, commands[3], partition=None, headers=[("traceparent", b"00-not-a-traceparent-01")]
    )
    async with running_worker(settings):
        results = await wait_results(settings, {c["trace_number"] for c in commands}, timeout_s=60)
    by_trace = results.by_trace()
    assert {t: len(v) for t, v in by_trace.items()} == dict.fromkeys(by_trace, 1)
    outcomes = {t: v[0]["outcome"] for t, v in by_trace.items()}
    assert outcomes == {
        "C1": "succeeded",
        "C2": "succeeded",
        "C3": "declined",
        "C4": "declined",
        "C5": "declined",
        "C6": "succeeded",
    }
    assert by_trace["C3"][0]["response_code"] == "NOT_ENOUGH_CREDITS"
    assert by_trace["C4"][0]["response_code"] == "MEMBER_NOT_FOUND"
    assert by_trace["C5"][0]["response_code"] == "RECEIVER_UPPER_CREDIT_LIMIT_REACHED"
    assert by_trace["C2"][0]["metadata"] == {"order": "A-1"}
    assert by_trace["C1"][0]["transaction_number"]
    assert by_trace["C1"][0]["resolved_by"] == "response"
    # The ledger agrees with the results: exactly the succeeded ones moved money, once each.
    executed = [e.trace_number for e in sandbox.state.ledger.executions]
    assert sorted(executed) == ["C1", "C2", "C6"]
    assert sandbox.state.wallets[RICH].balance == Decimal("1000000") - 1000 + 2500
    # Every result carries CloudEvents binary-mode headers and the headers of before version 1.
    for trace, (event,) in by_trace.items():
        headers = results.headers[event["event_id"]]
        assert headers["ce_id"] == headers["event_id"] == event["event_id"]
        assert headers["ce_subject"] == trace
        assert headers["outcome"] == event["outcome"]
        assert headers["ce_type"] == "id.co.mandiri.ecash.result.v1"
        assert headers["ce_source"] == f"/ecash-worker/{settings.commands_topic}"
        assert (headers["ce_specversion"], headers["content-type"]) == ("1.0", "application/json")
        assert datetime.fromisoformat(headers["ce_time"]) == datetime.fromisoformat(event["completed_at"])
    c3, c4 = results.headers[by_trace["C3"][0]["event_id"]], results.headers[by_trace["C4"][0]["event_id"]]
    assert (c3["traceparent"], c3["tracestate"]) == (TRACEPARENT, "congo=t61rcWkgMzE")
    assert "traceparent" not in c4
    assert "tracestate" not in c4


async def test_order_per_msisdn_holds_across_1000_msisdns(kafka_bootstrap: str, tmp_path: Path) -> None:
    msisdns = [f"0812{i:09d}" for i in range(1000)]
    config = SandboxConfig(auto_create_wallets=True, default_balance=Decimal("0"), base_latency_ms=20)
    async with serve_sandbox(config) as sandbox:
        settings = fast_settings(
            kafka_bootstrap, sandbox.base_url, prefix(), tmp_path, max_in_flight=128, max_buffered=1024
        )
        await create_topics(settings)
        commands = [
            command(f"O{round_}x{i}", msisdn, 10 + round_, "credit")
            for round_ in range(3)
            for i, msisdn in enumerate(msisdns)
        ]
        await produce(settings, commands)
        async with running_worker(settings):
            results = await wait_results(settings, {c["trace_number"] for c in commands}, timeout_s=120)
        assert {e["outcome"] for e in results.events} == {"succeeded"}
        assert len(results.distinct()) == 3000
        for i, msisdn in enumerate(msisdns):
            executed = [e.trace_number for e in sandbox.state.ledger.by_msisdn[msisdn]]
            assert executed == [f"O0x{i}", f"O1x{i}", f"O2x{i}"], msisdn
        assert sandbox.state.stats.max_in_flight > 1  # the MSISDNs really ran side by side


async def test_duplicates_move_money_once_and_reuse_with_other_parameters_is_rejected(
    kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    settings = fast_settings(kafka_bootstrap, sandbox.base_url, prefix(), tmp_path)
    await create_topics(settings)
    first = command("D1", RICH, 700)
    await produce(settings, [first, first, command("D1", RICH, 900), command("D1", RICH, "700.00")])
    async with running_worker(settings):
        results = await wait_results(settings, {"D1"}, timeout_s=60)
        while len(results.distinct()) < 4:
            results = await wait_results(settings, {"D1"}, timeout_s=60)
    events = sorted(results.distinct().values(), key=lambda e: e["completed_at"])
    assert [e["outcome"] for e in events] == ["succeeded", "succeeded", "rejected", "succeeded"]
    assert [e["resolved_by"] for e in events] == ["response", "journal", "journal", "journal"]
    assert "different parameters" in events[2]["detail"]
    assert len(sandbox.state.ledger.find("agent01", "D1")) == 1  # the sandbox would execute a re-send


async def test_bad_messages_land_in_the_dlq_or_as_rejected_and_the_worker_keeps_going(
    kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    settings = fast_settings(kafka_bootstrap, sandbox.base_url, prefix(), tmp_path, command_max_bytes=1024)
    await create_topics(settings)
    bad: list[dict[str, object] | bytes] = [
        b"this is not json",
        b'["a", "list"]',
        b'{"type": "charge", "amount": "5"}',
        {"type": "charge", "trace_number": "B1", "msisdn": RICH, "amount": "-5"},
        {"type": "refund", "trace_number": "B2", "msisdn": RICH, "amount": "5"},
        {"type": "charge", "trace_number": "B3", "msisdn": 8131234567, "amount": "5"},
        {"type": "charge", "trace_number": "B4", "msisdn": RICH, "amount": "5", "description": "x" * 2000},
        command("B5", RICH, 100),
        b"\x00\x00\x00\x00\x07" + orjson.dumps(command("B6", RICH, 100)),  # Confluent-framed, not accepted
    ]
    await produce(settings, bad, key=b"some-key")
    async with running_worker(settings):
        results = await wait_results(settings, {"B1", "B2", "B3", "B5"}, timeout_s=60)
        headers: list[dict[str, str]] = []
        letters = await read_topic(
            kafka_bootstrap,
            settings.dlq_topic,
            partitions=settings.topic_partitions,
            until=5,
            timeout_s=20,
            headers=headers,
        )
    assert {t: results.outcome_of(t) for t in ("B1", "B2", "B3", "B5")} == {
        "B1": "rejected",
        "B2": "rejected",
        "B3": "rejected",
        "B5": "succeeded",
    }
    assert "amount" in results.by_trace()["B1"][0]["detail"]
    reasons = sorted(letter["reason"].split(":")[0] for letter in letters)
    assert reasons == ["no_trace_number", "not_a_command", "not_json", "not_json", "oversize"]
    framed = [letter["reason"] for letter in letters if "Confluent" in letter["reason"]]
    assert len(framed) == 1
    assert "schema id 7" in framed[0]
    assert "ECASH_COMMANDS_FRAMING" in framed[0]
    assert all(letter["value_b64"] and letter["topic"] == settings.commands_topic for letter in letters)
    for letter, header in zip(letters, headers, strict=True):
        assert header["reason"] == letter["reason"][:200]
        assert header["ce_id"] == dead_letter_id(letter["topic"], letter["partition"], letter["offset"])
        assert header["ce_type"] == "id.co.mandiri.ecash.dead_letter.v1"
    assert [e.trace_number for e in sandbox.state.ledger.executions] == ["B5"]


async def test_confluent_framed_commands_are_read_when_the_setting_says_so(
    kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """ECASH_COMMANDS_FRAMING=auto: a command in the Schema Registry wire format (0x00, schema id, JSON) and
    a plain one, side by side; the schema id is not looked up."""
    settings = fast_settings(kafka_bootstrap, sandbox.base_url, prefix(), tmp_path, commands_framing="auto")
    await create_topics(settings)
    framed = b"\x00" + (123456).to_bytes(4, "big") + orjson.dumps(command("F1", RICH, 100))
    await produce_at(settings, framed, partition=None, key=RICH.encode())
    await produce(settings, [command("F2", RICH, 200)])
    async with running_worker(settings):
        results = await wait_results(settings, {"F1", "F2"}, timeout_s=60)
    assert {t: results.outcome_of(t) for t in ("F1", "F2")} == {"F1": "succeeded", "F2": "succeeded"}
    assert sorted(e.trace_number for e in sandbox.state.ledger.executions) == ["F1", "F2"]


async def test_every_ambiguous_fault_is_resolved_by_status_inquiry(
    kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    settings = fast_settings(
        kafka_bootstrap, sandbox.base_url, prefix(), tmp_path, resolution_schedule_s=[1.0]
    )
    await create_topics(settings)
    rules = [
        FaultRule(operation=Operation.CHARGE, kind=FaultKind.HANG_AFTER_COMMIT, trace_numbers=("A1",)),
        FaultRule(operation=Operation.CHARGE, kind=FaultKind.HTTP_5XX_AFTER_COMMIT, trace_numbers=("A2",)),
        FaultRule(operation=Operation.CHARGE, kind=FaultKind.RESET_AFTER_COMMIT, trace_numbers=("A3",)),
        FaultRule(operation=Operation.CREDIT, kind=FaultKind.MALFORMED_JSON, trace_numbers=("A4",)),
        FaultRule(operation=Operation.CHARGE, kind=FaultKind.HTTP_5XX_BEFORE_COMMIT, trace_numbers=("A5",)),
        FaultRule(operation=Operation.CHARGE, kind=FaultKind.HANG_AFTER_COMMIT, trace_numbers=("A6",)),
        FaultRule(operation=Operation.STATUS, kind=FaultKind.STATUS_LAG, lag_s=1.6, trace_numbers=("A6",)),
        FaultRule(operation=Operation.CHARGE, kind=FaultKind.TOKEN_EXPIRED, trace_numbers=("A7",), count=1),
    ]
    sandbox.sandbox.faults.replace(rules)
    commands = [
        command("A1", RICH, 100),
        command("A2", POOR, 100),
        command("A3", POOR, 100),
        command("A4", CAPPED, 50, "credit"),
        command("A5", RICH, 200),
        command("A6", POOR, 200),
        command("A7", CAPPED, 1, "credit"),
    ]
    await produce(settings, commands)
    async with running_worker(settings):
        results = await wait_results(settings, {c["trace_number"] for c in commands}, timeout_s=60)
    by_trace = {t: events[0] for t, events in results.by_trace().items()}
    assert {t: len(v) for t, v in results.by_trace().items()} == dict.fromkeys(by_trace, 1)
    outcomes = {t: (e["outcome"], e["resolved_by"]) for t, e in by_trace.items()}
    assert outcomes == {
        "A1": ("succeeded", "status_inquiry"),
        "A2": ("succeeded", "status_inquiry"),
        "A3": ("succeeded", "status_inquiry"),
        "A4": ("succeeded", "status_inquiry"),
        "A5": ("failed", "status_inquiry"),
        "A6": ("succeeded", "status_inquiry"),
        "A7": ("succeeded", "response"),
    }
    assert "confirmed not executed" in by_trace["A5"]["detail"]
    # Status Inquiry gives no transaction number; Transaction History does, and the worker looked it up.
    ledger = sandbox.state.ledger
    assert by_trace["A1"]["transaction_number"] == ledger.find("agent01", "A1")[0].transaction_number
    for trace in ("A1", "A2", "A3", "A4", "A6", "A7"):
        assert len(ledger.find("agent01", trace)) == 1, trace
    assert ledger.find("agent01", "A5") == []


async def test_unresolved_goes_to_review_and_an_operator_decision_closes_it(
    kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    settings = fast_settings(kafka_bootstrap, sandbox.base_url, prefix(), tmp_path, resolution_deadline_s=3.0)
    await create_topics(settings)
    sandbox.sandbox.faults.replace(
        [
            FaultRule(operation=Operation.CHARGE, kind=FaultKind.HANG_AFTER_COMMIT, trace_numbers=("U1",)),
            FaultRule(
                operation=Operation.STATUS, kind=FaultKind.HTTP_5XX_BEFORE_COMMIT, trace_numbers=("U1",)
            ),
        ]
    )
    await produce(settings, [command("U1", RICH, 300)])
    async with running_worker(settings) as worker:
        results = await wait_results(settings, {"U1"}, timeout_s=60)
        assert results.outcome_of("U1") == "unresolved"
        # The open item is on the worker's gauge (ecash_review_open) until a decision closes it.
        await eventually(lambda: worker.runner.snapshot().review_open == 1, timeout_s=10)
        assert worker.runner.snapshot().review_open_oldest_s > 0
        reviews = await read_topic(
            kafka_bootstrap,
            settings.review_topic,
            partitions=settings.topic_partitions,
            until=1,
            timeout_s=20,
        )
        assert len(reviews) == 1
        review = reviews[0]
        assert review["state"] == "open"
        assert review["command"]["trace_number"] == "U1"
        assert review["attempts"][0]["operation"] == "charge"
        assert any(a["operation"] == "status" for a in review["attempts"])
        # The operator looks at the ledger (money did move) and closes it as succeeded.
        decision = {
            "type": "review_decision",
            "trace_number": "U1",
            "msisdn": RICH,
            "outcome": "succeeded",
            "decided_by": "sre-on-call",
            "reason": "ledger shows the charge",
        }
        # To the decisions topic, at the partition of the item's command (what `review resolve` does).
        await produce_at(
            settings, decision, partition=review["source_partition"], topic=settings.review_decisions_topic
        )
        while True:
            results = await wait_results(settings, {"U1"}, timeout_s=30)
            if len(results.distinct()) >= 2:
                break
        reviews = await read_topic(
            kafka_bootstrap,
            settings.review_topic,
            partitions=settings.topic_partitions,
            until=2,
            timeout_s=20,
        )
        await eventually(lambda: worker.runner.snapshot().review_open == 0, timeout_s=10)
        assert worker.runner.snapshot().review_open_oldest_s == 0
    final = [e for e in results.distinct().values() if e["resolved_by"] == "manual"]
    assert len(final) == 1
    assert final[0]["outcome"] == "succeeded"
    assert "sre-on-call" in final[0]["detail"]
    assert reviews[-1]["state"] == "closed"
    assert reviews[-1]["closed_by"] == "sre-on-call"
    assert len(sandbox.state.ledger.find("agent01", "U1")) == 1


async def test_resubmit_policy_sends_again_only_after_not_found_is_confirmed(
    kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    settings = fast_settings(
        kafka_bootstrap, sandbox.base_url, prefix(), tmp_path, not_found_policy="resubmit", resubmit_max=1
    )
    await create_topics(settings)
    sandbox.sandbox.faults.replace(
        [
            FaultRule(
                operation=Operation.CHARGE,
                kind=FaultKind.HTTP_5XX_BEFORE_COMMIT,
                trace_numbers=("R1",),
                count=1,
            ),
            FaultRule(
                operation=Operation.CHARGE, kind=FaultKind.HTTP_5XX_BEFORE_COMMIT, trace_numbers=("R2",)
            ),
        ]
    )
    await produce(settings, [command("R1", RICH, 10), command("R2", POOR, 10)])
    async with running_worker(settings):
        results = await wait_results(settings, {"R1", "R2"}, timeout_s=60)
    assert results.outcome_of("R1") == "succeeded"
    assert results.by_trace()["R1"][0]["attempts"] == 2
    assert results.outcome_of("R2") == "failed"  # resubmitted once, not found again: bounded
    assert len(sandbox.state.ledger.find("agent01", "R1")) == 1
    assert sandbox.state.ledger.find("agent01", "R2") == []


async def test_a_resolution_cut_short_by_shutdown_resumes_in_the_next_worker(
    kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    settings = fast_settings(
        kafka_bootstrap,
        sandbox.base_url,
        prefix(),
        tmp_path,
        resolution_schedule_s=[0.5],
        resolution_grace_s=2.0,
    )
    await create_topics(settings)
    sandbox.sandbox.faults.replace(
        [FaultRule(operation=Operation.CHARGE, kind=FaultKind.HANG_AFTER_COMMIT, trace_numbers=("S1",))]
    )
    await produce(settings, [command("S1", RICH, 42), command("S2", RICH, 43)])
    started = asyncio.Event()
    async with running_worker(settings) as worker:
        worker.sink.hooks.append(lambda e: started.set() if isinstance(e, ResolutionStarted) else None)
        await asyncio.wait_for(started.wait(), 20)
    # The first worker stopped mid-resolution: S1 has no result, S2 waits behind it (same MSISDN).
    status_calls_before = sandbox.state.stats.calls["status"]
    async with running_worker(settings):
        results = await wait_results(settings, {"S1", "S2"}, timeout_s=60)
    assert results.outcome_of("S1") == "succeeded"
    assert results.by_trace()["S1"][0]["resolved_by"] == "status_inquiry"
    assert results.outcome_of("S2") == "succeeded"
    assert len(results.distinct()) == 2
    assert sandbox.state.stats.calls["status"] > status_calls_before
    assert [e.trace_number for e in sandbox.state.ledger.by_msisdn[RICH]] == ["S1", "S2"]


def assert_exactly_once(results: Results, ledger: Ledger, traces: set[str]) -> None:
    """Every trace number: one distinct result; executed at most once; succeeded exactly when executed."""
    by_trace: dict[str, set[str]] = {}
    outcome: dict[str, str] = {}
    for event in results.distinct().values():
        by_trace.setdefault(event["trace_number"], set()).add(event["event_id"])
        outcome[event["trace_number"]] = event["outcome"]
    assert set(by_trace) == traces
    doubled = {t: ids for t, ids in by_trace.items() if len(ids) != 1}
    assert not doubled, f"commands with more than one distinct result: {list(doubled)[:5]}"
    assert ledger.duplicated() == {}, "a trace number moved money twice"
    executed = {e.trace_number for e in ledger.executions}
    disagree = [t for t in traces if (outcome[t] == "succeeded") != (t in executed)]
    assert not disagree, f"results disagreeing with the ledger: {disagree[:5]}"


async def test_two_workers_joining_and_leaving_lose_and_double_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    config = SandboxConfig(auto_create_wallets=True, default_balance=Decimal("0"), base_latency_ms=10)
    async with serve_sandbox(config) as sandbox:
        name = prefix()
        first = fast_settings(kafka_bootstrap, sandbox.base_url, name, tmp_path / "a", max_in_flight=32)
        second = fast_settings(kafka_bootstrap, sandbox.base_url, name, tmp_path / "b", max_in_flight=32)
        await create_topics(first)
        commands = [command(f"W{i}", f"0813{i % 300:09d}", 5, "credit") for i in range(3000)]
        traces = {c["trace_number"] for c in commands}
        await produce(first, commands)
        async with running_worker(first):
            await eventually(lambda: len(sandbox.state.ledger.executions) >= 500, timeout_s=60)
            async with running_worker(second):
                await eventually(lambda: len(sandbox.state.ledger.executions) >= 1500, timeout_s=60)
            # the second worker left mid-stream; the first takes its partitions back
            results = await wait_results(first, traces, timeout_s=120)
        assert_exactly_once(results, sandbox.state.ledger, traces)


async def test_an_unexpected_failure_rewinds_the_partition_without_losing_order_or_doubling(
    kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    settings = fast_settings(kafka_bootstrap, sandbox.base_url, prefix(), tmp_path, topic_partitions=1)
    await create_topics(settings)
    commands = [command(f"X{i}", RICH, 10 + i) for i in range(6)]
    await produce(settings, commands)
    failures: list[str] = []

    class FlakyOutbox(Outbox):
        def result(self, result: Result, incoming: Incoming = ()) -> OutRecord:
            if result.trace_number == "X2" and not failures:
                failures.append(result.trace_number)
                raise KafkaTimeoutError("injected: the result could not be built")
            return super().result(result, incoming)

    async with running_worker(settings) as worker:
        worker.processor.effects.outbox = FlakyOutbox(
            settings.results_topic, settings.dlq_topic, settings.review_topic
        )
        results = await wait_results(settings, {c["trace_number"] for c in commands}, timeout_s=60)
    assert failures == ["X2"]
    assert [e.trace_number for e in sandbox.state.ledger.by_msisdn[RICH]] == [f"X{i}" for i in range(6)]
    assert_exactly_once(results, sandbox.state.ledger, {c["trace_number"] for c in commands})


async def test_a_message_that_keeps_failing_before_any_money_call_is_dead_lettered_and_the_partition_moves_on(
    kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """An unexpected exception on one message, before any money call, is that message's failure, not the
    process's: bounded retries, then a dead letter ``internal_error`` naming the exception type, and the
    commands behind it (same wallet, same partition) go on."""
    settings = fast_settings(kafka_bootstrap, sandbox.base_url, prefix(), tmp_path, topic_partitions=1)
    await create_topics(settings)
    await produce(settings, [command("Y0", RICH, 10), command("BOOM", RICH, 11), command("Y2", RICH, 12)])
    attempts: list[str] = []
    async with running_worker(settings) as worker:
        real = worker.processor._command

        async def failing(job: Any, cmd: Any) -> bool:
            if cmd.trace_number == "BOOM":
                attempts.append(cmd.trace_number)
                raise ZeroDivisionError("injected: a bug on this message")
            return await real(job, cmd)

        worker.processor._command = failing  # type: ignore[method-assign,assignment]
        results = await wait_results(settings, {"Y0", "Y2"}, timeout_s=60)
        letters = await read_topic(
            kafka_bootstrap, settings.dlq_topic, partitions=settings.topic_partitions, until=1, timeout_s=30
        )
        assert worker.runner.fatal is None
    assert len(attempts) == 3
    assert [letter["reason"].split(":")[0] for letter in letters] == ["internal_error"]
    assert "ZeroDivisionError" in letters[0]["reason"]
    assert results.outcome_of("Y2") == "succeeded"
    assert [e.trace_number for e in sandbox.state.ledger.by_msisdn[RICH]] == ["Y0", "Y2"]
