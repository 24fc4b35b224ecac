"""The local broker's configuration and choices, without starting anything."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from ecash_dev.kafka import BrokerStatus, DockerKafka, LocalKafkaConfig, default_cache_dir
from ecash_dev.kafka.docker import property_env_name
from ecash_dev.kafka.jvm_files import new_cluster_id, render_properties, server_properties
from ecash_dev.kafka.selection import names_local_port


def config(tmp_path: Path, port: int = 19092) -> LocalKafkaConfig:
    return LocalKafkaConfig(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", port=port)


def test_the_broker_listens_on_loopback_only_and_advertises_what_clients_dial(tmp_path: Path) -> None:
    props = server_properties(config(tmp_path, port=29092))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:29093"


def test_a_single_node_needs_replication_factor_one_everywhere_and_no_auto_created_topics(
    tmp_path: Path,
) -> None:
    props = server_properties(config(tmp_path))
    factors = {key: value for key, value in props.items() if "replication.factor" in key}
    assert set(factors.values()) == {"1"}
    assert len(factors) >= 4
    assert props["auto.create.topics.enable"] == "false"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_data_lives_under_the_data_dir_and_jars_under_the_versioned_cache(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    assert server_properties(cfg)["log.dirs"] == str(tmp_path / "data" / "kraft")
    assert cfg.libs_dir == tmp_path / "cache" / "kafka-4.1.1" / "libs"


def test_backslashes_in_paths_survive_the_properties_format() -> None:
    assert "log.dirs=C:\\\\kafka\n" in render_properties({"log.dirs": "C:\\kafka"})


def test_cluster_ids_are_16_bytes_of_base64url_like_kafka_storage_makes_them() -> None:
    for _ in range(50):
        cluster_id = new_cluster_id()
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
        assert not cluster_id.startswith("-")


@pytest.mark.parametrize(
    ("key", "env"),
    [
        ("advertised.listeners", "KAFKA_ADVERTISED_LISTENERS"),
        ("share.coordinator.state.topic.min.isr", "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR"),
        ("a.b_c-d", "KAFKA_A_B__C___D"),
    ],
)
def test_docker_environment_names_follow_the_image_convention(key: str, env: str) -> None:
    assert property_env_name(key) == env


def test_the_container_publishes_on_loopback_keeps_data_in_a_volume_and_advertises_the_host_port() -> None:
    args = DockerKafka(port=29092).run_args()
    assert "--publish=127.0.0.1:29092:9092" in args
    assert "--volume=ecash-kafka-29092:/var/lib/kafka/data" in args
    assert "--env=KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://127.0.0.1:29092" in args
    assert "--env=KAFKA_AUTO_CREATE_TOPICS_ENABLE=false" in args
    assert args[-1] == "apache/kafka:4.1.1"


@pytest.mark.parametrize(
    ("bootstrap", "local"),
    [
        ("127.0.0.1:19092", True),
        ("localhost:19092", True),
        ("127.0.0.1:9092", False),
        ("kafka.internal:19092", False),
        ("127.0.0.1:19092,127.0.0.1:19094", False),
    ],
)
def test_only_this_machines_own_port_may_be_started_in_place_of_a_configured_cluster(
    bootstrap: str, local: bool
) -> None:
    assert names_local_port(bootstrap, 19092) is local


def test_the_cache_dir_can_be_moved_by_environment(tmp_path: Path) -> None:
    assert default_cache_dir({"ECASH_DEVKAFKA_CACHE_DIR": str(tmp_path)}) == tmp_path
    assert default_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "ecash-worker"


def test_status_reads_as_one_line_a_person_understands() -> None:
    running = BrokerStatus("jvm", "127.0.0.1:19092", True, True, 42, Path("/k/server.log"))
    stopped = BrokerStatus("jvm", "127.0.0.1:19092", False, False)
    assert running.describe() == "kafka (jvm pid 42) at 127.0.0.1:19092: running, log /k/server.log"
    assert stopped.describe() == "kafka (jvm) at 127.0.0.1:19092: stopped"
