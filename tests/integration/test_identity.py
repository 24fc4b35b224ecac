"""One trace number, one payment, across the deployment: real broker, sandbox over a real socket.

The sandbox executes a repeated trace number again (its default, which the spec allows), so a command
acted on twice would show as two executions in its ledger.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

from ecash_dev.sandbox.faults import FaultKind, FaultRule
from ecash_dev.sandbox.server import RunningSandbox, serve_sandbox
from ecash_dev.sandbox.state import SandboxConfig, WalletSpec
from ecash_dev.stack.topics import read_to_end
from tests.integration.harness import (
    Results,
    command,
    create_topics,
    eventually,
    fast_settings,
    produce_at,
    read_topic,
    running_worker,
    wait_results,
)
from worker.ecash.wire import Operation
from worker.settings import Settings

pytestmark = pytest.mark.kafka

WALLET_A = "0811000000011"
WALLET_B = "0811000000022"
AGENT = "agent01"


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    config = SandboxConfig(
        wallets=[WalletSpec(msisdn=m, balance=Decimal("1000000")) for m in (WALLET_A, WALLET_B)],
        auto_create_wallets=False,
    )
    async with serve_sandbox(config) as running:
        yield running


@pytest.fixture
async def settings(kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path) -> Settings:
    made = fast_settings(kafka_bootstrap, sandbox.base_url, f"t{uuid.uuid4().hex[:10]}", tmp_path)
    await create_topics(made)
    return made


async def results_for(settings: Settings, trace: str, count: int, timeout_s: float = 60.0) -> list[Any]:
    """Wait until ``trace`` has ``count`` distinct results."""
    found: list[Any] = []

    async def enough() -> bool:
        nonlocal found
        try:
            results: Results = await wait_results(settings, {trace}, timeout_s=5)
        except AssertionError:  # none yet (wait_results fails when time runs out): wait on to the deadline
            return False
        found = [e for e in results.distinct().values() if e["trace_number"] == trace]
        return len(found) >= count

    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await enough():
        assert asyncio.get_running_loop().time() < deadline, f"{trace}: {len(found)} of {count} results"
    return found


def executions(sandbox: RunningSandbox, trace: str) -> list[Any]:
    return list(sandbox.state.ledger.find(AGENT, trace))


def acted_on(results: list[Any]) -> list[Any]:
    """Results of a command that moved (or tried to move) money itself: not answered from another's."""
    return [r for r in results if r["resolved_by"] != "journal"]


async def test_an_exact_duplicate_on_another_partition_gets_the_first_outcome(
    settings: Settings, sandbox: RunningSandbox
) -> None:
    charge = command("XP1", WALLET_A, 700)
    first = await produce_at(settings, charge, partition=0)
    second = await produce_at(settings, charge, partition=2)
    async with running_worker(settings):
        results = await results_for(settings, "XP1", 2)
    assert {r["outcome"] for r in results} == {"succeeded"}
    [owner] = acted_on(results)
    [duplicate] = [r for r in results if r["resolved_by"] == "journal"]
    topic = settings.commands_topic
    named = {
        f"duplicate of the command at {topic}[0]@{first}",
        f"duplicate of the command at {topic}[2]@{second}",
    }
    assert any(name in duplicate["detail"] for name in named), duplicate["detail"]
    assert duplicate["transaction_number"] == owner["transaction_number"]
    assert len(executions(sandbox, "XP1")) == 1


@pytest.mark.parametrize("first_wallet", [WALLET_A, WALLET_B])
async def test_a_trace_number_reused_under_another_msisdn_is_rejected_in_either_order(
    settings: Settings, sandbox: RunningSandbox, first_wallet: str
) -> None:
    second_wallet = WALLET_B if first_wallet == WALLET_A else WALLET_A
    async with running_worker(settings):
        first_offset = await produce_at(settings, command("RU1", first_wallet, 900), partition=1)
        [first] = await results_for(settings, "RU1", 1)
        await produce_at(settings, command("RU1", second_wallet, 900), partition=3)
        results = await results_for(settings, "RU1", 2)
    assert first["outcome"] == "succeeded"
    assert first["msisdn"] == first_wallet
    [second] = [r for r in results if r["msisdn"] == second_wallet]
    assert second["outcome"] == "rejected"
    assert f"already owned by the command at {settings.commands_topic}[1]@{first_offset}" in second["detail"]
    assert "nothing was sent" in second["detail"]
    [execution] = executions(sandbox, "RU1")
    assert execution.msisdn == first_wallet


