"""Kafka administration: the worker's topics, their creation, and the client options for TLS/SASL.

Everything that talks to a broker takes ``client_kwargs`` (from ``kafka_client_kwargs``), so the same code
runs against the local development broker and a secured production cluster. Those kwargs carry the SASL
password: never log them.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
    UnsupportedSaslMechanismError,
    for_code,
)
from aiokafka.protocol.metadata import MetadataRequest

from worker.clock import Clock, SystemClock
from worker.settings import Settings

__all__ = [
    "ClientKwargs",
    "FileTokenProvider",
    "TopicError",
    "TopicSpec",
    "broker_answers",
    "claims_topic_spec",
    "create_missing",
    "diagnose_connection",
    "ensure_topics",
    "journal_topic_spec",
    "kafka_client_kwargs",
    "review_topic_spec",
    "wait_for_broker",
    "wait_for_leaders",
    "worker_topic_specs",
]

ClientKwargs = dict[str, Any]


class TopicError(Exception):
    """A topic could not be created, or exists with a shape the worker cannot use."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1
    configs: Mapping[str, str] = field(default_factory=dict)


def _durability_configs(replication_factor: int) -> dict[str, str]:
    # acks=all waits for min.insync.replicas: 2 of 3 survives one broker down; a 2-replica topic stays
    # writable with one broker down (1), a single replica is what a development broker has.
    return {"min.insync.replicas": str(max(1, min(2, replication_factor - 1)))}


def journal_topic_spec(name: str, partitions: int, replication_factor: int, retention_s: float) -> TopicSpec:
    """The journal: compacted (latest record per trace number), never deleted by age.

    Kafka's age-based deletion cannot tell a final outcome from an intent still in doubt or an
    ``unresolved`` command waiting for an operator, so the worker itself tombstones final records past the
    dedupe window (journal_store.purge_older_than); compaction then drops them after
    ``delete.retention.ms``. Record times are the broker's (``LogAppendTime``): an inheriting worker waits
    out the previous owner's send lease on the broker's clock, not on a worker's.
    """
    configs = {
        "cleanup.policy": "compact",
        "message.timestamp.type": "LogAppendTime",
        "delete.retention.ms": str(int(min(retention_s, 86_400.0) * 1000)),
        **_durability_configs(replication_factor),
    }
    return TopicSpec(name, partitions, replication_factor, configs)


def review_topic_spec(name: str, partitions: int, replication_factor: int) -> TopicSpec:
    """Manual review: compacted, never deleted by age (a record goes away only when superseded)."""
    configs = {"cleanup.policy": "compact", **_durability_configs(replication_factor)}
    return TopicSpec(name, partitions, replication_factor, configs)


def claims_topic_spec(name: str, partitions: int, replication_factor: int, retention_s: float) -> TopicSpec:
    """The claims (worker/pipeline/claims.py): compacted like the journal, record times the broker's.

    A claim's key is its command message, so compaction never merges two commands' claims; the workers
    tombstone claims themselves (a loser's at once, an owner's past the dedupe window). Never add
    partitions to it: a trace number's claims must stay in one partition, in one order.
    """
    return journal_topic_spec(name, partitions, replication_factor, retention_s)


