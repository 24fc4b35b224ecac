"""Corroborate before believing (issue 14): real Kafka, the sandbox over real sockets, faults through its
admin API.

Status Inquiry is asked by trace number and amount only. Another wallet's transaction (made by another
system on the same agent) with our trace number and amount makes it answer PROCESSED for a command whose
money never moved: that command must not end ``succeeded``. A command whose money did move still does.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecash_dev.sandbox.server import RunningSandbox, serve_sandbox
from ecash_dev.sandbox.state import SandboxConfig, WalletSpec
from tests.integration.harness import (
    command,
    create_topics,
    fast_settings,
    produce,
    read_topic,
    running_worker,
    wait_results,
)
from worker.ecash.client import EcashClient
from worker.ecash.codes import CallClass
from worker.settings import Settings

pytestmark = pytest.mark.kafka

WALLET_A = "0815000000001"  # our command's wallet
WALLET_B = "0815000000002"  # another wallet, charged by another system on the same agent


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    config = SandboxConfig(
        wallets=[
            WalletSpec(msisdn=WALLET_A, balance=Decimal("100000")),
            WalletSpec(msisdn=WALLET_B, balance=Decimal("100000")),
        ]
    )
    async with serve_sandbox(config) as running:
        yield running


async def admin(sandbox: RunningSandbox, method: str, path: str, body: Any = None) -> Any:
    async with httpx.AsyncClient(base_url=sandbox.url + "/admin", timeout=10) as client:
        response = await client.request(method, path, json=body)
        response.raise_for_status()
        return response.json()


async def another_system_moves(
    settings: Settings, kind: str, msisdn: str, amount: int, trace: str
) -> dict[str, Any]:
    """A Charge or Credit made directly on the API with the worker's agent, not through the worker."""
    async with EcashClient(settings) as client:
        call = client.charge if kind == "charge" else client.credit
        answer = await call(msisdn=msisdn, amount=Decimal(amount), trace_number=trace)
    assert answer.call_class is CallClass.SUCCEEDED, answer
    return {"transaction_number": answer.transaction_number}


def settings_for(kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path, **extra: Any) -> Settings:
    return fast_settings(kafka_bootstrap, sandbox.base_url, f"cor{uuid.uuid4().hex[:8]}", tmp_path, **extra)


