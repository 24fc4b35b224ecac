"""The operator's CLI against the sandbox over a real socket and the real Kafka broker.

Each command runs as an operator runs it: settings from ``ECASH_*`` environment variables, its own event
loop (a thread here, since the test's loop serves the sandbox and the worker), output captured.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from ecash_dev.sandbox.faults import FaultKind, FaultRule
from ecash_dev.sandbox.server import RunningSandbox, serve_sandbox
from ecash_dev.sandbox.state import SandboxConfig, WalletSpec
from tests.integration.harness import (
    command,
    create_topics,
    fast_settings,
    produce,
    running_worker,
    settings_env,
    wait_results,
)
from worker.client import CommandClient, TopicMissing, Topics
from worker.commandline import parse
from worker.contracts import Attempt, Command, Outcome, ResolvedBy, Result, ReviewRecord
from worker.ecash.client import EcashClient
from worker.ecash.models import WIB
from worker.ecash.wire import Operation
from worker.kafka.admin import kafka_client_kwargs
from worker.ops import api_cli, reconcile, review, send
from worker.settings import Settings

RICH = "0811000000001"
POOR = "0811000000002"
UNKNOWN = "0819999999999"
UNRESOLVED_TRACE = "U1"


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    config = SandboxConfig(
        wallets=[
            WalletSpec(msisdn=RICH, balance=Decimal("1000000"), name="Rich Member"),
            WalletSpec(msisdn=POOR, balance=Decimal("500")),
        ],
        faults=[  # U1: the Charge executes but its answer is lost, and Status Inquiry never answers
            FaultRule(
                operation=Operation.CHARGE,
                kind=FaultKind.RESET_AFTER_COMMIT,
                trace_numbers=(UNRESOLVED_TRACE,),
            ),
            FaultRule(
                operation=Operation.STATUS,
                kind=FaultKind.HTTP_5XX_BEFORE_COMMIT,
                trace_numbers=(UNRESOLVED_TRACE,),
            ),
        ],
    )
    async with serve_sandbox(config) as running:
        yield running


@pytest.fixture
def api_env(sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch) -> RunningSandbox:
    """The API commands need only the API settings."""
    monkeypatch.setenv("ECASH_API_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("ECASH_NOT_SENT_BACKOFF_INITIAL_S", "0.01")
    monkeypatch.setenv("ECASH_NOT_SENT_BACKOFF_MAX_S", "0.05")
    return sandbox


@pytest.fixture
async def settings(
    kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Topics of the test's own, created; the same settings in the environment, for the CLI."""
    prefix = f"ops{uuid.uuid4().hex[:10]}"
    built = fast_settings(kafka_bootstrap, sandbox.base_url, prefix, tmp_path)
    await create_topics(built)
    for name, value in settings_env(built).items():
        monkeypatch.setenv(name, value)
    return built


# --- running a command ------------------------------------------------------------------------------


def _parse(module: ModuleType, argv: tuple[str, ...]) -> SimpleNamespace:
    return parse(module.command, argv[1:], argv[0])


async def cli(module: ModuleType, *argv: str) -> tuple[int, str, str]:
    """Run ``ecash-worker ARGV`` (output is JSON unless asked: stdout is not a terminal)."""
    args = _parse(module, argv)
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(module.run, args, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


async def cli_json(module: ModuleType, *argv: str, expect: int = 0) -> Any:
    code, out, err = await cli(module, *argv)
    assert code == expect, f"exit {code}, stderr: {err}"
    return json.loads(out)


def today() -> str:
    return datetime.now(WIB).date().isoformat()


async def charge_directly(
    sandbox: RunningSandbox, trace: str, msisdn: str = RICH, amount: str = "1000"
) -> None:
    """A Charge that never went through Kafka: money moves, no result is ever published for it."""
    settings = Settings(api_base_url=sandbox.base_url)
    async with EcashClient(settings) as client:
        answer = await client.charge(msisdn=msisdn, amount=Decimal(amount), trace_number=trace)
    assert answer.response_code == "PROCESSED"


async def publish(settings: Settings, topic: str, key: str, value: bytes | None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=key.encode())
    finally:
        await producer.stop()


async def read_messages(settings: Settings, topic: str, count: int, timeout_s: float = 10.0) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None)
    await consumer.start()
    messages: list[Any] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout_s
        while len(messages) < count and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                messages.extend(batch)
    finally:
        await consumer.stop()
    return messages


