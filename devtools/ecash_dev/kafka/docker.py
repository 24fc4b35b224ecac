"""A Kafka broker in the official ``apache/kafka`` image, when a Docker engine answers.

Container and volume are both named ``ecash-kafka-<port>``; the volume keeps topics and committed offsets
across restarts. (Written against the image's documented environment interface; no engine runs in CI.)
"""

from __future__ import annotations

import shutil
import subprocess

from ecash_dev.kafka.base import (
    DEFAULT_PORT,
    DOCKER_IMAGE,
    SINGLE_NODE_PROPERTIES,
    BrokerError,
    BrokerStatus,
    Report,
    answers,
    run_sync,
    silent,
    wait_until_answering,
)
from worker.clock import Clock, SystemClock

CONTAINER_DATA_DIR = "/var/lib/kafka/data"  # a volume in the image, writable by its user
CLUSTER_ID = "ZWNhc2gtd29ya2VyLWRldg"  # base64url of 16 bytes; the image formats storage with it once
DOCKER_TIMEOUT_S = 120.0


def docker_engine_answers(docker: str = "docker") -> bool:
    """True when a Docker engine answers ``docker info`` (a client alone is not enough)."""
    if shutil.which(docker) is None:
        return False
    try:
        done = subprocess.run([docker, "info"], capture_output=True, timeout=15, check=False)  # noqa: S603 - a fixed argv of our own tools, no shell, no user input
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def property_env_name(key: str) -> str:
    """The image's convention (KIP-975): ``a.b_c-d`` is ``KAFKA_A_B__C___D``."""
    return "KAFKA_" + key.replace("_", "__").replace("-", "___").replace(".", "_").upper()


def container_properties(port: int) -> dict[str, str]:
    """Inside the container: listen on every interface, advertise the host's published loopback port."""
    return {
        "node.id": "1",
        "process.roles": "broker,controller",
        "controller.quorum.voters": "1@localhost:9093",
        "listeners": "PLAINTEXT://:9092,CONTROLLER://:9093",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": CONTAINER_DATA_DIR,
        **SINGLE_NODE_PROPERTIES,
    }


class DockerKafka:
    kind = "docker"

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        *,
        image: str = DOCKER_IMAGE,
        docker: str = "docker",
        start_timeout_s: float = 120.0,
        stop_timeout_s: float = 30.0,
        report: Report = silent,
        clock: Clock | None = None,
    ) -> None:
        self.port = port
        self.image = image
        self._docker = docker
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._report = report
        self._clock = clock or SystemClock()

    @property
    def name(self) -> str:
        return f"ecash-kafka-{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def run_args(self) -> list[str]:
        """``docker run`` arguments: detached, published on loopback only, data in a named volume."""
        env = [f"--env={property_env_name(k)}={v}" for k, v in container_properties(self.port).items()]
        return [
            "run", "--detach", f"--name={self.name}", f"--publish=127.0.0.1:{self.port}:9092",
            f"--volume={self.name}:{CONTAINER_DATA_DIR}", f"--env=CLUSTER_ID={CLUSTER_ID}",
            "--env=KAFKA_HEAP_OPTS=-Xmx512m -Xms128m",
            *env, self.image,
        ]  # fmt: skip

    def start(self) -> str:
        state = self._state()
        if state is None:
            self._report(f"starting {self.image} as container {self.name}")
            self._docker_cmd(*self.run_args())
        elif state != "running":
            self._docker_cmd("start", self.name)
        self._wait_ready()
        self._report(f"kafka answering at {self.bootstrap} (container {self.name})")
        return self.bootstrap

    def stop(self) -> bool:
        if self._state() != "running":
            return False
        self._docker_cmd("stop", f"--time={int(self._stop_timeout_s)}", self.name)
        return True

    def restart(self, *, hard: bool = False, down_s: float = 0.0) -> str:
        if hard:
            self._docker_cmd("kill", self.name)
        else:
            self.stop()
        if down_s > 0:
            run_sync(lambda: self._clock.sleep_s(down_s))
        return self.start()

    def wipe(self) -> None:
        if self._state() is not None:
            self._docker_cmd("rm", "--force", self.name)
        self._docker_cmd("volume", "rm", "--force", self.name)

    def status(self) -> BrokerStatus:
        running = self._state() == "running"
        return BrokerStatus(self.kind, self.bootstrap, running, running and answers(self.bootstrap))

    def _state(self) -> str | None:
        done = self._run("inspect", "--format={{.State.Status}}", self.name)
        return done.stdout.strip() if done.returncode == 0 else None

    def _wait_ready(self) -> None:
        async def wait() -> bool:
            return await wait_until_answering(
                self.bootstrap,
                clock=self._clock,
                timeout_s=self._start_timeout_s,
                still_starting=lambda: True,
            )

        if not run_sync(wait):
            raise BrokerError(
                f"kafka in container {self.name} did not answer on {self.bootstrap} within "
                f"{self._start_timeout_s:g} s; see `docker logs {self.name}`"
            )

    def _docker_cmd(self, *args: str) -> str:
        done = self._run(*args)
        if done.returncode != 0:
            raise BrokerError(f"docker {args[0]} failed (exit {done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [self._docker, *args]
        try:
            return subprocess.run(  # noqa: S603 - our own argument list, no shell
                command, capture_output=True, text=True, timeout=DOCKER_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"docker {args[0]} did not finish within {DOCKER_TIMEOUT_S:g} s") from exc