async def test_a_processed_for_another_wallets_transaction_never_makes_ours_succeeded(
    kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    settings = settings_for(kafka_bootstrap, sandbox, tmp_path, resolution_deadline_s=3.0)
    await create_topics(settings)
    # Today, another system on our agent charged wallet B 700 with trace number X1, and credited wallet A
    # 500 with trace number Y1.
    theirs = await another_system_moves(settings, "charge", WALLET_B, 700, "X1")
    await another_system_moves(settings, "credit", WALLET_A, 500, "Y1")
    # Our charges of wallet A with the same trace numbers and amounts get a 5xx before the sandbox executes
    # them: ambiguous, and no money moved.
    await admin(
        sandbox,
        "POST",
        "/faults",
        ["charge:http_5xx_before_commit:trace=X1|Y1"],
    )
    await produce(settings, [command("X1", WALLET_A, 700, "charge"), command("Y1", WALLET_A, 500, "charge")])
    async with running_worker(settings):
        results = await wait_results(settings, {"X1", "Y1"}, timeout_s=60)
        reviews = await read_topic(
            kafka_bootstrap,
            settings.review_topic,
            partitions=settings.topic_partitions,
            until=2,
            timeout_s=20,
        )
    by_trace = {t: events for t, events in results.by_trace().items()}
    assert {t: len(events) for t, events in by_trace.items()} == {"X1": 1, "Y1": 1}
    x1, y1 = by_trace["X1"][0], by_trace["Y1"][0]
    assert (x1["outcome"], x1["resolved_by"]) == ("unresolved", "status_inquiry")
    assert (y1["outcome"], y1["resolved_by"]) == ("unresolved", "status_inquiry")
    assert x1["transaction_number"] is None
    assert (
        f"Status Inquiry answered PROCESSED but the Transaction History of MSISDN {WALLET_A} does not show "
        "trace number X1"
    ) in x1["detail"]
    # Y1 is in wallet A's History, but as the other system's credit: not our charge.
    assert (f"the Transaction History of MSISDN {WALLET_A} shows trace number Y1 only as transaction ") in y1[
        "detail"
    ]
    assert "with amount Rp 500,00 (a charge of 500 would show as -500)" in y1["detail"]
    # The review records carry the evidence in their attempts: the charge, then uncorroborated PROCESSEDs.
    review = {r["command"]["trace_number"]: r for r in reviews}
    for trace in ("X1", "Y1"):
        attempts = review[trace]["attempts"]
        assert attempts[0]["operation"] == "charge"
        statuses = [a for a in attempts if a["operation"] == "status"]
        assert len(statuses) >= 2, trace
        assert {a["outcome_class"] for a in statuses} == {"uncorroborated"}
        assert all(a["response_code"] == "PROCESSED" for a in statuses)
        assert all(a["detail"].startswith("Status Inquiry answered PROCESSED but") for a in statuses)
        assert "uncorroborated" in review[trace]["last_known_state"]
    # The ledger: our charges never executed; only the other system's two movements are there.
    ledger_a = await admin(sandbox, "GET", f"/ledger?msisdn={WALLET_A}")
    assert [(e["type"], e["trace_number"]) for e in ledger_a["executions"]] == [("credit", "Y1")]
    ledger_x1 = await admin(sandbox, "GET", "/ledger?trace_number=X1")
    assert [(e["msisdn"], e["transaction_number"]) for e in ledger_x1["executions"]] == [
        (WALLET_B, theirs["transaction_number"])
    ]
    stats = await admin(sandbox, "GET", "/stats")
    assert stats["codes"]["status"]["PROCESSED"] >= 4  # Status Inquiry did say PROCESSED, again and again
    assert stats["calls"]["history"] >= 4


async def test_an_ambiguous_charge_that_executed_still_succeeds_with_its_transaction_number(
    kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    settings = settings_for(kafka_bootstrap, sandbox, tmp_path)
    await create_topics(settings)
    await admin(
        sandbox,
        "PUT",
        "/faults",
        ["charge:reset_after_commit:trace=P1", "credit:hang_after_commit:trace=P2"],
    )
    await produce(settings, [command("P1", WALLET_A, 1200, "charge"), command("P2", WALLET_B, 300, "credit")])
    async with running_worker(settings):
        results = await wait_results(settings, {"P1", "P2"}, timeout_s=60)
    ledger = (await admin(sandbox, "GET", "/ledger"))["executions"]
    executed = {e["trace_number"]: e for e in ledger}
    assert sorted(executed) == ["P1", "P2"]
    for trace, msisdn in (("P1", WALLET_A), ("P2", WALLET_B)):
        [result] = results.by_trace()[trace]
        assert (result["outcome"], result["resolved_by"]) == ("succeeded", "status_inquiry")
        assert result["response_code"] == "PROCESSED"
        assert result["transaction_number"] == executed[trace]["transaction_number"]
        assert result["trx_datetime"]
        assert f"the Transaction History of MSISDN {msisdn} shows trace number {trace}" in result["detail"]


async def test_history_that_cannot_be_read_at_first_only_delays_the_success(
    kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """History answers 5xx to the first read (all its retries): that PROCESSED is not believed; the next
    inquiry's History read succeeds and corroborates it."""
    settings = settings_for(kafka_bootstrap, sandbox, tmp_path)
    await create_topics(settings)
    retries = settings.not_sent_retry_attempts
    await admin(
        sandbox,
        "PUT",
        "/faults",
        ["charge:reset_after_commit:trace=H1", f"history:http_5xx_before_commit:count={retries}"],
    )
    await produce(settings, [command("H1", WALLET_A, 800, "charge")])
    async with running_worker(settings):
        results = await wait_results(settings, {"H1"}, timeout_s=60)
    [result] = results.by_trace()["H1"]
    assert (result["outcome"], result["resolved_by"]) == ("succeeded", "status_inquiry")
    [execution] = (await admin(sandbox, "GET", "/ledger?trace_number=H1"))["executions"]
    assert result["transaction_number"] == execution["transaction_number"]
    faults = (await admin(sandbox, "GET", "/faults"))["faults"]
    assert [f["applied"] for f in faults if f["operation"] == "history"] == [retries]
    stats = await admin(sandbox, "GET", "/stats")
    assert stats["codes"]["status"]["PROCESSED"] >= 2  # the first PROCESSED was not believed
