"""The operator's commands (``ecash-worker api | send | review | reconcile``) and what they share.

- ``command``: exit codes, ``OpsError``, settings loading and ``run_command`` (what every command shares);
- ``arguments``: click argument types (dates, amounts, counts, seconds);
- ``reading``: a topic's partitions, a topic read to its end (``worker.kafka.reading.read_to_end``);
- ``awaiting``: produce one message and wait for its result or its dead letter;
- ``output``: text or JSON, progress on a terminal;
- ``api_cli``, ``send``, ``review``, ``reconcile``: the commands.
"""
