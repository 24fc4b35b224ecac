"""A real Apache Kafka broker for development, tests and the chaos run, with one command.

    python -m ecash_dev.kafka start     # also: ecash-worker kafka start, deploy/kafka/local-kafka.sh start

Where the broker comes from (``ensure_broker``; first match wins):

1. ``ECASH_KAFKA_BOOTSTRAP_SERVERS`` set in the environment and answering: that cluster, nothing started.
2. A Docker engine answers: the official ``apache/kafka`` image (container and volume ``ecash-kafka-<port>``).
3. Otherwise this machine's Java 17+: Kafka's jars fetched from Maven Central with ``mvn`` (once, cached),
   KRaft storage formatted in a data directory, ``kafka.Kafka`` started in the background in its own
   process group, with a pid file and log files beside its data.

``restart`` keeps the data (topics and committed offsets survive); ``start --fresh`` deletes it first.
See docs/kafka.md.
"""

from ecash_dev.kafka.base import DEFAULT_PORT, KAFKA_VERSION, Broker, BrokerError, BrokerStatus
from ecash_dev.kafka.cli import command, main, run
from ecash_dev.kafka.docker import DockerKafka, docker_engine_answers
from ecash_dev.kafka.jvm import LocalKafka, free_ports
from ecash_dev.kafka.jvm_files import LocalKafkaConfig
from ecash_dev.kafka.selection import (
    ExternalKafka,
    default_cache_dir,
    ensure_broker,
    local_broker,
    local_config,
    scratch_broker,
)

__all__ = [
    "DEFAULT_PORT",
    "KAFKA_VERSION",
    "Broker",
    "BrokerError",
    "BrokerStatus",
    "DockerKafka",
    "ExternalKafka",
    "LocalKafka",
    "LocalKafkaConfig",
    "command",
    "default_cache_dir",
    "docker_engine_answers",
    "ensure_broker",
    "free_ports",
    "local_broker",
    "local_config",
    "main",
    "run",
    "scratch_broker",
]