def worker_topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic the worker reads or writes. The journal and the review decisions are co-partitioned
    with the commands topic (a decision goes to its command's partition)."""
    partitions, replicas = settings.topic_partitions, settings.topic_replication_factor
    durable = _durability_configs(replicas)
    return [
        TopicSpec(settings.commands_topic, partitions, replicas, durable),
        TopicSpec(settings.results_topic, partitions, replicas, durable),
        TopicSpec(settings.dlq_topic, partitions, replicas, durable),
        review_topic_spec(settings.review_topic, partitions, replicas),
        journal_topic_spec(settings.journal_topic, partitions, replicas, settings.journal_retention_s),
        claims_topic_spec(settings.claims_topic, partitions, replicas, settings.journal_retention_s),
        TopicSpec(settings.review_decisions_topic, partitions, replicas, durable),
    ]


class FileTokenProvider(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka is untyped
    """SASL OAUTHBEARER: the token is the content of ``path``, read again every time one is asked for.

    aiokafka asks at every new connection's authentication; a file the platform rotates in place (a
    Kubernetes projected service-account token, a sidecar refreshing a managed service's token) is
    therefore followed without a restart. A broker with ``connections.max.reauth.ms`` closes a connection
    whose token expired, and the reconnection authenticates with the file's current token.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    async def token(self) -> str:
        text = await asyncio.to_thread(self.path.read_text, encoding="utf-8")
        return text.strip()

    def __repr__(self) -> str:
        return f"FileTokenProvider({str(self.path)!r})"


def kafka_client_kwargs(settings: Settings) -> ClientKwargs:
    """aiokafka keyword arguments for the configured security protocol (producer, consumer and admin).

    SCRAM mechanisms use aiokafka's ``sasl_plain_username``/``sasl_plain_password`` too; OAUTHBEARER a
    ``FileTokenProvider`` over ``ECASH_KAFKA_OAUTH_TOKEN_FILE``.
    """
    protocol = settings.kafka_security_protocol
    kwargs: ClientKwargs = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = _ssl_context(settings)
    if protocol.startswith("SASL") and settings.kafka_sasl_mechanism == "OAUTHBEARER":
        kwargs["sasl_mechanism"] = "OAUTHBEARER"
        assert settings.kafka_oauth_token_file is not None  # the settings' coherence check requires it
        kwargs["sasl_oauth_token_provider"] = FileTokenProvider(settings.kafka_oauth_token_file)
    elif protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = settings.kafka_sasl_mechanism
        kwargs["sasl_plain_username"] = settings.kafka_sasl_username
        password = settings.kafka_sasl_password
        kwargs["sasl_plain_password"] = password.get_secret_value() if password is not None else None
    return kwargs


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    cafile = settings.kafka_ssl_cafile
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cafile) if cafile else None)
    if settings.kafka_ssl_certfile is not None:
        keyfile = settings.kafka_ssl_keyfile
        context.load_cert_chain(str(settings.kafka_ssl_certfile), str(keyfile) if keyfile else None)
    return context


async def ensure_topics(
    bootstrap: str,
    specs: list[TopicSpec],
    *,
    client_kwargs: ClientKwargs,
    ready_timeout_s: float = 30.0,
    clock: Clock | None = None,
) -> None:
    """Create the topics that are missing, then wait until every partition of every spec has a leader.

    A topic created meanwhile by another worker is fine. An existing topic with a different partition
    count is an error: the journal must stay co-partitioned with the commands topic.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_kwargs)
    await admin.start()
    try:
        existing = await _partition_counts(admin, [spec.name for spec in specs])
        _check_partition_counts(specs, existing)
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            await create_missing(admin, missing)
        await wait_for_leaders(admin, [spec.name for spec in specs], ready_timeout_s, clock or SystemClock())
    finally:
        await admin.close()


async def _partition_counts(admin: Any, names: list[str]) -> dict[str, int]:
    """Partition count of each named topic that exists (absent topics are left out).

    Only existing topics are described: aiokafka's metadata request for named topics allows automatic
    creation, and a cluster with ``auto.create.topics.enable=true`` would make them with default
    configs (a journal that is not compacted).
    """
    existing = set(await admin.list_topics())
    present = [name for name in names if name in existing]
    if not present:
        return {}
    described = await admin.describe_topics(present)
    return {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}


def _check_partition_counts(specs: list[TopicSpec], existing: Mapping[str, int]) -> None:
    for spec in specs:
        count = existing.get(spec.name)
        if count is not None and count != spec.partitions:
            raise TopicError(
                f"topic {spec.name} exists with {count} partitions, expected {spec.partitions} "
                "(ECASH_TOPIC_PARTITIONS): the journal must be co-partitioned with the commands topic"
            )


async def create_missing(admin: Any, specs: list[TopicSpec]) -> None:
    """Create ``specs`` (one already created meanwhile, by another worker, is fine)."""
    new_topics = [
        NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=dict(s.configs)) for s in specs
    ]
    response = await admin.create_topics(new_topics)
    failures = []
    for topic_error in response.topic_errors:
        name, code = topic_error[0], topic_error[1]
        message = topic_error[2] if len(topic_error) > 2 else None
        if code in (0, TopicAlreadyExistsError.errno):
            continue
        failures.append(f"{name}: {for_code(code).__name__}" + (f" ({message})" if message else ""))
    if failures:
        raise TopicError("could not create topics: " + "; ".join(failures))


async def wait_for_leaders(admin: Any, names: list[str], timeout_s: float, clock: Clock) -> None:
    deadline_s = clock.monotonic_s() + timeout_s
    while True:
        described = await admin.describe_topics(names)
        if _all_led(described, names):
            return
        if clock.monotonic_s() >= deadline_s:
            raise TopicError(f"topics have no leader after {timeout_s:g} s: {', '.join(names)}")
        await clock.sleep_s(0.1)


def _all_led(described: list[dict[str, Any]], names: list[str]) -> bool:
    led = {
        t["topic"]
        for t in described
        if t["error_code"] == 0 and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
    }
    return set(names) <= led