def review_record(
    trace: str, msisdn: str = RICH, *, state: str = "open", minutes_ago: int = 10
) -> ReviewRecord:
    opened = datetime.now(WIB) - timedelta(minutes=minutes_ago)
    return ReviewRecord(
        trace_number=trace,
        state=state,
        command=Command(type="charge", trace_number=trace, msisdn=msisdn, amount=Decimal("25000")),
        source_partition=1,
        source_offset=7,
        attempts=[
            Attempt(
                at=opened, operation="charge", outcome_class="ambiguous", detail="read timeout after 10 s"
            ),
            Attempt(at=opened, operation="status", outcome_class="ambiguous", detail="HTTP 503"),
        ],
        last_known_state="ambiguous: no status answer",
        opened_at=opened,
        closed_at=opened + timedelta(minutes=5) if state == "closed" else None,
        closed_outcome=Outcome.FAILED if state == "closed" else None,
        closed_by="alice" if state == "closed" else None,
        close_reason="not in history" if state == "closed" else None,
    )


def succeeded_result(trace: str, msisdn: str = RICH, amount: str = "1000") -> Result:
    return Result(
        event_id=str(uuid.uuid4()),
        trace_number=trace,
        type="charge",
        msisdn=msisdn,
        amount=Decimal(amount),
        outcome=Outcome.SUCCEEDED,
        response_code="PROCESSED",
        resolved_by=ResolvedBy.RESPONSE,
        detail="planted by the test",
        completed_at=datetime.now(WIB),
    )


# --- api ----------------------------------------------------------------------------------------


async def test_api_balance_and_validate_answer_from_the_wallet(api_env: RunningSandbox) -> None:
    balance = await cli_json(api_cli, "api", "balance", RICH)
    assert balance["status"] == "PROCESSED"
    assert balance["account_balance"] == "1000000"
    validate = await cli_json(api_cli, "api", "validate", RICH)
    assert (validate["name"], validate["kyc"], validate["status"]) == ("Rich Member", True, "PROCESSED")


async def test_api_another_code_exits_1_with_its_description(api_env: RunningSandbox) -> None:
    code, out, err = await cli(api_cli, "api", "balance", UNKNOWN)
    assert code == 1
    assert json.loads(out) == {
        "operation": "balance",
        "status": "MEMBER_NOT_FOUND",
        "description": "Member is not registered in the system",
    }
    assert "balance answered MEMBER_NOT_FOUND (Member is not registered in the system)" in err


async def test_api_ticket_is_masked_unless_asked(api_env: RunningSandbox) -> None:
    code, out, _ = await cli(api_cli, "api", "ticket", RICH, "--output", "table")
    assert code == 0
    assert "ticket    **********" in out
    shown = await cli_json(api_cli, "api", "ticket", RICH, "--show-secret")
    assert len(shown["ticket"]) == 49
    assert shown["ticket"] != "**********"


async def test_api_status_says_whether_a_trace_number_was_executed(api_env: RunningSandbox) -> None:
    await charge_directly(api_env, "S1", amount="1500")
    found = await cli_json(api_cli, "api", "status", "S1", "--amount", "1500")
    assert (found["status"], found["description"]) == ("PROCESSED", "Transaction is success")
    missing = await cli_json(api_cli, "api", "status", "NEVER", "--amount", "1500", expect=1)
    assert missing["status"] == "PAYMENT_NOT_FOUND"


async def test_api_history_one_page_or_every_page(api_env: RunningSandbox) -> None:
    for trace in ("H1", "H2", "H3"):
        await charge_directly(api_env, trace, amount="1000")
    span = ("--from", today(), "--to", today(), "--page-size", "2")
    code, out, err = await cli(api_cli, "api", "history", RICH, *span)
    assert code == 0
    assert len(json.loads(out)) == 2
    assert "more may follow" in err
    every = await cli_json(api_cli, "api", "history", RICH, *span, "--all")
    assert sorted(row["trace_suffix"] for row in every) == ["H1", "H2", "H3"]
    assert {row["amount"] for row in every} == {"-1000"}
    code, table, _ = await cli(api_cli, "api", "history", RICH, *span, "--all", "--output", "csv")
    assert table.splitlines()[0].startswith("trx_datetime,trace_number,trace_suffix,amount")
    assert len(table.splitlines()) == 4


async def test_api_unreachable_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECASH_API_BASE_URL", "http://127.0.0.1:9/eCashHost")  # discard port: refused
    monkeypatch.setenv("ECASH_NOT_SENT_BACKOFF_INITIAL_S", "0.01")
    monkeypatch.setenv("ECASH_NOT_SENT_BACKOFF_MAX_S", "0.05")
    code, out, err = await cli(api_cli, "api", "balance", RICH)
    assert (code, out) == (3, "")
    assert "did not answer" in err


