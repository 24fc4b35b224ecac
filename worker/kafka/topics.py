"""Kafka at start: reach the cluster, then make sure every topic is one the worker can use.

Whether or not the worker creates topics (``ECASH_CREATE_TOPICS``), every topic that exists is checked
against what the worker needs, and each problem is one line naming the setting that names the topic:

- partitions: ``ECASH_TOPIC_PARTITIONS``; the journal co-partitioned with the commands topic;
- ``cleanup.policy``: the journal and the review topic ``compact`` only (deletion by age would drop an
  intent still in doubt, or an open review item), the commands, results and dead
  letters not compacted (keyed by MSISDN: compaction would drop all but a wallet's last record);
- the journal's ``message.timestamp.type=LogAppendTime`` (its record time is the broker's clock);
- replication: not below ``ECASH_TOPIC_REPLICATION_FACTOR``, and never 1 on a cluster of more than one
  broker unless ``ECASH_ALLOW_REPLICATION_FACTOR_ONE=true``.

The one thing the worker repairs itself, and only when allowed to create topics, is a journal made by an
older version: its timestamp type and ``cleanup.policy=compact,delete`` (topic configs; no data touched,
nothing deleted sooner). Missing topics are created, or with
``ECASH_CREATE_TOPICS=false`` named. Authentication and TLS failures are named as such at once; a
cluster that does not answer is waited for (a broker restart) up to ``patience_s``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
    for_code,
)

from worker.clock import Clock
from worker.kafka.admin import (
    ClientKwargs,
    TopicError,
    TopicSpec,
    create_missing,
    diagnose_connection,
    wait_for_leaders,
    worker_topic_specs,
)
from worker.settings import Settings, SettingsError

__all__ = [
    "DYNAMIC_TOPIC_CONFIG",
    "LOG_APPEND_TIME",
    "NOT_AUTHORIZED",
    "KafkaUnreachable",
    "Problem",
    "TopicState",
    "check_topic",
    "creation_problem",
    "describe_topics",
    "prepare_topics",
    "topic_roles",
]

log = logging.getLogger("ecash_worker")

DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs config_source: set on the topic itself
LOG_APPEND_TIME = "LogAppendTime"


NOT_AUTHORIZED = (TopicAuthorizationFailedError, ClusterAuthorizationFailedError)


def _not_authorized(settings: Settings, exc: KafkaError) -> str:
    who = settings.kafka_sasl_username or "this client"
    variable = "ECASH_KAFKA_SASL_USERNAME"
    if settings.kafka_sasl_mechanism == "OAUTHBEARER":
        who, variable = "the token's principal", "ECASH_KAFKA_OAUTH_TOKEN_FILE"
    return (
        f"{variable}: the cluster does not authorize {who} ({type(exc).__name__}): it needs "
        "DESCRIBE and DESCRIBE_CONFIGS on the worker's topics (and CREATE with ECASH_CREATE_TOPICS=true)"
    )


class KafkaUnreachable(Exception):
    """The brokers did not answer at start: the message names the setting."""


@dataclass(frozen=True)
class TopicState:
    """What the cluster says about one existing topic."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str]  # effective values
    overrides: Mapping[str, str] = field(default_factory=dict)  # set on the topic (for a repair)
    sensitive_overrides: bool = False


@dataclass(frozen=True)
class Problem:
    line: str  # ECASH_X: what is wrong
    repair: Mapping[str, str] | None = None  # topic configs that would fix it, if the worker may


def topic_roles(settings: Settings) -> dict[str, TopicSpec]:
    """The setting that names each topic -> what the worker would create."""
    settings_names = (
        "ECASH_COMMANDS_TOPIC",
        "ECASH_RESULTS_TOPIC",
        "ECASH_DLQ_TOPIC",
        "ECASH_REVIEW_TOPIC",
        "ECASH_JOURNAL_TOPIC",
        "ECASH_CLAIMS_TOPIC",
        "ECASH_REVIEW_DECISIONS_TOPIC",
    )
    return dict(zip(settings_names, worker_topic_specs(settings), strict=True))


