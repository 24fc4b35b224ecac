"""The files a JVM broker needs: its configuration, its jars (from Maven Central), and Java itself."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ecash_dev.kafka.base import (
    DEFAULT_PORT,
    KAFKA_VERSION,
    SINGLE_NODE_PROPERTIES,
    BrokerError,
    Report,
    silent,
    tail,
)

POM_PATH = Path(__file__).resolve().parents[3] / "deploy" / "kafka" / "pom.xml"
DEBIAN_JAVA_17 = Path("/usr/lib/jvm/java-17-openjdk-amd64/bin/java")
MIN_JAVA_MAJOR = 17  # Kafka 4 brokers need Java 17
FETCH_TIMEOUT_S = 900.0
FORMAT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class LocalKafkaConfig:
    """Where a JVM broker lives and listens. Restarting with the same ``data_dir`` keeps its data."""

    data_dir: Path
    cache_dir: Path  # jars go to cache_dir / kafka-<version> / libs, shared by every data dir
    port: int = DEFAULT_PORT
    controller_port: int = 0  # 0: port + 1
    host: str = "127.0.0.1"
    heap: str = "512m"
    java: str | None = None  # None: JAVA_HOME's, then PATH's, then Debian's Java 17
    mvn: str | None = None  # None: mvn on PATH
    start_timeout_s: float = 90.0
    stop_timeout_s: float = 30.0
    extra_properties: Mapping[str, str] = field(default_factory=dict)  # override server_properties

    def __post_init__(self) -> None:
        # Absolute: the JVM runs in data_dir, and the pid check compares its command line with these paths.
        object.__setattr__(self, "data_dir", self.data_dir.expanduser().absolute())
        object.__setattr__(self, "cache_dir", self.cache_dir.expanduser().absolute())

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def effective_controller_port(self) -> int:
        return self.controller_port or self.port + 1

    @property
    def libs_dir(self) -> Path:
        return self.cache_dir / f"kafka-{KAFKA_VERSION}" / "libs"

    @property
    def kraft_dir(self) -> Path:
        return self.data_dir / "kraft"

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log4j_file(self) -> Path:
        return self.data_dir / "log4j2.xml"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def console_file(self) -> Path:
        return self.data_dir / "console.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "kafka.pid"


def server_properties(config: LocalKafkaConfig) -> dict[str, str]:
    """A single-node KRaft broker+controller on loopback, sized for a laptop and CI."""
    host, port, controller = config.host, config.port, config.effective_controller_port
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{host}:{controller}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(config.kraft_dir),
        **SINGLE_NODE_PROPERTIES,
        **config.extra_properties,
    }


def render_properties(properties: dict[str, str]) -> str:
    lines = [f"{key}={value.replace(chr(92), chr(92) * 2)}" for key, value in properties.items()]
    return "# Written by ecash_dev.kafka at every start: edit LocalKafkaConfig, not this file.\n" + (
        "\n".join(lines) + "\n"
    )


def log4j2_xml(log_file: Path) -> str:
    """Broker logs: INFO to a rolling file (at most ~40 MB), the chatty request and state loggers at WARN."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn">
  <Appenders>
    <RollingFile name="file" fileName="{log_file}" filePattern="{log_file}.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="10 MB"/></Policies>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="org.apache.kafka.storage.internals.log" level="WARN"/>
    <Root level="INFO"><AppenderRef ref="file"/></Root>
  </Loggers>
</Configuration>
"""


def write_config_files(config: LocalKafkaConfig) -> None:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    config.properties_file.write_text(render_properties(server_properties(config)), encoding="utf-8")
    config.log4j_file.write_text(log4j2_xml(config.log_file), encoding="utf-8")


def new_cluster_id() -> str:
    """A KRaft cluster id, as ``kafka-storage random-uuid`` makes it (base64url of 16 random bytes)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def find_java(configured: str | None, java_home: str | None) -> str:
    for candidate in (configured, java_home and str(Path(java_home) / "bin" / "java"), shutil.which("java")):
        if candidate and Path(candidate).is_file():
            return candidate
    if DEBIAN_JAVA_17.is_file():
        return str(DEBIAN_JAVA_17)
    raise BrokerError(
        "no Java found: Kafka 4 needs Java 17+ (apt-get install openjdk-17-jre-headless), or Docker"
    )


