"""The pipeline end to end: real Kafka broker, the sandbox over a real socket, the worker in-process."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.integration.harness import (
    command,
    create_topics,
    fast_settings,
    produce,
    read_topic,
    running_worker,
    wait_results,
)
from worker.sandbox.server import RunningSandbox, serve_sandbox
from worker.sandbox.state import SandboxConfig, WalletSpec

pytestmark = pytest.mark.kafka

RICH = "0811000000001"
POOR = "0811000000002"
CAPPED = "0811000000003"
UNKNOWN = "0819999999999"


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
    await produce(settings, commands)
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
    ]
    await produce(settings, bad, key=b"some-key")
    async with running_worker(settings):
        results = await wait_results(settings, {"B1", "B2", "B3", "B5"}, timeout_s=60)
        letters = await read_topic(
            kafka_bootstrap, settings.dlq_topic, partitions=settings.topic_partitions, until=4, timeout_s=20
        )
    assert {t: results.outcome_of(t) for t in ("B1", "B2", "B3", "B5")} == {
        "B1": "rejected",
        "B2": "rejected",
        "B3": "rejected",
        "B5": "succeeded",
    }
    assert "amount" in results.by_trace()["B1"][0]["detail"]
    reasons = sorted(letter["reason"].split(":")[0] for letter in letters)
    assert reasons == ["no_trace_number", "not_a_command", "not_json", "oversize"]
    assert all(letter["value_b64"] and letter["topic"] == settings.commands_topic for letter in letters)
    assert [e.trace_number for e in sandbox.state.ledger.executions] == ["B5"]
