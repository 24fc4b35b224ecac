"""A Kafka broker as a background JVM: its own process group, a pid file, log files in the data dir."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from ecash_dev.kafka.base import (
    BrokerError,
    BrokerStatus,
    Report,
    answers,
    run_sync,
    silent,
    tail,
    wait_until_answering,
)
from ecash_dev.kafka.jvm_files import (
    LocalKafkaConfig,
    check_java,
    fetch_jars,
    find_java,
    format_storage,
    write_config_files,
)
from worker.clock import Clock, SystemClock

KILL_WAIT_S = 10.0


class LocalKafka:
    """A single-node KRaft broker started from Kafka's jars. See ``LocalKafkaConfig`` for where it lives.

    ``start``/``stop``/``restart`` block (seconds); from a running event loop call them through
    ``asyncio.to_thread`` so the loop keeps serving while the broker is down.
    """

    kind = "jvm"

    def __init__(
        self,
        config: LocalKafkaConfig,
        *,
        java_home: str | None = None,
        report: Report = silent,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self._java_home = java_home
        self._report = report
        self._clock = clock or SystemClock()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return self.config.bootstrap

    def pid(self) -> int | None:
        """The broker's pid if a broker started from this data dir is alive."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        try:
            pid = int(self.config.pid_file.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None
        return pid if _is_our_broker(pid, self.config.properties_file) else None

    def start(self) -> str:
        running = self.pid()
        if running is not None:
            self._wait_ready(running)
            return self.bootstrap
        java = find_java(self.config.java, self._java_home)
        check_java(java)
        classpath = str(fetch_jars(self.config, self._report) / "*")
        _check_ports_free(self.config)
        write_config_files(self.config)
        format_storage(self.config, java, classpath, self._report)
        pid = self._spawn(java, classpath)
        self._wait_ready(pid)
        self._report(f"kafka answering at {self.bootstrap} (pid {pid}, log {self.config.log_file})")
        return self.bootstrap

    def stop(self) -> bool:
        pid = self.pid()
        if pid is None:
            self.config.pid_file.unlink(missing_ok=True)
            return False
        _signal_group(pid, signal.SIGTERM)
        if not self._wait_gone(pid, self.config.stop_timeout_s):
            self._report(f"kafka (pid {pid}) still up after {self.config.stop_timeout_s:g} s: killing it")
            self._kill(pid)
        self.config.pid_file.unlink(missing_ok=True)
        self._report(f"kafka (pid {pid}) stopped")
        return True

    def kill(self) -> bool:
        """SIGKILL, like a crash: no clean shutdown, the next start recovers the logs."""
        pid = self.pid()
        if pid is None:
            return False
        self._kill(pid)
        self.config.pid_file.unlink(missing_ok=True)
        return True

    def restart(self, *, hard: bool = False, down_s: float = 0.0) -> str:
        if hard:
            self.kill()
        else:
            self.stop()
        if down_s > 0:
            run_sync(lambda: self._clock.sleep_s(down_s))
        return self.start()

    def wipe(self) -> None:
        self.stop()
        shutil.rmtree(self.config.data_dir, ignore_errors=True)

    def status(self) -> BrokerStatus:
        pid = self.pid()
        answering = pid is not None and answers(self.bootstrap)
        return BrokerStatus(self.kind, self.bootstrap, pid is not None, answering, pid, self.config.log_file)

    def _spawn(self, java: str, classpath: str) -> int:
        config = self.config
        command = [
            java, f"-Xmx{config.heap}", "-Xms128m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={config.log4j_file}",
            "-cp", classpath, "kafka.Kafka", str(config.properties_file),
        ]  # fmt: skip
        with config.console_file.open("ab") as console:
            self._proc = subprocess.Popen(  # noqa: S603 - our own command line, no shell
                command,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=config.data_dir,
                start_new_session=True,  # its own process group: stop signals the whole group
            )
        config.pid_file.write_text(f"{self._proc.pid}\n", encoding="utf-8")
        return self._proc.pid

    def _wait_ready(self, pid: int) -> None:
        timeout_s = self.config.start_timeout_s

        async def wait() -> bool:
            return await wait_until_answering(
                self.bootstrap,
                clock=self._clock,
                timeout_s=timeout_s,
                still_starting=lambda: self._alive(pid),
            )

        if run_sync(wait):
            return
        logs = f"see {self.config.log_file} and {self.config.console_file}"
        if not self._alive(pid):
            self.config.pid_file.unlink(missing_ok=True)
            detail = tail(self.config.console_file) or tail(self.config.log_file)
            raise BrokerError(f"kafka (pid {pid}) exited while starting; {logs}\n{detail}")
        self.stop()
        raise BrokerError(
            f"kafka did not answer on {self.bootstrap} within {timeout_s:g} s (stopped it); {logs}\n"
            f"{tail(self.config.log_file)}"
        )

    def _alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None
        return _is_alive(pid)

    def _wait_gone(self, pid: int, timeout_s: float) -> bool:
        async def wait() -> bool:
            deadline_s = self._clock.monotonic_s() + timeout_s
            while self._alive(pid):
                if self._clock.monotonic_s() >= deadline_s:
                    return False
                await self._clock.sleep_s(0.1)
            return True

        gone = run_sync(wait)
        if gone and self._proc is not None and self._proc.pid == pid:
            self._proc.wait()
            self._proc = None
        return gone

    def _kill(self, pid: int) -> None:
        _signal_group(pid, signal.SIGKILL)
        if not self._wait_gone(pid, KILL_WAIT_S):
            raise BrokerError(f"kafka (pid {pid}) survived SIGKILL for {KILL_WAIT_S:g} s")


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # started with start_new_session: its process group id is its pid
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text(encoding="ascii", errors="replace").rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): signal 0 is all we can know


def _is_our_broker(pid: int, properties_file: Path) -> bool:
    """Alive, and (where /proc tells) a kafka.Kafka started on this data dir's properties: pids get reused."""
    if not _is_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True
    return b"kafka.Kafka" in cmdline and str(properties_file).encode() in cmdline


def _check_ports_free(config: LocalKafkaConfig) -> None:
    for port in (config.port, config.effective_controller_port):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Kafka's acceptor does
            try:
                probe.bind((config.host, port))
            except OSError as exc:
                raise BrokerError(
                    f"port {config.host}:{port} is in use ({exc.strerror}): another broker? "
                    "pick another with --port, or stop it"
                ) from None


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ports nobody listens on right now, all different (tests: a broker per session, never 19092)."""
    probes = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for probe in probes:
            probe.bind((host, 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()
