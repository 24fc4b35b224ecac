"""Every Kafka consumer and producer the product builds, one factory per use (none is started here).

Each takes the settings and the client options of ``worker.kafka.admin.kafka_client_kwargs`` (TLS, SASL:
built once at start, and never logged: they hold the SASL password). The worker's own clients:

- ``commands_consumer``: the group member that owns command partitions (sticky assignment, static
  membership with ``ECASH_KAFKA_GROUP_INSTANCE_ID``, ``read_committed``, offsets only in transactions);
- ``decisions_consumer``: the review decisions, assigned by hand alongside the owned command partitions;
- ``restore_consumer``: a journal partition read to its end before a partition is taken;
- ``claims_consumer``: the whole claims topic, followed closely;
- ``claims_offsets_consumer``: the claims topic's offsets, asked beside the follower's held fetch;
- ``transactional_producer``: one per owned command partition (starting it fences the previous owner).

The operator's commands (``worker.ops``): ``reader_consumer``, ``acks_all_producer`` and ``admin_client``.
The producers' Python client (``worker.client``, which needs no ``Settings``, only the bootstrap servers and
the client options): ``client_producer`` and ``client_reader``.
(The start-up's own admin clients are in ``worker.kafka.admin`` and ``worker.kafka.topics``.)
"""

from __future__ import annotations

import aiokafka.producer.sender
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor

from worker.kafka.admin import ClientKwargs
from worker.settings import Settings

__all__ = [
    "CLAIMS_FETCH_WAIT_MS",
    "CONCURRENT_TRANSACTIONS_BACKOFF_S",
    "TXN_RETRY_BACKOFF_MS",
    "acks_all_producer",
    "admin_client",
    "claims_consumer",
    "claims_offsets_consumer",
    "client_producer",
    "client_reader",
    "commands_consumer",
    "decisions_consumer",
    "heartbeat_interval_ms",
    "reader_consumer",
    "restore_consumer",
    "transactional_producer",
]

# How long the broker may hold the claims follower's fetch while nothing is new. A read_committed fetch is
# answered as soon as a transaction's commit marker passes a claim, so this does not delay a claim's read
# back; it bounds how often an idle follower asks. At 10 ms each worker sent ~100 fetches a second to the
# broker with no traffic at all (0.07-0.08 cores of an idle worker, 0.10-0.12 of the broker's, against
# 0.03 and 0.06 at 500 ms; docs/performance.md, "An idle worker, warm restarts, and the onset of a load").
# The offsets are asked through claims_offsets_consumer, not behind this hold.
CLAIMS_FETCH_WAIT_MS = 500
WORKER_CLIENT_ID = "ecash-worker"
# A partition writer's transactions follow one another (group commit): the next one's AddPartitionsToTxn
# often arrives while the broker still writes the last one's commit markers, and is refused with
# CONCURRENT_TRANSACTIONS (KAFKA-5477) until they are written, a few milliseconds. aiokafka then waits a
# fixed 20 ms (its BACKOFF_OVERRIDE), and its other transactional retries retry_backoff_ms (100 ms by
# default), each a wait every command pays three times (claim, intent, outcome). Measured on our broker
# (python -m bench.txn_probe; docs/performance.md): a transaction of 20 records and an offset, mean
# 42.7 ms with aiokafka's waits, 15.9 ms with these. The 2 ms applies only to a transaction's first
# AddPartitionsToTxn while the broker answers CONCURRENT_TRANSACTIONS; a broker stuck in that state gets
# one small request per 2 ms per partition until the writer's commit bound (WriterPolicy.commit_timeout_s,
# 30 s) loses the partition and stops its producer.
CONCURRENT_TRANSACTIONS_BACKOFF_S = 0.002
TXN_RETRY_BACKOFF_MS = 20


def heartbeat_interval_ms(session_timeout_s: float) -> int:
    """How often the group member heartbeats: a third of the session, but at most 3 s (Kafka's default).

    A member learns that its group is rebalancing only from a heartbeat's answer, so this bounds how long
    a new replica (a scale-out, a rolling update's new pod) waits for its partitions, and how long the
    partitions of a replica that left stay with nobody. At 30 s / 3 that was up to 10 s, measured
    (docs/performance.md, "Scale-out")."""
    return max(1000, min(3000, int(session_timeout_s * 1000 / 3)))