def _policies(state: TopicState) -> set[str]:
    return {p.strip() for p in state.configs.get("cleanup.policy", "delete").split(",") if p.strip()}


def check_topic(
    role: str,
    spec: TopicSpec,
    state: TopicState,
    settings: Settings,
    brokers: int,
    commands_partitions: int | None,
) -> list[Problem]:
    """Every way ``state`` falls short of what the worker needs for ``role``."""
    where = f"{role}: topic {state.name}"
    problems: list[Problem] = []
    co_partitioned = {"ECASH_JOURNAL_TOPIC": "the journal", "ECASH_REVIEW_DECISIONS_TOPIC": "the decisions"}
    if role in co_partitioned and commands_partitions not in (None, state.partitions):
        problems.append(
            Problem(
                f"{where} has {state.partitions} partitions, the commands topic {commands_partitions}: "
                f"{co_partitioned[role]} must be co-partitioned with the commands topic (same partition "
                "count; grow it first, then the commands topic)"
            )
        )
    elif role == "ECASH_CLAIMS_TOPIC":
        pass  # any count, fixed for good: a trace number's claims must stay in one partition
    elif state.partitions != spec.partitions:
        problems.append(
            Problem(
                f"{where} has {state.partitions} partitions, ECASH_TOPIC_PARTITIONS is {spec.partitions} "
                "(set ECASH_TOPIC_PARTITIONS to the topics' count; journal and commands must match)"
            )
        )
    problems.extend(_policy_problems(role, where, state))
    problems.extend(_replication_problems(where, state, settings, brokers))
    return problems


def _policy_problems(role: str, where: str, state: TopicState) -> list[Problem]:
    policies = _policies(state)
    shown = ",".join(sorted(policies))
    fix = f"kafka-configs.sh --alter --entity-type topics --entity-name {state.name} --add-config"
    if role == "ECASH_REVIEW_TOPIC" and policies != {"compact"}:
        return [
            Problem(
                f"{where} has cleanup.policy={shown}; the review topic needs cleanup.policy=compact "
                f"(deletion by age loses open review items): {fix} cleanup.policy=compact"
            )
        ]
    if role in ("ECASH_COMMANDS_TOPIC", "ECASH_RESULTS_TOPIC", "ECASH_DLQ_TOPIC") and "compact" in policies:
        return [
            Problem(
                f"{where} has cleanup.policy={shown}; it must not be compacted (records are keyed by MSISDN: "
                f"compaction drops all but the last one per wallet): {fix} cleanup.policy=delete"
            )
        ]
    if role not in ("ECASH_JOURNAL_TOPIC", "ECASH_CLAIMS_TOPIC"):
        return []
    if role == "ECASH_CLAIMS_TOPIC":
        wrong = policies != {"compact"} or state.configs.get("message.timestamp.type") != LOG_APPEND_TIME
        return [
            Problem(
                f"{where} has cleanup.policy={shown}, message.timestamp.type="
                f"{state.configs.get('message.timestamp.type', 'CreateTime')}; the claims topic needs "
                f"cleanup.policy=compact and {LOG_APPEND_TIME} (the workers tombstone claims themselves; "
                f"their age is the broker's clock): {fix} cleanup.policy=compact,"
                f"message.timestamp.type={LOG_APPEND_TIME}"
            )
        ][: int(wrong)]
    problems = []
    if policies != {"compact"}:
        # compact,delete is what older versions created: the worker may make it compact itself
        upgrade = policies == {"compact", "delete"}
        problems.append(
            Problem(
                f"{where} has cleanup.policy={shown}; the journal needs cleanup.policy=compact (kept until "
                "the worker tombstones a final record; deletion by age could drop an intent still in doubt): "
                f"{fix} cleanup.policy=compact"
                + (" (or start once with ECASH_CREATE_TOPICS=true: the worker sets it)" if upgrade else ""),
                repair={"cleanup.policy": "compact"} if upgrade else None,
            )
        )
    if state.configs.get("message.timestamp.type") != LOG_APPEND_TIME:
        current = state.configs.get("message.timestamp.type", "CreateTime")
        problems.append(
            Problem(
                f"{where} has message.timestamp.type={current}; the journal needs {LOG_APPEND_TIME} "
                f"(its record time is the broker's clock): {fix} message.timestamp.type={LOG_APPEND_TIME} "
                "(or start once with ECASH_CREATE_TOPICS=true: the worker sets it)",
                repair={"message.timestamp.type": LOG_APPEND_TIME},
            )
        )
    return problems


