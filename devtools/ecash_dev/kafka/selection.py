"""Which broker to use: an explicitly configured cluster, a Docker container, or a JVM from Maven jars."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ecash_dev.kafka.base import DEFAULT_PORT, Broker, BrokerError, BrokerStatus, Report, answers, silent
from ecash_dev.kafka.docker import DockerKafka, docker_engine_answers
from ecash_dev.kafka.jvm import LocalKafka, free_ports
from ecash_dev.kafka.jvm_files import LocalKafkaConfig
from ecash_dev.kafka.state import read_started
from worker.kafka.admin import ClientKwargs

Runtime = Literal["auto", "jvm", "docker"]
BOOTSTRAP_ENV = "ECASH_KAFKA_BOOTSTRAP_SERVERS"
CACHE_DIR_ENV = "ECASH_DEVKAFKA_CACHE_DIR"  # development tooling only: not a worker setting
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


@dataclass(frozen=True)
class ExternalKafka:
    """A cluster someone else runs: used as it is, never started, stopped or wiped from here."""

    bootstrap: str
    kind = "external"

    def start(self) -> str:
        return self.bootstrap

    def stop(self) -> bool:
        return False

    def restart(self, *, hard: bool = False, down_s: float = 0.0) -> str:
        raise BrokerError(f"{self.bootstrap} is an external cluster: restart it where it runs")

    def wipe(self) -> None:
        raise BrokerError(f"{self.bootstrap} is an external cluster: refusing to delete its data")

    def status(self) -> BrokerStatus:
        answering = answers(self.bootstrap)
        return BrokerStatus(self.kind, self.bootstrap, answering, answering)


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """``$ECASH_DEVKAFKA_CACHE_DIR``, else ``$XDG_CACHE_HOME/ecash-worker``, else ~/.cache/ecash-worker."""
    if environ.get(CACHE_DIR_ENV):
        return Path(environ[CACHE_DIR_ENV]).expanduser()
    base = Path(environ["XDG_CACHE_HOME"]) if environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "ecash-worker"


def scratch_broker(data_dir: Path, report: Report = silent) -> LocalKafka:
    """A JVM broker of a run's own (chaos, hostile input, the dashboard picture): two free loopback ports,
    data in ``data_dir``, jars from the usual cache. Not started."""
    port, controller_port = free_ports(2)
    config = LocalKafkaConfig(
        data_dir=data_dir,
        cache_dir=default_cache_dir(os.environ),
        port=port,
        controller_port=controller_port,
    )
    return LocalKafka(config, java_home=os.environ.get("JAVA_HOME"), report=report)


def default_data_dir(cache_dir: Path, port: int) -> Path:
    return cache_dir / f"kafka-data-{port}"


def local_config(
    environ: Mapping[str, str],
    *,
    port: int = DEFAULT_PORT,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    controller_port: int = 0,
) -> LocalKafkaConfig:
    cache = cache_dir or default_cache_dir(environ)
    return LocalKafkaConfig(
        data_dir=data_dir or default_data_dir(cache, port),
        cache_dir=cache,
        port=port,
        controller_port=controller_port,
    )


def local_broker(
    environ: Mapping[str, str],
    *,
    runtime: Runtime = "auto",
    port: int = DEFAULT_PORT,
    controller_port: int = 0,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    report: Report = silent,
) -> LocalKafka | DockerKafka:
    """The broker this machine would run: Docker's when an engine answers (or is asked for), else a JVM.

    A JVM broker already running from ``data_dir`` wins over Docker, so ``stop`` finds what ``start`` made.
    Without ``data_dir``, the one ``ecash-worker kafka start`` recorded for ``port``
    (``ecash_dev.kafka.state``), with its cache dir and controller port unless given.
    """
    recorded = read_started(environ, port) if data_dir is None else None
    if recorded is not None:
        data_dir = recorded.data_dir
        cache_dir = cache_dir or recorded.cache_dir
        controller_port = controller_port or recorded.controller_port
    jvm = LocalKafka(
        local_config(
            environ, port=port, controller_port=controller_port, data_dir=data_dir, cache_dir=cache_dir
        ),
        java_home=environ.get("JAVA_HOME"),
        report=report,
    )
    if runtime == "jvm" or (runtime == "auto" and jvm.pid() is not None):
        return jvm
    if runtime == "docker" or docker_engine_answers():
        return DockerKafka(port, report=report)
    return jvm


def ensure_broker(
    environ: Mapping[str, str],
    *,
    runtime: Runtime = "auto",
    port: int = DEFAULT_PORT,
    controller_port: int = 0,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    fresh: bool = False,
    client_kwargs: ClientKwargs | None = None,
    report: Report = silent,
) -> Broker:
    """A broker that answers, started if need be. First match wins:

    1. ``ECASH_KAFKA_BOOTSTRAP_SERVERS`` set in ``environ`` and answering: that cluster, untouched.
       Set but silent: an error, unless it names this machine's ``port`` (then a local broker starts there).
    2. A Docker engine answers: the ``apache/kafka`` image.
    3. Kafka's jars from Maven Central on this machine's Java.
    """
    explicit = environ.get(BOOTSTRAP_ENV, "").strip()
    if explicit:
        if answers(explicit, client_kwargs=client_kwargs):
            report(f"using the cluster at {explicit} ({BOOTSTRAP_ENV})")
            return ExternalKafka(explicit)
        if not names_local_port(explicit, port):
            raise BrokerError(
                f"{BOOTSTRAP_ENV}={explicit} does not answer: start that cluster, or unset the variable "
                "to run a local broker"
            )
    broker = local_broker(
        environ,
        runtime=runtime,
        port=port,
        controller_port=controller_port,
        data_dir=data_dir,
        cache_dir=cache_dir,
        report=report,
    )
    if fresh:
        broker.wipe()
    broker.start()
    return broker


def names_local_port(bootstrap: str, port: int) -> bool:
    """True for a single loopback address on ``port`` (``127.0.0.1:19092``, ``localhost:19092``)."""
    host, _, port_text = bootstrap.strip().rpartition(":")
    return "," not in bootstrap and host in LOOPBACK_HOSTS and port_text == str(port)
