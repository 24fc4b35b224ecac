"""Test-session plumbing: the real Kafka broker comes from tests.kafka_fixtures."""

pytest_plugins = ["tests.kafka_fixtures"]