def _replication_problems(where: str, state: TopicState, settings: Settings, brokers: int) -> list[Problem]:
    wanted = settings.topic_replication_factor
    if state.replication_factor < min(wanted, brokers):
        return [
            Problem(
                f"{where} has replication factor {state.replication_factor}, "
                f"ECASH_TOPIC_REPLICATION_FACTOR is {wanted}: reassign its partitions to more brokers "
                "(kafka-reassign-partitions.sh) or lower the setting"
            )
        ]
    if state.replication_factor == 1 and brokers > 1 and not settings.allow_replication_factor_one:
        return [
            Problem(
                f"{where} has replication factor 1 on a cluster of {brokers} brokers: one broker's loss "
                "loses its records; reassign it to 3 replicas, or set ECASH_ALLOW_REPLICATION_FACTOR_ONE=true"
            )
        ]
    return []


def creation_problem(settings: Settings, brokers: int) -> str | None:
    """Why the worker must not create topics with these settings on a cluster of ``brokers``."""
    factor = settings.topic_replication_factor
    if factor > brokers:
        return (
            f"ECASH_TOPIC_REPLICATION_FACTOR: {factor}, but the cluster at ECASH_KAFKA_BOOTSTRAP_SERVERS "
            f"has {brokers} broker{'s' if brokers != 1 else ''}"
        )
    if factor == 1 and brokers > 1 and not settings.allow_replication_factor_one:
        return (
            f"ECASH_TOPIC_REPLICATION_FACTOR: 1 on a cluster of {brokers} brokers would create money topics "
            "that one broker's loss destroys; set 3, or ECASH_ALLOW_REPLICATION_FACTOR_ONE=true"
        )
    return None


# --- talking to the cluster ------------------------------------------------------------------------------


async def prepare_topics(
    settings: Settings, client_kwargs: ClientKwargs, *, clock: Clock, patience_s: float = 60.0
) -> None:
    """Reach the cluster, check (and if allowed create or repair) the topics, wait for their leaders.

    Raises ``SettingsError`` (a configuration problem, one line each) or ``KafkaUnreachable``.
    """
    deadline_s = clock.monotonic_s() + patience_s
    bootstrap = settings.kafka_bootstrap_servers
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000, **client_kwargs)
        try:
            await admin.start()
            await _prepare(admin, settings, clock)
            return
        except TopicError as exc:  # leaders did not appear: the cluster is not healthy
            raise KafkaUnreachable(f"ECASH_KAFKA_BOOTSTRAP_SERVERS: {exc}") from None
        except KafkaError as exc:
            if isinstance(exc, NOT_AUTHORIZED):
                raise SettingsError([_not_authorized(settings, exc)]) from None
            fatal = await diagnose_connection(bootstrap, client_kwargs)
            if fatal is not None:
                raise SettingsError([fatal]) from None
            if clock.monotonic_s() >= deadline_s:
                raise KafkaUnreachable(
                    f"ECASH_KAFKA_BOOTSTRAP_SERVERS: Kafka at {bootstrap} did not answer for "
                    f"{patience_s:.0f} s ({type(exc).__name__})"
                ) from None
            log.warning("Kafka not reachable yet (%s); retrying", type(exc).__name__)
        finally:
            await admin.close()
        await clock.sleep_s(2.0)