def commands_consumer(settings: Settings, client_kwargs: ClientKwargs) -> AIOKafkaConsumer:
    """The worker's group member on the commands topic (the runner subscribes it)."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.group_id,
        group_instance_id=settings.kafka_group_instance_id,
        partition_assignment_strategy=(StickyPartitionAssignor,),
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=int(settings.kafka_session_timeout_s * 1000),
        heartbeat_interval_ms=heartbeat_interval_ms(settings.kafka_session_timeout_s),
        rebalance_timeout_ms=int(settings.kafka_rebalance_timeout_s * 1000),
        max_poll_interval_ms=max(300_000, int(settings.kafka_rebalance_timeout_s * 1000)),
        max_partition_fetch_bytes=1024 * 1024,
        metadata_max_age_ms=int(settings.kafka_metadata_max_age_s * 1000),
        client_id=WORKER_CLIENT_ID,
        **client_kwargs,
    )


def decisions_consumer(settings: Settings, client_kwargs: ClientKwargs) -> AIOKafkaConsumer:
    """The review decisions: no group (partitions assigned by the runner, offsets in its transactions)."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        metadata_max_age_ms=int(settings.kafka_metadata_max_age_s * 1000),
        client_id="ecash-worker-decisions",
        **client_kwargs,
    )


def restore_consumer(settings: Settings, client_kwargs: ClientKwargs) -> AIOKafkaConsumer:
    """A journal partition's restore: only what owners committed, never a fenced zombie's writes."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        group_id=None,
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
        **client_kwargs,
    )


def claims_consumer(settings: Settings, client_kwargs: ClientKwargs) -> AIOKafkaConsumer:
    """The whole claims topic, followed closely: a claim waits for it before any money call."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        group_id=None,
        isolation_level="read_committed",
        fetch_max_wait_ms=CLAIMS_FETCH_WAIT_MS,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
        client_id="ecash-worker-claims",
        **client_kwargs,
    )


def claims_offsets_consumer(settings: Settings, client_kwargs: ClientKwargs) -> AIOKafkaConsumer:
    """The claims topic's offsets (``read_committed``: its end offsets are the last stable ones), asked on a
    connection of their own, never behind the follower's held fetch: a reader that assigns nothing, so it
    never fetches."""
    return reader_consumer(settings, client_kwargs, client_id="ecash-worker-claims-offsets")


def transactional_producer(
    settings: Settings, client_kwargs: ClientKwargs, transactional_id: str
) -> AIOKafkaProducer:
    """One per owned command partition (worker/pipeline/ownership.py)."""
    # aiokafka has no option for it: its module constant, set before any transaction (a test holds aiokafka
    # to having it: tests/unit/kafka/test_clients.py).
    aiokafka.producer.sender.BACKOFF_OVERRIDE = CONCURRENT_TRANSACTIONS_BACKOFF_S
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        transactional_id=transactional_id,
        transaction_timeout_ms=60_000,
        enable_idempotence=True,
        acks="all",
        linger_ms=0,  # the writer gathers a transaction's records itself (ECASH_TXN_FLUSH_INTERVAL_S)
        max_batch_size=256 * 1024,
        request_timeout_ms=30_000,
        retry_backoff_ms=TXN_RETRY_BACKOFF_MS,
        client_id=WORKER_CLIENT_ID,
        **client_kwargs,
    )


def reader_consumer(settings: Settings, client_kwargs: ClientKwargs, *, client_id: str) -> AIOKafkaConsumer:
    """A consumer without a group for the operator's commands: it assigns partitions itself, commits
    nothing. ``read_committed``, as every consumer of the worker's topics must read (README): the workers
    write results, review items and the journal in transactions, and a transaction that was aborted (a
    fenced worker's) or is still open must not be reported as what happened. Its end offsets are the last
    stable ones, so a read to the end stops before a transaction still open."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        client_id=client_id,
        **client_kwargs,
    )


def acks_all_producer(settings: Settings, client_kwargs: ClientKwargs, *, client_id: str) -> AIOKafkaProducer:
    """An idempotent ``acks=all`` producer for one message at a time (``send``, ``review resolve``)."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        client_id=client_id,
        **client_kwargs,
    )


def admin_client(settings: Settings, client_kwargs: ClientKwargs, *, client_id: str) -> AIOKafkaAdminClient:
    """An admin client, to ask which partitions a topic has (nothing is created with it)."""
    return AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, client_id=client_id, **client_kwargs
    )


def client_producer(
    bootstrap_servers: str, client_kwargs: ClientKwargs, *, client_id: str
) -> AIOKafkaProducer:
    """The producers' client's one producer: idempotent, ``acks=all``; aiokafka's default partitioner is
    Kafka's murmur2 (docs/contracts.md, "Record key and partitioner")."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        client_id=client_id,
        **client_kwargs,
    )


def client_reader(bootstrap_servers: str, client_kwargs: ClientKwargs, *, client_id: str) -> AIOKafkaConsumer:
    """The producers' client's reader of results and dead letters: ``read_committed``, as a consumer of the
    results must be; no group, nothing committed (it assigns and seeks itself)."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        client_id=client_id,
        **client_kwargs,
    )
