"""The chaos run: ``plan`` (what to send and which faults, pure and seeded), ``run`` (the processes, the
kills, the verdict; ``python -m ecash_dev.chaos``), ``report`` (reading the topics and the ledger),
``agreement`` (the verdict, pure). See docs/reliability.md."""