def check_java(java: str) -> None:
    """Refuse a Java too old for Kafka 4 with a message that says so (instead of a class-version error)."""
    done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)  # noqa: S603 - a fixed argv of our own tools, no shell, no user input
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if match is None:
        raise BrokerError(f"{java} -version did not say which Java it is:\n{done.stderr.strip()}")
    major = int(match.group(2) or 0) if match.group(1) == "1" else int(match.group(1))
    if major < MIN_JAVA_MAJOR:
        raise BrokerError(f"Kafka {KAFKA_VERSION} needs Java {MIN_JAVA_MAJOR}+; {java} is Java {major}")


def fetch_jars(config: LocalKafkaConfig, report: Report = silent) -> Path:
    """Kafka's jars in the cache, fetched with Maven on first use (and again when the pom changes)."""
    libs = config.libs_dir
    if not POM_PATH.is_file():
        if _cached(libs, None):
            return libs
        raise BrokerError(f"{POM_PATH} not found: run from a checkout of ecash-worker, or use Docker")
    digest = hashlib.sha256(POM_PATH.read_bytes()).hexdigest()
    if _cached(libs, digest):
        return libs
    mvn = config.mvn or shutil.which("mvn")
    if mvn is None:
        raise BrokerError(f"Kafka's jars are not in {libs} and Maven is missing: apt-get install maven")
    report(f"fetching Kafka {KAFKA_VERSION} jars from Maven Central into {libs}")
    staging = libs.parent / f"libs.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    _mvn_copy_dependencies(mvn, staging)
    (staging / ".complete").write_text(digest, encoding="utf-8")
    _move_into_place(staging, libs, digest)
    return libs


def _cached(libs: Path, digest: str | None) -> bool:
    marker = libs / ".complete"
    if not marker.is_file():
        return False
    return digest is None or marker.read_text(encoding="utf-8").strip() == digest


def _mvn_copy_dependencies(mvn: str, output_dir: Path) -> None:
    command = [
        mvn, "-q", "-B", "-f", str(POM_PATH), "dependency:copy-dependencies",
        f"-DoutputDirectory={output_dir}", "-DincludeScope=runtime",
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S, check=False)  # noqa: S603 - a fixed argv of our own tools, no shell, no user input
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(f"mvn did not fetch Kafka's jars within {FETCH_TIMEOUT_S:g} s") from exc
    if done.returncode != 0:
        shutil.rmtree(output_dir, ignore_errors=True)
        output = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise BrokerError(f"mvn could not fetch Kafka's jars (exit {done.returncode}):\n{output}")


def _move_into_place(staging: Path, libs: Path, digest: str) -> None:
    """Atomic for readers; when two processes fetch at once, the first one's copy wins."""
    try:
        staging.rename(libs)
        return
    except OSError:
        if _cached(libs, digest):
            shutil.rmtree(staging, ignore_errors=True)
            return
    shutil.rmtree(libs, ignore_errors=True)  # an older version's or a broken copy
    staging.rename(libs)


def format_storage(config: LocalKafkaConfig, java: str, classpath: str, report: Report = silent) -> None:
    """Format KRaft storage once per data dir (a new cluster id); later starts reuse it."""
    if (config.kraft_dir / "meta.properties").is_file():
        return
    report(f"formatting KRaft storage in {config.kraft_dir}")
    command = [
        java, f"-Dlog4j2.configurationFile={config.log4j_file}", "-cp", classpath,
        "kafka.tools.StorageTool", "format", "--ignore-formatted",
        "-t", new_cluster_id(), "-c", str(config.properties_file),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=FORMAT_TIMEOUT_S, check=False)  # noqa: S603 - a fixed argv of our own tools, no shell, no user input
    if done.returncode != 0:
        raise BrokerError(
            f"formatting {config.kraft_dir} failed (exit {done.returncode}):\n"
            f"{(done.stdout + done.stderr).strip()}\n{tail(config.log_file)}"
        )