async def test_two_workers_given_one_trace_number_at_the_same_moment_act_on_one(
    settings: Settings, sandbox: RunningSandbox
) -> None:
    pairs = [(a, b) for a in range(4) for b in range(4) if a < b]
    async with running_worker(settings) as one, running_worker(settings) as two:

        def split() -> bool:
            mine, theirs = one.runner.snapshot(), two.runner.snapshot()
            return bool(mine.assigned_partitions) and bool(theirs.assigned_partitions)

        await eventually(split, timeout_s=60)
        owned_by_one = set(one.runner.snapshot().assigned_partitions)
        sends = []
        for index, (a, b) in enumerate(pairs):
            trace = f"SM{index}"
            sends.append(produce_at(settings, command(trace, WALLET_A, 100 + index), partition=a))
            sends.append(produce_at(settings, command(trace, WALLET_B, 100 + index), partition=b))
        await asyncio.gather(*sends)
        per_trace = {f"SM{i}": await results_for(settings, f"SM{i}", 2) for i in range(len(pairs))}
    across = [i for i, (a, b) in enumerate(pairs) if (a in owned_by_one) != (b in owned_by_one)]
    assert across, "no pair spanned the two workers"
    for trace, results in per_trace.items():
        assert sorted(r["outcome"] for r in results) == ["rejected", "succeeded"], trace
        assert len(executions(sandbox, trace)) == 1, trace


