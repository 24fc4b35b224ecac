"""Development tooling for ecash-worker: never installed in production, never imported by ``worker``.

``sandbox`` (the stateful E-Cash API host with fault injection), ``kafka`` (a local single-node broker),
``stack`` (the sandbox, workers and topics as real processes), ``chaos`` (the chaos run and its verdict),
``demo`` (what ``make demo`` runs) and ``hostile`` (the hostile-input run). They import ``worker``; ``worker``
imports none of them. Their ``ecash-worker`` subcommands are declared in ``ecash_dev.commands`` and found
through the ``ecash_worker.commands`` entry point (devtools/pyproject.toml).
"""
