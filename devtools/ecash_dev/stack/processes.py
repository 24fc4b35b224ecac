"""Child processes: ``ecash-worker run`` and ``ecash-worker sandbox``, each in a session of its own."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pydantic import SecretStr

from ecash_dev.stack.admin import SandboxAdmin
from ecash_dev.stack.base import LOG_TAIL_LINES, StackError, free_port, tail
from worker.clock import Clock, SystemClock
from worker.settings import Settings, load_settings

ENV_PREFIX = "ECASH_"
_POLL_S = 0.05


def settings_env(settings: Settings | Mapping[str, Any]) -> dict[str, str]:
    """The ``ECASH_*`` environment that makes ``ecash-worker run`` (another process) use these settings.

    A mapping holds field names and values (``{"request_timeout_s": 1.5, ...}``); it is validated as
    ``Settings`` first, so a bad value fails here, in the parent. Unset optional values become ``""``
    (which every optional setting reads as unset), so nothing is inherited by accident.
    """
    if not isinstance(settings, Settings):
        settings = load_settings(**dict(settings))
    env: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            text = ""
        elif isinstance(value, SecretStr):
            text = value.get_secret_value()
        elif isinstance(value, list):
            text = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        env[f"{ENV_PREFIX}{name.upper()}"] = text
    return env


def child_environ(overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without its ``ECASH_*`` variables, plus ``overrides``."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    return {**inherited, **overrides}


_LIVE: set[ChildProcess] = set()


def kill_children() -> None:
    """SIGKILL every child of this module still running (registered with ``atexit``)."""
    for child in list(_LIVE):
        child.kill_now()


atexit.register(kill_children)


class ChildProcess:
    """``python -m worker.cli <argv...>`` in its own session, stdout and stderr appended to a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self.argv = [sys.executable, "-m", "worker.cli", *argv]
        self.env = dict(env) if env is not None else child_environ({})
        self.log_path = log_path
        self.clock: Clock = clock or SystemClock()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit code of the last run (negative: killed by that signal); None while running."""
        return self.process.poll() if self.process is not None else None

    def spawn(self) -> None:
        """Start the process (no readiness check: see the subclasses' ``start``)."""
        if self.running:
            raise StackError(f"{self.name} is already running (pid {self.pid})")
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as files:
            out: Any = subprocess.DEVNULL
            if self.log_path is not None:
                out = files.enter_context(self.log_path.open("ab"))
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        _LIVE.add(self)

    async def wait(self, timeout_s: float) -> int | None:
        """The exit code once the process has ended, or None if it still runs after ``timeout_s``."""
        deadline_s = self.clock.monotonic_s() + timeout_s
        while self.process is not None:
            code = self.process.poll()
            if code is not None:
                _LIVE.discard(self)
                return code
            if self.clock.monotonic_s() >= deadline_s:
                return None
            await self.clock.sleep_s(_POLL_S)
        return None

    async def kill(self) -> int:
        """SIGKILL (no clean shutdown, like a crash) and reap; returns the exit code (-9)."""
        self.kill_now()
        code = await self.wait(10.0)
        if code is None:
            raise StackError(f"{self.name} (pid {self.pid}) survived SIGKILL")
        return code

    async def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, wait up to ``timeout_s`` for a clean exit, then SIGKILL; returns the exit code."""
        if self.process is None:
            raise StackError(f"{self.name} was never started")
        if self.running:
            self._signal(signal.SIGTERM)
        code = await self.wait(timeout_s)
        if code is None:
            return await self.kill()
        return code

    def freeze(self) -> None:
        """SIGSTOP: the process stops dead (a long GC pause, a VM pause), sockets open, nothing sent."""
        if self.running:
            self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT: the frozen process goes on where it stopped."""
        if self.running:
            self._signal(signal.SIGCONT)

    def detach(self) -> None:
        """Leave the process running when this interpreter exits (no ``atexit`` kill)."""
        _LIVE.discard(self)

    def kill_now(self) -> None:
        """Synchronous SIGKILL: for cleanup paths that cannot await."""
        if self.running:
            self._signal(signal.SIGKILL)
            assert self.process is not None
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5.0)
        if not self.running:
            _LIVE.discard(self)

    def _signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, sig)  # its own session: the group id is its pid
        except ProcessLookupError:
            pass
        except PermissionError:
            self.process.send_signal(sig)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return tail(self.log_path, lines)


class WorkerProcess(ChildProcess):
    """``ecash-worker run`` with the ``ECASH_*`` environment of ``settings`` (JSON logs to ``log_path``).

    ``start`` may be called again after ``kill``/``terminate``: the same settings, the log appended.
    """

    def __init__(
        self,
        settings: Settings | Mapping[str, Any],
        log_path: Path,
        *,
        name: str = "worker",
        extra_env: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        overrides = {**settings_env(settings), f"{ENV_PREFIX}LOG_FORMAT": "json", **(extra_env or {})}
        super().__init__(name, ["run"], env=child_environ(overrides), log_path=log_path, clock=clock)

    async def start(self) -> None:
        """Spawn the worker. It joins its group on its own; readiness is up to the caller to judge."""
        self.spawn()


class SandboxProcess(ChildProcess):
    """``ecash-worker sandbox --host H --port P <options>``; ``start`` returns once it answers.

    ``options`` are the CLI's own (``--seed-wallets 2000``, ``--fault SPEC``, ``--random-seed 7``...).
    """

    def __init__(
        self,
        *,
        options: Sequence[str] = (),
        port: int | None = None,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        argv = ["sandbox", "--host", host, "--port", str(self.port), *options]
        super().__init__("sandbox", argv, log_path=log_path, clock=clock)
        self.admin = SandboxAdmin(self.admin_url)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What the worker's ``api_base_url`` takes."""
        return f"{self.url}/eCashHost"

    @property
    def admin_url(self) -> str:
        return f"{self.url}/admin"

    async def start(self, timeout_s: float = 30.0) -> None:
        """Spawn and wait for ``GET /admin/health``; a sandbox that exits or stays silent is an error."""
        self.spawn()
        deadline_s = self.clock.monotonic_s() + timeout_s
        while not (self.running and await self.admin.healthy()):
            if not self.running:
                raise StackError(f"the sandbox exited with {self.returncode}:\n{self.log_tail()}")
            if self.clock.monotonic_s() >= deadline_s:
                self.kill_now()
                raise StackError(f"the sandbox did not answer on {self.url} in {timeout_s:g} s")
            await self.clock.sleep_s(0.1)

    async def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM (then SIGKILL); returns the exit code, None if it was not running."""
        code = await self.terminate(timeout_s) if self.running else None
        await self.admin.aclose()
        return code

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
