"""The small benchmarks need the real Kafka broker (tests.kafka_fixtures: one per session)."""

from tests.kafka_fixtures import kafka_bootstrap as kafka_bootstrap
from tests.kafka_fixtures import kafka_topics as kafka_topics
from tests.kafka_fixtures import local_kafka_factory as local_kafka_factory
