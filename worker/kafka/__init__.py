"""The one Kafka adapter: every Kafka client the product builds, the topics it needs, and reading a topic.

- ``admin``: client options (TLS/SASL, ``kafka_client_kwargs``), topic specs, creation, connection diagnosis;
- ``topics``: the start-up check of every topic the worker uses (and the repairs it may make);
- ``clients``: one factory per use of a consumer or producer (the worker's, the restore's, the operator's);
- ``reading``: ``read_to_end``, the one way to read a topic to its end.

Nothing is imported here: ``import worker.kafka.clients`` loads only what that needs.
"""
