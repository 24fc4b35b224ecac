"""What the worker demands of existing topics, as pure decisions over what the cluster described."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from worker.kafka.topics import TopicState, check_topic, creation_problem, topic_roles
from worker.settings import Settings, load_settings

GOOD_JOURNAL = {"cleanup.policy": "compact", "message.timestamp.type": "LogAppendTime"}


def settings(**values: object) -> Settings:
    return load_settings(topic_partitions=4, **values)


def problems(
    role: str,
    configs: Mapping[str, str],
    *,
    partitions: int = 4,
    replicas: int = 1,
    brokers: int = 1,
    commands: int | None = 4,
    **values: object,
) -> list[str]:
    s = settings(**values)
    spec = topic_roles(s)[role]
    state = TopicState(spec.name, partitions, replicas, configs)
    return [p.line for p in check_topic(role, spec, state, s, brokers, commands)]


def test_the_topics_the_worker_would_create_pass_its_own_checks() -> None:
    s = settings(topic_replication_factor=3)
    for role, spec in topic_roles(s).items():
        state = TopicState(spec.name, spec.partitions, 3, {"cleanup.policy": "delete", **spec.configs})
        assert check_topic(role, spec, state, s, 3, 4) == [], role


def test_the_journal_topic_is_created_with_the_brokers_clock() -> None:
    assert topic_roles(settings())["ECASH_JOURNAL_TOPIC"].configs["message.timestamp.type"] == "LogAppendTime"


def test_a_journal_with_another_partition_count_than_the_commands_is_named_as_such() -> None:
    [line] = problems("ECASH_JOURNAL_TOPIC", GOOD_JOURNAL, partitions=4, commands=6)
    assert line == (
        "ECASH_JOURNAL_TOPIC: topic ecash.journal has 4 partitions, the commands topic 6: "
        "the journal must be co-partitioned with the commands topic (same partition count; grow it first, "
        "then the commands topic)"
    )


@pytest.mark.parametrize(
    ("role", "configs", "start"),
    [
        ("ECASH_JOURNAL_TOPIC", {**GOOD_JOURNAL, "cleanup.policy": "delete"}, "ECASH_JOURNAL_TOPIC: topic"),
        ("ECASH_REVIEW_TOPIC", {"cleanup.policy": "delete"}, "ECASH_REVIEW_TOPIC: topic ecash.review has"),
        ("ECASH_REVIEW_TOPIC", {"cleanup.policy": "compact,delete"}, "ECASH_REVIEW_TOPIC: topic"),
        ("ECASH_JOURNAL_TOPIC", {**GOOD_JOURNAL, "cleanup.policy": "compact,delete"}, "ECASH_JOURNAL_TOPIC"),
        ("ECASH_JOURNAL_TOPIC", {**GOOD_JOURNAL, "message.timestamp.type": "CreateTime"}, "ECASH_JOURNAL"),
    ],
)
def test_cleanup_policy_retention_and_timestamps(role: str, configs: dict[str, str], start: str) -> None:
    [line] = problems(role, configs)
    assert line.startswith(start)
    assert "kafka-configs.sh --alter" in line  # says how to fix it


@pytest.mark.parametrize("role", ["ECASH_COMMANDS_TOPIC", "ECASH_RESULTS_TOPIC", "ECASH_DLQ_TOPIC"])
def test_topics_keyed_by_msisdn_must_not_be_compacted(role: str) -> None:
    [line] = problems(role, {"cleanup.policy": "compact"})
    assert "must not be compacted" in line
    assert problems(role, {"cleanup.policy": "delete"}) == []


def test_only_an_older_versions_journal_is_a_repair_the_worker_may_make() -> None:
    s = settings()
    spec = topic_roles(s)["ECASH_JOURNAL_TOPIC"]
    older = {"cleanup.policy": "compact,delete", "retention.ms": "604800000"}
    state = TopicState(spec.name, 4, 1, older)
    repairs = [p.repair for p in check_topic("ECASH_JOURNAL_TOPIC", spec, state, s, 1, 4)]
    assert repairs == [{"cleanup.policy": "compact"}, {"message.timestamp.type": "LogAppendTime"}]
    state = TopicState(spec.name, 4, 1, {**GOOD_JOURNAL, "cleanup.policy": "delete"})
    assert [p.repair for p in check_topic("ECASH_JOURNAL_TOPIC", spec, state, s, 1, 4)] == [None]


def test_replication_one_on_a_cluster_of_several_brokers_needs_an_explicit_yes() -> None:
    [line] = problems("ECASH_RESULTS_TOPIC", {}, replicas=1, brokers=3)
    assert "replication factor 1 on a cluster of 3 brokers" in line
    assert "ECASH_ALLOW_REPLICATION_FACTOR_ONE=true" in line
    assert problems("ECASH_RESULTS_TOPIC", {}, replicas=1, brokers=3, allow_replication_factor_one=True) == []
    assert problems("ECASH_RESULTS_TOPIC", {}, replicas=1, brokers=1) == []


def test_fewer_replicas_than_asked_for_is_named() -> None:
    [line] = problems("ECASH_COMMANDS_TOPIC", {}, replicas=2, brokers=3, topic_replication_factor=3)
    assert line.startswith("ECASH_COMMANDS_TOPIC: topic ecash.commands has replication factor 2, ")


def test_creating_topics_refuses_factor_one_on_several_brokers_and_more_replicas_than_brokers() -> None:
    assert creation_problem(settings(), 1) is None
    assert creation_problem(settings(topic_replication_factor=3), 3) is None
    assert str(creation_problem(settings(), 3)).startswith(
        "ECASH_TOPIC_REPLICATION_FACTOR: 1 on a cluster of 3"
    )
    assert creation_problem(settings(allow_replication_factor_one=True), 3) is None
    assert str(creation_problem(settings(topic_replication_factor=3), 1)).startswith(
        "ECASH_TOPIC_REPLICATION_FACTOR: 3, but the cluster"
    )
