"""The ``ecash-worker`` subcommands this package adds: name -> (module, one-line help).

``worker.cli`` reads this table through the ``ecash_worker.commands`` entry point (devtools/pyproject.toml)
and imports a command's module only when that command runs. Keep this module free of imports: the
top-level ``--help`` loads it.
"""

COMMANDS: dict[str, tuple[str, str]] = {
    "sandbox": (
        "ecash_dev.sandbox.cli",
        "run the E-Cash sandbox host (test-only: its /admin API needs no key)",
    ),
    "kafka": ("ecash_dev.kafka.cli", "run a local Apache Kafka broker (KRaft) for development"),
    "demo": (
        "ecash_dev.demo.run",
        "the main job on this machine: local Kafka, the sandbox, a worker and ~200 commands",
    ),
    "chaos": (
        "ecash_dev.chaos.run",
        "a repeatable chaos run: kill -9, broker crash, API faults; checks results against the ledger",
    ),
}
