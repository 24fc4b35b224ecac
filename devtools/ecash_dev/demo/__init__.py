"""``make demo``: ``plan`` (the commands, wallets and faults, pure), ``run`` (the processes and the verdict;
``python -m ecash_dev.demo``, ``ecash-worker demo``)."""