async def _prepare(admin: Any, settings: Settings, clock: Clock) -> None:
    roles = topic_roles(settings)
    brokers = len((await admin.describe_cluster())["brokers"])
    states = await describe_topics(admin, settings, [spec.name for spec in roles.values()])
    commands = states.get(settings.commands_topic)
    problems: list[Problem] = []
    for role, spec in roles.items():
        state = states.get(spec.name)
        if state is not None:
            commands_partitions = commands.partitions if commands is not None else None
            problems += check_topic(role, spec, state, settings, brokers, commands_partitions)
        elif not settings.create_topics:
            problems.append(
                Problem(
                    f"{role}: topic {spec.name} does not exist, and ECASH_CREATE_TOPICS is false "
                    "(or the cluster hides it from this client: ACLs)"
                )
            )
    missing = [spec for spec in roles.values() if spec.name not in states]
    if settings.create_topics and missing and (reason := creation_problem(settings, brokers)) is not None:
        problems.append(Problem(reason))
    fatal = [p for p in problems if p.repair is None or not settings.create_topics]
    if fatal:
        raise SettingsError([p.line for p in fatal])
    repairs = {k: v for p in problems if p.repair is not None for k, v in p.repair.items()}
    if repairs:  # only the journal's, and only what ECASH_CREATE_TOPICS allows (checked above)
        await _repair(admin, states[settings.journal_topic], repairs, [p.line for p in problems])
    if missing:
        try:
            await create_missing(admin, missing)
        except TopicError as exc:
            if "AuthorizationFailed" in str(exc):
                raise SettingsError([_not_authorized(settings, TopicAuthorizationFailedError())]) from None
            raise SettingsError([f"ECASH_CREATE_TOPICS: {exc}"]) from None
    await wait_for_leaders(admin, [spec.name for spec in roles.values()], 30.0, clock)


def _cannot_describe(settings: Settings, topic: str, error_code: int) -> str:
    error = for_code(error_code)
    if issubclass(error, NOT_AUTHORIZED):
        return _not_authorized(settings, error())
    return f"ECASH_KAFKA_BOOTSTRAP_SERVERS: the cluster cannot describe topic {topic} ({error.__name__})"


async def describe_topics(admin: Any, settings: Settings, names: list[str]) -> dict[str, TopicState]:
    """The state of each named topic that exists (absent ones are left out; none is auto-created)."""
    existing = set(await admin.list_topics())
    present = [name for name in dict.fromkeys(names) if name in existing]
    if not present:
        return {}
    described = {t["topic"]: t for t in await admin.describe_topics(present)}
    responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in present])
    configs: dict[str, list[dict[str, Any]]] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            if resource["error_code"] != 0:
                line = _cannot_describe(settings, resource["resource_name"], resource["error_code"])
                raise SettingsError([line])
            configs[resource["resource_name"]] = resource["config_entries"]
    states = {}
    for name in present:
        topic = described[name]
        if topic["error_code"] != 0:
            raise SettingsError([_cannot_describe(settings, name, topic["error_code"])])
        entries = configs.get(name, [])
        partitions = topic["partitions"]
        states[name] = TopicState(
            name=name,
            partitions=len(partitions),
            replication_factor=min((len(p["replicas"]) for p in partitions), default=0),
            configs={e["config_names"]: e["config_value"] or "" for e in entries},
            overrides={
                e["config_names"]: e["config_value"] or ""
                for e in entries
                if e["config_source"] == DYNAMIC_TOPIC_CONFIG
            },
            sensitive_overrides=any(e["is_sensitive"] and e["config_source"] == 1 for e in entries),
        )
    return states


async def _repair(admin: Any, state: TopicState, repairs: Mapping[str, str], lines: list[str]) -> None:
    """Set ``repairs`` on the topic in one request. AlterConfigs replaces the topic's whole override set,
    so the current overrides are sent along; a sensitive one cannot be read back, so then nothing is
    changed and ``lines`` (the problems) stop the worker instead."""
    if state.sensitive_overrides:
        raise SettingsError(lines)
    configs = {**state.overrides, **repairs}
    if repairs.get("cleanup.policy") == "compact":
        configs.pop("retention.ms", None)  # meaningless without deletion by age
    resource = ConfigResource(ConfigResourceType.TOPIC, state.name, configs)
    for response in await admin.alter_configs([resource]):
        for result in response.to_object()["resources"]:
            if result["error_code"] != 0:
                error = for_code(result["error_code"]).__name__
                raise SettingsError([f"{line} [the worker could not set it: {error}]" for line in lines])
    log.warning("topic %s: set %s", state.name, ", ".join(f"{k}={v}" for k, v in repairs.items()))
