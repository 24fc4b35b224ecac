"""The local stack as real processes, for the chaos run, the demo, the benchmarks and the tests.

    sandbox = SandboxProcess(options=["--seed-wallets", "2000"], log_path=work / "sandbox.log")
    await sandbox.start()                      # returns once GET /admin/health answers
    await sandbox.admin.set_faults(["charge:hang_after_commit:p=0.05"])
    worker = WorkerProcess(settings, work / "worker.log")   # ``ecash-worker run`` with ECASH_* from settings
    await worker.start(); await worker.kill()  # SIGKILL, like a crashed pod
    await produce(bootstrap, settings.commands_topic, commands)
    records = await read_to_end(bootstrap, settings.results_topic)
    await sandbox.stop()

Every child runs ``python -m worker.cli ...`` in a session of its own (a terminal's Ctrl-C reaches only the
parent, which decides how its children end). Children still running when the interpreter exits are killed
(``atexit``); a script should still stop them in a ``finally`` or with ``async with``.

Modules: ``processes`` (the children and their environment), ``admin`` (the sandbox's admin API),
``topics`` (produce, read to the end, follow the results), ``base`` (the error and small helpers).
Import from ``ecash_dev.stack``: the names below are the API.
"""

from ecash_dev.stack.admin import SandboxAdmin
from ecash_dev.stack.base import StackError, cancelled_by_sigterm, free_port, namespaced, tail
from ecash_dev.stack.processes import (
    ENV_PREFIX,
    ChildProcess,
    SandboxProcess,
    WorkerProcess,
    child_environ,
    kill_children,
    settings_env,
)
from ecash_dev.stack.topics import (
    CommandProducer,
    ResultTail,
    TopicRecord,
    command_bytes,
    partition_ids,
    produce,
    read_to_end,
)

__all__ = [
    "ENV_PREFIX",
    "ChildProcess",
    "CommandProducer",
    "ResultTail",
    "SandboxAdmin",
    "SandboxProcess",
    "StackError",
    "TopicRecord",
    "WorkerProcess",
    "cancelled_by_sigterm",
    "child_environ",
    "command_bytes",
    "free_port",
    "kill_children",
    "namespaced",
    "partition_ids",
    "produce",
    "read_to_end",
    "settings_env",
    "tail",
]
