"""``ecash-worker kafka start|stop|status|restart|fetch`` (also ``python -m ecash_dev.kafka ...``).

Progress goes to stderr; ``start`` prints the bootstrap address alone on stdout, so a script can do
``export ECASH_KAFKA_BOOTSTRAP_SERVERS=$(python -m ecash_dev.kafka start)``. ``fetch`` only downloads
Kafka's jars into the cache (prints their directory): CI runs it before the tests.

``start`` records the JVM broker it started (pid, ports, data dir) in
``$XDG_RUNTIME_DIR/ecash-worker/kafka-<port>.json`` (else ``<temp dir>/ecash-worker-<uid>/``), so
``status``, ``stop`` and ``restart`` find it by ``--port`` alone. When something answers on the port that
no ``start`` here made, ``status`` and ``stop`` say so and exit 1 (they never stop it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click

from ecash_dev.kafka.base import DEFAULT_PORT, BrokerError, answers
from ecash_dev.kafka.jvm import LocalKafka
from ecash_dev.kafka.jvm_files import fetch_jars
from ecash_dev.kafka.selection import BOOTSTRAP_ENV, ensure_broker, local_broker, local_config
from ecash_dev.kafka.state import StartedBroker, forget_started, record_started, state_file
from worker import commandline
from worker.commandline import Command, arguments, help_text
from worker.kafka.admin import ClientKwargs, kafka_client_kwargs
from worker.settings import SettingsError, load_settings_without_api

ACTIONS = ("start", "stop", "status", "restart", "fetch")  # fetch: only download the jars (CI warm-up)
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_RUNNING = 0, 1, 2, 3  # 3: "not running", as LSB init scripts say


_DIR = click.Path(file_okay=False, path_type=Path)


@click.command(
    "kafka",
    cls=Command,
    short_help="run a local Apache Kafka broker (KRaft) for development",
    help=help_text(__doc__),
)
@click.argument("action", type=click.Choice(ACTIONS), help="what to do with the local broker")
@click.option("--port", type=int, default=DEFAULT_PORT, help="client port")
@click.option("--controller-port", type=int, default=0, help="KRaft controller port (0: port+1)")
@click.option("--data-dir", type=_DIR, default=None, help="default: <cache-dir>/kafka-data-<port>")
@click.option(
    "--cache-dir", type=_DIR, default=None, help="jars and default data (default: ~/.cache/ecash-worker)"
)
@click.option("--fresh", is_flag=True, help="start: delete the broker's data first")
@click.option("--hard", is_flag=True, help="restart: kill instead of a clean shutdown")
@click.option(
    "--runtime",
    type=click.Choice(("auto", "jvm", "docker")),
    default="auto",
    help="how to run the broker: a JVM, Docker, or the first that works",
)
@click.pass_context
def command(ctx: click.Context, /, **_: Any) -> int:
    return run(arguments(ctx))


def run(args: SimpleNamespace, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    for option, port, lowest in (("--port", args.port, 1), ("--controller-port", args.controller_port, 0)):
        if not lowest <= port <= 65_535:
            _say(f"ecash-worker kafka: {option}: {port} is not a port number ({lowest}-65535)")
            return EXIT_USAGE
    try:
        return _dispatch(args, env)
    except (BrokerError, SettingsError) as exc:
        _say(f"error: {exc}")
        return EXIT_ERROR


def _dispatch(args: SimpleNamespace, environ: Mapping[str, str]) -> int:
    where: dict[str, Any] = {
        "port": args.port,
        "controller_port": args.controller_port,
        "data_dir": args.data_dir,
        "cache_dir": args.cache_dir,
    }
    if args.action == "start":
        broker = ensure_broker(
            environ,
            runtime=args.runtime,
            fresh=args.fresh,
            client_kwargs=_client_kwargs(environ),
            report=_say,
            **where,
        )
        _record(environ, broker)
        print(broker.bootstrap)  # the one line on stdout: a script reads it
        return EXIT_OK
    if args.action == "fetch":
        config = local_config(environ, port=args.port, cache_dir=args.cache_dir)
        print(fetch_jars(config, _say))
        return EXIT_OK
    broker_here = local_broker(environ, runtime=args.runtime, report=_say, **where)
    if args.action == "stop":
        if broker_here.stop():
            forget_started(environ, args.port)
            return EXIT_OK
        if _someone_elses(broker_here.bootstrap, environ, args.port):
            return EXIT_ERROR
        forget_started(environ, args.port)
        _say(f"no broker running at {broker_here.bootstrap}")
        return EXIT_OK
    if args.action == "restart":
        broker_here.restart(hard=args.hard)
        _record(environ, broker_here)
        return EXIT_OK
    status = broker_here.status()
    if not status.running and _someone_elses(status.bootstrap, environ, args.port):
        return EXIT_ERROR
    _say(status.describe())
    return EXIT_OK if status.answering else EXIT_NOT_RUNNING


def _record(environ: Mapping[str, str], broker: object) -> None:
    """Remember a JVM broker started here, for ``status``/``stop`` without ``--data-dir``."""
    if not isinstance(broker, LocalKafka):
        return  # a container is found by its name, an external cluster is not ours
    pid = broker.pid()
    if pid is None:
        return
    config = broker.config
    started = StartedBroker(
        pid, config.port, config.effective_controller_port, config.data_dir, config.cache_dir
    )
    record_started(environ, started)


def _someone_elses(bootstrap: str, environ: Mapping[str, str], port: int) -> bool:
    """Nothing of ours runs on ``port``; does something else answer there? Then say so (True)."""
    if not answers(bootstrap, timeout_s=2.0):
        return False
    _say(
        f"a broker answers at {bootstrap}, but not one `ecash-worker kafka start` started "
        f"(no live record in {state_file(environ, port)}): left alone; stop it where it was started, "
        "or pass its --data-dir"
    )
    return True


def _client_kwargs(environ: Mapping[str, str]) -> ClientKwargs:
    """TLS/SASL options for probing an explicitly configured cluster (read from the worker's settings)."""
    if not environ.get(BOOTSTRAP_ENV):
        return {}
    return kafka_client_kwargs(load_settings_without_api())  # Kafka only: no API identity asked for


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ecash_dev.kafka ...``: the same command, its exit code returned."""
    return commandline.main(command, argv, "python -m ecash_dev.kafka")