async def test_api_configuration_errors_exit_2(
    api_env: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECASH_API_KEY", "a-wrong-key")
    code, _, err = await cli(api_cli, "api", "validate", RICH)
    assert code == 2
    assert "INVALID_CREDENTIAL" in err
    assert "a-wrong-key" not in err
    monkeypatch.setenv("ECASH_API_BASE_URL", "ftp://nowhere")
    code, _, err = await cli(api_cli, "api", "validate", RICH)
    assert code == 2
    assert "ECASH_API_BASE_URL" in err


# --- send ---------------------------------------------------------------------------------------


@pytest.mark.kafka
async def test_send_returns_the_result_the_worker_published(settings: Settings) -> None:
    async with running_worker(settings):
        ok = await cli_json(
            send, "send", "charge", "--msisdn", RICH, "--amount", "1000", "--trace-number", "SEND1"
        )
        declined = await cli_json(send, "send", "charge", "--msisdn", POOR, "--amount", "1000", expect=1)
    assert (ok["trace_number"], ok["outcome"], ok["response_code"]) == ("SEND1", "succeeded", "PROCESSED")
    assert ok["amount"] == "1000"
    assert (declined["outcome"], declined["response_code"]) == ("declined", "NOT_ENOUGH_CREDITS")


@pytest.mark.kafka
async def test_send_does_not_mistake_an_old_result_and_gives_up_after_the_wait(settings: Settings) -> None:
    await publish(settings, settings.results_topic, RICH, succeeded_result("OLD1").model_dump_json().encode())
    code, out, err = await cli(
        send, "send", "credit", "--msisdn", RICH, "--amount", "5", "--trace-number", "OLD1", "--wait-s", "1"
    )
    assert (code, out) == (5, "")
    assert "no result for trace number OLD1 within 1 s" in err
    produced = await read_messages(settings, settings.commands_topic, 1)
    assert [(m.key, json.loads(m.value)["trace_number"]) for m in produced] == [(RICH.encode(), "OLD1")]


@pytest.mark.kafka
async def test_send_no_wait_produces_a_valid_command_keyed_by_msisdn(settings: Settings) -> None:
    sent = await cli_json(send, "send", "credit", "--msisdn", RICH, "--amount", "1500.50", "--no-wait")
    produced = await read_messages(settings, settings.commands_topic, 1)
    assert len(produced) == 1
    assert produced[0].key == RICH.encode()
    assert (produced[0].partition, produced[0].offset) == (sent["partition"], sent["offset"])
    command_sent = Command.model_validate_json(produced[0].value)
    assert command_sent.trace_number == sent["trace_number"]
    assert (command_sent.type, command_sent.amount) == ("credit", Decimal("1500.50"))


@pytest.mark.kafka
async def test_send_to_a_missing_topic_or_an_unreachable_broker(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECASH_COMMANDS_TOPIC", f"{settings.commands_topic}-missing")
    code, _, err = await cli(send, "send", "charge", "--msisdn", RICH, "--amount", "1")
    assert code == 2
    assert "ECASH_COMMANDS_TOPIC" in err
    monkeypatch.setenv("ECASH_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    code, _, err = await cli(send, "send", "charge", "--msisdn", RICH, "--amount", "1")
    assert code == 3
    assert "Kafka at 127.0.0.1:9 did not answer" in err


@pytest.mark.kafka
async def test_the_python_client_sends_concurrently_through_one_producer_and_matches_by_trace_number(
    settings: Settings,
) -> None:
    """worker.client without the worker's Settings: bootstrap servers, topics and the Kafka options only."""
    topics = Topics(settings.commands_topic, settings.results_topic, settings.dlq_topic)
    # an older result with a trace number sent again below: never taken for the new command's
    await publish(settings, settings.results_topic, RICH, succeeded_result("PYC3").model_dump_json().encode())
    commands = [
        Command(type="charge", trace_number="PYC1", msisdn=RICH, amount="1000"),
        Command(type="charge", trace_number="PYC2", msisdn=POOR, amount="1000"),
        Command(type="credit", trace_number="PYC3", msisdn=UNKNOWN, amount="5"),
    ]
    async with running_worker(settings):
        client = CommandClient(
            settings.kafka_bootstrap_servers, topics=topics, client_kwargs=kafka_client_kwargs(settings)
        )
        async with client:
            producer = client._producer
            answers = await asyncio.gather(*(client.send_and_wait(c, timeout_s=60) for c in commands))
            assert client._producer is producer  # one producer for every call
            repeated = await client.send_and_wait(
                commands[0], timeout_s=60
            )  # a duplicate: the journal answers
            nothing = await client.send_and_wait(commands[1], timeout_s=0.01)
    assert [(a.sent.trace_number, a.result and a.result.outcome) for a in answers] == [
        ("PYC1", Outcome.SUCCEEDED),
        ("PYC2", Outcome.DECLINED),
        ("PYC3", Outcome.DECLINED),
    ]
    assert all(a.result is not None and a.result.trace_number == a.sent.trace_number for a in answers)
    assert answers[2].result is not None
    assert answers[2].result.response_code == "MEMBER_NOT_FOUND"  # not the old succeeded one
    assert repeated.result is not None
    assert (repeated.result.outcome, repeated.result.resolved_by) == (Outcome.SUCCEEDED, ResolvedBy.JOURNAL)
    assert repeated.result.event_id != answers[0].result.event_id  # type: ignore[union-attr]
    assert not nothing.answered
    assert nothing.sent.topic == settings.commands_topic
    with pytest.raises(TopicMissing):
        async with CommandClient(
            settings.kafka_bootstrap_servers, topics=Topics(settings.commands_topic, "no-such-results")
        ) as lost:
            await lost.send_and_wait(commands[0], timeout_s=1)


# --- review ---------------------------------------------------------------------------------------


@pytest.mark.kafka
async def test_review_list_shows_open_items_and_show_the_evidence(settings: Settings) -> None:
    for record in (
        review_record("R1", minutes_ago=30),
        review_record("R2", POOR, minutes_ago=20),
        review_record("R3", minutes_ago=10),
        review_record("R2", POOR, state="closed"),
    ):
        await publish(settings, settings.review_topic, record.trace_number, record.model_dump_json().encode())
    listed = await cli_json(review, "review", "list")
    assert [(item["trace_number"], item["msisdn"]) for item in listed] == [
        ("R1", "*********0001"),
        ("R3", "*********0001"),
    ]
    assert (listed[0]["amount"], listed[0]["type"]) == ("25000", "charge")
    assert listed[0]["last_known_state"] == "ambiguous: no status answer"
    shown = await cli_json(review, "review", "show", "R1")
    assert shown["command"]["msisdn"] == RICH
    assert [a["detail"] for a in shown["attempts"]] == ["read timeout after 10 s", "HTTP 503"]
    code, table, _ = await cli(review, "review", "show", "R2", "--output", "table")
    assert code == 0
    assert "closed_by         alice" in table
    code, _, err = await cli(review, "review", "show", "NOPE")
    assert code == 1
    assert "no review record for trace number NOPE" in err


@pytest.mark.kafka
async def test_review_resolve_sends_the_decision_to_the_commands_partition(settings: Settings) -> None:
    await publish(settings, settings.review_topic, "R1", review_record("R1").model_dump_json().encode())
    await publish(
        settings, settings.review_topic, "R9", review_record("R9", state="closed").model_dump_json().encode()
    )
    decided = ("--by", "alice", "--reason", "PROCESSED by Status Inquiry at 10:02")
    code, _, err = await cli(review, "review", "resolve", "NOPE", "--outcome", "failed", *decided)
    assert code == 2
    assert "no review record for trace number NOPE" in err
    code, _, err = await cli(review, "review", "resolve", "R9", "--outcome", "failed", *decided)
    assert code == 2
    assert "already closed" in err
    sent = await cli_json(review, "review", "resolve", "R1", "--outcome", "succeeded", *decided, "--no-wait")
    produced = await read_messages(settings, settings.review_decisions_topic, 1)
    assert len(produced) == 1
    assert produced[0].key == RICH.encode()
    # the item's command partition (review_record: source_partition 1), whatever the MSISDN hashes to
    assert (produced[0].partition, produced[0].offset) == (1, sent["offset"])
    assert sent["partition"] == 1
    assert await read_messages(settings, settings.commands_topic, 1, timeout_s=1) == []
    assert json.loads(produced[0].value) == {
        "schema_version": 1,
        "type": "review_decision",
        "trace_number": "R1",
        "msisdn": RICH,
        "outcome": "succeeded",
        "decided_by": "alice",
        "reason": "PROCESSED by Status Inquiry at 10:02",
        "transaction_number": None,
        "source_partition": 1,
        "source_offset": 7,
    }


@pytest.mark.kafka
async def test_review_resolve_says_at_once_when_the_worker_refuses_the_decision(settings: Settings) -> None:
    # A planted review record the worker's journal knows nothing about: the worker dead-letters the decision.
    await publish(settings, settings.review_topic, "R5", review_record("R5").model_dump_json().encode())
    async with running_worker(settings):
        started = time.monotonic()
        code, out, err = await cli(
            review,
            *("review", "resolve", "R5", "--outcome", "failed", "--by", "bob", "--reason", "x"),
            "--wait-s",
            "30",
        )
    assert (code, out) == (1, "")
    assert "the worker refused the decision: review_decision_not_applicable" in err
    assert time.monotonic() - started < 20


@pytest.mark.kafka
async def test_an_unresolved_charge_is_resolved_by_an_operator_and_reconciles(settings: Settings) -> None:
    await produce(settings, [command(UNRESOLVED_TRACE, RICH, 7000), command("OK1", RICH, 1000)])
    async with running_worker(settings):
        listed = (await _review_list_until(lambda items: UNRESOLVED_TRACE in items))[UNRESOLVED_TRACE]
        assert listed["msisdn"] == "*********0001"
        code, _, err = await cli(api_cli, "api", "status", UNRESOLVED_TRACE, "--amount", "7000")
        assert code == 3  # Status Inquiry cannot answer for this trace: the operator looks at the history
        assert "no usable answer" in err
        final = await cli_json(
            review,
            *("review", "resolve", UNRESOLVED_TRACE, "--outcome", "succeeded", "--by", "alice"),
            *("--reason", "the charge is in the history", "--wait-s", "30"),
        )
        assert (final["outcome"], final["resolved_by"]) == ("succeeded", "manual")
        assert final["trace_number"] == UNRESOLVED_TRACE
        await _review_list_until(lambda items: UNRESOLVED_TRACE not in items)  # closed after the result
    agreed = await cli_json(reconcile, "reconcile", "--from", today(), "--to", today())
    assert agreed["summary"]["agrees"] is True
    assert agreed["summary"]["traces_checked"] == 2


async def _review_list_until(
    predicate: Callable[[dict[str, dict[str, Any]]], bool], timeout_s: float = 30.0
) -> dict[str, dict[str, Any]]:
    """``review list`` again and again until its items (by trace number) satisfy ``predicate``."""
    deadline = time.monotonic() + timeout_s
    while True:
        items = {item["trace_number"]: item for item in await cli_json(review, "review", "list")}
        if predicate(items):
            return items
        assert time.monotonic() < deadline, f"review list never matched; last: {sorted(items)}"
        await asyncio.sleep(0.3)


# --- reconcile -----------------------------------------------------------------------------------


@pytest.mark.kafka
async def test_reconcile_agrees_on_a_clean_run_then_finds_planted_mismatches(
    settings: Settings, sandbox: RunningSandbox
) -> None:
    await produce(
        settings, [command("C1", RICH, 1000), command("C2", RICH, 2500, "credit"), command("C3", POOR, 900)]
    )
    async with running_worker(settings):
        last = await cli_json(send, "send", "charge", "--msisdn", UNKNOWN, "--amount", "5", expect=1)
        assert last["response_code"] == "MEMBER_NOT_FOUND"
        await wait_results(settings, {"C1", "C2", "C3"}, timeout_s=30)
    span = ("reconcile", "--from", today(), "--to", today())
    clean = await cli_json(reconcile, *span)
    assert clean["summary"]["agrees"] is True
    assert clean["summary"]["wallets_checked"] == 3

    await charge_directly(sandbox, "GHOST1")  # money moved, no result anywhere
    await publish(
        settings, settings.results_topic, RICH, succeeded_result("PHANTOM1").model_dump_json().encode()
    )
    found = await cli_json(reconcile, *span, expect=1)
    assert {(f["kind"], f["trace_number"]) for f in found["findings"]} == {
        ("money_without_success", "GHOST1"),
        ("success_without_money", "PHANTOM1"),
    }
    ghost = next(f for f in found["findings"] if f["trace_number"] == "GHOST1")
    assert (ghost["msisdn"], ghost["history_amounts"]) == (RICH, ["-1000"])
    code, table, _ = await cli(reconcile, *span, "--output", "table")
    assert code == 1
    assert "money_without_success" in table
    assert table.strip().endswith("money_without_success 1, success_without_money 1")
