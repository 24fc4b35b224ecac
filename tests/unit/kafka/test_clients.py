"""worker/kafka/clients.py is where the product builds its Kafka clients (aiokafka keeps its options in
private attributes: the checks read them)."""

from __future__ import annotations

import ast
from pathlib import Path

from worker.kafka import clients
from worker.settings import Settings

WORKER = Path(__file__).parents[3] / "worker"
# Development tooling on its way out of the product package (issue 15): it builds its own clients.
TOOLING = ("sandbox", "devkafka", "stack", "chaos", "demo", "hostile", "agreement")


def _builds_a_client(node: ast.Call) -> bool:
    name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
    return str(name).startswith("AIOKafka")


def test_only_worker_kafka_builds_kafka_clients() -> None:
    builders = []
    for path in sorted(WORKER.rglob("*.py")):
        relative = path.relative_to(WORKER)
        if relative.parts[0] == "kafka" or relative.parts[0].split(".")[0].startswith(TOOLING):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        builders += [
            f"{relative}:{n.lineno}"
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and _builds_a_client(n)
        ]
    assert builders == []


async def test_the_worker_reads_only_committed_records_and_commits_no_offsets_itself() -> None:
    settings = Settings(group_id="g", kafka_group_instance_id="w-1")
    kwargs: dict[str, object] = {}
    consumers = {
        "commands": clients.commands_consumer(settings, kwargs),
        "decisions": clients.decisions_consumer(settings, kwargs),
        "restore": clients.restore_consumer(settings, kwargs),
        "claims": clients.claims_consumer(settings, kwargs),
        "claims offsets": clients.claims_offsets_consumer(settings, kwargs),
    }
    for name, consumer in consumers.items():
        assert consumer._isolation_level == "read_committed", name
        assert consumer._enable_auto_commit is False, name
    assert consumers["commands"]._group_id == "g"
    assert consumers["commands"]._group_instance_id == "w-1"
    assert all(
        consumers[name]._group_id is None for name in ("decisions", "restore", "claims", "claims offsets")
    )
    assert consumers["claims"]._fetch_max_wait_ms == clients.CLAIMS_FETCH_WAIT_MS


async def test_a_rebalance_is_noticed_within_3_s_whatever_the_session_timeout() -> None:
    # A member hears of a rebalance only in a heartbeat's answer: a new replica waited up to 10 s for its
    # partitions at the default 30 s session (a third of it), and a leaver's partitions had no owner as long.
    consumer = clients.commands_consumer(Settings(group_id="g"), {})
    assert consumer._heartbeat_interval_ms == 3000
    assert consumer._session_timeout_ms == 30_000
    assert clients.heartbeat_interval_ms(6.0) == 2000  # a short session keeps a third of it
    assert clients.heartbeat_interval_ms(300.0) == 3000


async def test_the_producers_client_reads_only_committed_results_and_produces_acks_all() -> None:
    reader = clients.client_reader("k:9092", {}, client_id="c")
    assert reader._isolation_level == "read_committed"
    assert reader._enable_auto_commit is False
    assert reader._group_id is None
    producer = clients.client_producer("k:9092", {}, client_id="c")
    assert producer.client._bootstrap_servers == "k:9092"


async def test_a_transactional_producer_per_partition() -> None:
    producer = clients.transactional_producer(Settings(), {}, "g.commands.3")
    assert producer._txn_manager.transactional_id == "g.commands.3"


async def test_a_transaction_does_not_wait_aiokafka_s_fixed_backoffs_between_transactions() -> None:
    """Back-to-back transactions meet CONCURRENT_TRANSACTIONS while the last one's markers are written:
    aiokafka waits a module constant then (20 ms) and retry_backoff_ms (100 ms) on its other retries."""
    import aiokafka.producer.sender as sender

    assert hasattr(sender, "BACKOFF_OVERRIDE")  # the constant aiokafka returns for that case, still there
    producer = clients.transactional_producer(Settings(), {}, "g.commands.3")
    assert sender.BACKOFF_OVERRIDE == clients.CONCURRENT_TRANSACTIONS_BACKOFF_S == 0.002
    assert producer._sender._retry_backoff == clients.TXN_RETRY_BACKOFF_MS / 1000 == 0.02
    assert producer._sender._txn_manager is not None