async def test_a_commands_topic_that_gained_partitions_keeps_one_payment_per_trace_number(
    kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    settings = fast_settings(
        kafka_bootstrap,
        sandbox.base_url,
        f"t{uuid.uuid4().hex[:10]}",
        tmp_path,
        kafka_metadata_max_age_s=1.0,
    )
    await create_topics(settings)
    charge = command("GP1", WALLET_A, 1200)
    async with running_worker(settings) as worker:
        await produce_at(settings, charge, partition=1)
        await results_for(settings, "GP1", 1)
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            # The operator's order (docs/contracts.md): the co-partitioned topics first, then the commands.
            grown = {
                settings.journal_topic: NewPartitions(total_count=6),
                settings.review_decisions_topic: NewPartitions(total_count=6),
            }
            await admin.create_partitions(grown)
            await admin.create_partitions({settings.commands_topic: NewPartitions(total_count=6)})
        finally:
            await admin.close()
        await eventually(lambda: 5 in worker.runner.snapshot().assigned_partitions, timeout_s=60)
        # The same command again, where the new partition count sends it (or a producer's retry does).
        await produce_at(settings, charge, partition=5)
        results = await results_for(settings, "GP1", 2)
    assert {r["outcome"] for r in results} == {"succeeded"}
    assert len(acted_on(results)) == 1
    assert len(executions(sandbox, "GP1")) == 1


async def test_review_resolve_reaches_an_unresolved_command_that_arrived_on_an_unexpected_partition(
    kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    import io

    from ecash_dev.stack import settings_env
    from worker.commandline import parse
    from worker.ops import review

    settings = fast_settings(
        kafka_bootstrap, sandbox.base_url, f"t{uuid.uuid4().hex[:10]}", tmp_path, resolution_deadline_s=3.0
    )
    await create_topics(settings)
    sandbox.sandbox.faults.replace(
        [
            FaultRule(operation=Operation.CHARGE, kind=FaultKind.HANG_AFTER_COMMIT, trace_numbers=("MR1",)),
            FaultRule(
                operation=Operation.STATUS, kind=FaultKind.HTTP_5XX_BEFORE_COMMIT, trace_numbers=("MR1",)
            ),
        ]
    )
    async with running_worker(settings):
        # Partition 3, wherever murmur2 would have put the wallet: a producer with another partitioner.
        offset = await produce_at(settings, command("MR1", WALLET_A, 400), partition=3)
        [interim] = await results_for(settings, "MR1", 1)
        assert interim["outcome"] == "unresolved"
        reviews = await read_topic(
            kafka_bootstrap,
            settings.review_topic,
            partitions=settings.topic_partitions,
            until=1,
            timeout_s=20,
        )
        assert (reviews[0]["source_partition"], reviews[0]["source_offset"]) == (3, offset)
        args = parse(
            review.command,
            [
                *("resolve", "MR1", "--outcome", "succeeded", "--by", "sre"),
                *("--reason", "the ledger shows it", "--wait-s", "30"),
            ],
        )
        out, err = io.StringIO(), io.StringIO()
        with pytest.MonkeyPatch.context() as env:
            for name, value in settings_env(settings).items():
                env.setenv(name, value)
            code = await asyncio.to_thread(review.run, args, out=out, err=err)
        assert code == 0, err.getvalue()
        results = await results_for(settings, "MR1", 2)
    [final] = [r for r in results if r["resolved_by"] == "manual"]
    assert final["outcome"] == "succeeded"
    assert len(executions(sandbox, "MR1")) == 1


async def test_a_review_decision_on_the_commands_topic_is_dead_lettered_not_applied(
    settings: Settings, sandbox: RunningSandbox
) -> None:
    decision = {
        "type": "review_decision",
        "trace_number": "NOPE1",
        "msisdn": WALLET_A,
        "outcome": "failed",
        "decided_by": "mallory",
        "reason": "a producer of commands should not close reviews",
    }
    async with running_worker(settings):
        await produce_at(settings, decision, partition=0)
        letters = await read_topic(
            settings.kafka_bootstrap_servers,
            settings.dlq_topic,
            partitions=settings.topic_partitions,
            until=1,
            timeout_s=30,
        )
    assert letters[0]["reason"].startswith("review_decision_wrong_topic: ")
    assert settings.review_decisions_topic in letters[0]["reason"]


@pytest.mark.parametrize(("key", "rule"), [(b"", "key_missing"), (b"order-8812", "key_mismatch")])
async def test_a_command_without_its_msisdn_as_key_is_rejected_and_claims_nothing(
    settings: Settings, sandbox: RunningSandbox, key: bytes, rule: str
) -> None:
    charge = command("KY1", WALLET_A, 500)
    async with running_worker(settings):
        await produce_at(settings, charge, partition=2, key=key)
        [refused] = await results_for(settings, "KY1", 1)
        # The producer fixes its key and sends the same command again: the trace number is still free.
        await produce_at(settings, charge, partition=2)
        results = await results_for(settings, "KY1", 2)
    assert refused["outcome"] == "rejected"
    assert f"[{rule}]" in refused["detail"]
    assert WALLET_A in refused["detail"]
    [accepted] = [r for r in results if r["event_id"] != refused["event_id"]]
    assert (accepted["outcome"], accepted["resolved_by"]) == ("succeeded", "response")
    assert len(executions(sandbox, "KY1")) == 1


async def test_after_the_dedupe_window_a_trace_number_is_free_again_everywhere(
    kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """What docs/contracts.md promises producers: remembered for the window, deployment-wide; then free."""
    settings = fast_settings(
        kafka_bootstrap, sandbox.base_url, f"t{uuid.uuid4().hex[:10]}", tmp_path, dedupe_window_s=2.0
    )
    await create_topics(settings)
    charge = command("DW1", WALLET_A, 300)
    async with running_worker(settings):
        await produce_at(settings, charge, partition=0)
        await results_for(settings, "DW1", 1)
        await produce_at(settings, charge, partition=1)  # within the window, elsewhere: a duplicate
        within = await results_for(settings, "DW1", 2)
    assert len(acted_on(within)) == 1
    await asyncio.sleep(2.5)
    # A restart: each partition's new owner tombstones its final journal records and claims past the window.
    async with running_worker(settings) as worker:
        await produce_at(settings, charge, partition=3)
        after = await results_for(settings, "DW1", 3)
        # partition 0's activation (which writes the tombstones) may end after partition 3's
        await eventually(lambda: 0 in worker.runner.snapshot().assigned_partitions, timeout_s=30)
    claims = await read_to_end(kafka_bootstrap, settings.claims_topic)
    assert len(acted_on(after)) == 2
    assert len(executions(sandbox, "DW1")) == 2
    first_claim = f"{settings.commands_topic}:0:".encode()
    # the first command's claim: claimed, final, then tombstoned by the restarted owner of partition 0
    mine = [r for r in claims if r.key is not None and r.key.startswith(first_claim)]
    assert mine[-1].value is None, [(r.offset, r.timestamp_ms, (r.value or b"")[:80]) for r in mine]
