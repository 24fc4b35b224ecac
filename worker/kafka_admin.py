"""Moved to ``worker.kafka.admin``: this shim keeps the development tooling's imports working while it moves
to its own package (issue 15). Remove it once nothing imports ``worker.kafka_admin``."""

from worker.kafka.admin import ClientKwargs as ClientKwargs
from worker.kafka.admin import TopicError as TopicError
from worker.kafka.admin import TopicSpec as TopicSpec
from worker.kafka.admin import broker_answers as broker_answers
from worker.kafka.admin import claims_topic_spec as claims_topic_spec
from worker.kafka.admin import diagnose_connection as diagnose_connection
from worker.kafka.admin import ensure_topics as ensure_topics
from worker.kafka.admin import journal_topic_spec as journal_topic_spec
from worker.kafka.admin import kafka_client_kwargs as kafka_client_kwargs
from worker.kafka.admin import review_topic_spec as review_topic_spec
from worker.kafka.admin import worker_topic_specs as worker_topic_specs