async def diagnose_connection(
    bootstrap: str, client_kwargs: ClientKwargs, timeout_s: float = 5.0
) -> str | None:
    """After a failed bootstrap: one line naming a configuration problem (authentication, SASL on a
    listener without it, TLS), or None when the cluster is just not answering (worth waiting for).

    aiokafka's bootstrap hides the cause behind ``KafkaConnectionError``; one direct connection to the
    first address shows it.
    """
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    try:
        conn = await create_conn(
            host.strip("[]") or "127.0.0.1",
            int(port),
            request_timeout_ms=int(timeout_s * 1000),
            **client_kwargs,
        )
    except IllegalSaslStateError:
        return (
            f"ECASH_KAFKA_SECURITY_PROTOCOL: the listener at {bootstrap} does not speak SASL "
            f"(IllegalSaslStateError): is it a PLAINTEXT or SSL listener?"
        )
    except UnsupportedSaslMechanismError:
        return (
            f"ECASH_KAFKA_SASL_MECHANISM: the broker at {bootstrap} does not enable "
            f"{client_kwargs.get('sasl_mechanism')} on this listener"
        )
    except SaslAuthenticationFailed:
        if client_kwargs.get("sasl_mechanism") == "OAUTHBEARER":
            return (
                f"ECASH_KAFKA_OAUTH_TOKEN_FILE: authentication failed at {bootstrap}: the broker refused the "
                "token (expired, wrong audience or issuer, or not a token this cluster accepts)"
            )
        return (
            f"ECASH_KAFKA_SASL_USERNAME: authentication failed at {bootstrap}: the broker refused the user, "
            "the password (ECASH_KAFKA_SASL_PASSWORD) or the mechanism (ECASH_KAFKA_SASL_MECHANISM)"
        )
    except ssl.SSLCertVerificationError as exc:
        return (
            f"ECASH_KAFKA_SSL_CAFILE: the certificate of the broker at {bootstrap} does not verify "
            f"({exc.verify_message or exc.reason})"
        )
    except ssl.SSLError as exc:
        return (
            f"ECASH_KAFKA_SECURITY_PROTOCOL: TLS with the broker at {bootstrap} failed ({exc.reason or exc})"
        )
    except (OSError, TimeoutError, ValueError, KafkaError):
        return None
    try:
        if client_kwargs.get("sasl_mechanism") == "OAUTHBEARER":
            return await _oauth_refused(conn, bootstrap, timeout_s)
        return None
    finally:
        conn.close()


async def _oauth_refused(conn: Any, bootstrap: str, timeout_s: float) -> str | None:
    """aiokafka takes the broker's answer to a bad token (an error challenge, KIP-255) for success; the
    connection then gets nothing real (a metadata answer without brokers, or closed). One request tells."""
    try:
        async with asyncio.timeout(timeout_s):
            answer = await conn.send(MetadataRequest(topics=[]))
        refused = not answer.brokers
    except (OSError, TimeoutError, KafkaError):
        refused = True
    if refused:
        return (
            f"ECASH_KAFKA_OAUTH_TOKEN_FILE: authentication failed at {bootstrap}: the broker closed the "
            "connection after the token (expired, wrong audience or issuer, or not a token this cluster "
            "accepts)"
        )
    return None


async def broker_answers(bootstrap: str, *, client_kwargs: ClientKwargs, timeout_s: float = 5.0) -> bool:
    """One attempt: does a broker at ``bootstrap`` answer a metadata request and list itself?

    A plain TCP connect comes first, so that probing a stopped broker does not make aiokafka log errors.
    """
    if not await _tcp_connects(bootstrap, timeout_s):
        return False
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000), **client_kwargs
    )
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers"))
    except Exception:  # noqa: BLE001 - any failure (timeout, refused, protocol, auth) means "does not answer"
        return False
    finally:
        await admin.close()


async def _tcp_connects(bootstrap: str, timeout_s: float) -> bool:
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            async with asyncio.timeout(timeout_s):
                _, writer = await asyncio.open_connection(host.strip("[]") or "127.0.0.1", int(port))
        except (TimeoutError, OSError, ValueError):
            continue
        writer.close()
        await writer.wait_closed()
        return True
    return False


async def wait_for_broker(
    bootstrap: str, *, client_kwargs: ClientKwargs, timeout_s: float, clock: Clock | None = None
) -> bool:
    """Probe until the broker answers (True) or ``timeout_s`` passes (False)."""
    clock = clock or SystemClock()
    deadline_s = clock.monotonic_s() + timeout_s
    while True:
        remaining_s = deadline_s - clock.monotonic_s()
        if await broker_answers(
            bootstrap, client_kwargs=client_kwargs, timeout_s=min(5.0, max(remaining_s, 0.5))
        ):
            return True
        if clock.monotonic_s() >= deadline_s:
            return False
        await clock.sleep_s(0.2)
