"""The processes of a run: the design under test (one or several replicas, optionally under a profiler),
its command line and environment, and the sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

from bench.sampling import cpu_s, status_kib
from bench.scenarios import Context
from bench.topics import Topics
from bench.whatif import CHILDREN
from ecash_dev.stack import ChildProcess, SandboxProcess, child_environ, free_port, settings_env
from worker.settings import SANDBOX_API_IDENTITY

REPO_ROOT = Path(__file__).resolve().parents[1]


class DesignProcess(ChildProcess):
    """The design under test: ``ecash-worker run``, the baseline, or either under a profiler.

    Under py-spy the process we spawn is the profiler; ``measured_pid`` is its child, the interpreter.
    A profiled run is stopped with SIGINT, which both the profiler (it writes its output) and the worker
    (a clean drain, as on SIGTERM) take as "stop".
    """

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        super().__init__(name, [], env=env, log_path=log_path)
        self.argv = argv

    @property
    def profiled(self) -> bool:
        return Path(self.argv[0]).name == "py-spy"

    @property
    def measured_pid(self) -> int | None:
        pid = self.pid
        if pid is None or not self.profiled:
            return pid
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
        return None

    async def stop(self, timeout_s: float = 60.0) -> int | None:
        if not self.running:
            return self.returncode
        if self.profiled:
            self._signal(signal.SIGINT)
            code = await self.wait(timeout_s)
            if code is not None:
                return code
        return await self.terminate(timeout_s)


class Replicas:
    """The design's processes: one, or several replicas of the worker in one consumer group."""

    def __init__(self, processes: list[DesignProcess]) -> None:
        self.processes = processes

    def spawn(self) -> None:
        for process in self.processes:
            process.spawn()

    @property
    def running(self) -> bool:
        return any(process.running for process in self.processes)

    def cpu_s(self) -> float | None:
        used = [cpu_s(process.measured_pid) for process in self.processes]
        return None if all(u is None for u in used) else sum(u or 0.0 for u in used)

    def kib(self, name: str) -> int | None:
        """The largest ``Vm*`` value among the processes (each replica is its own pod)."""
        sizes = [status_kib(process.measured_pid, name) for process in self.processes]
        return max((size for size in sizes if size is not None), default=None)

    async def stop(self) -> list[int | None]:
        return list(await asyncio.gather(*(process.stop() for process in self.processes)))


def replicas_of(design: str, argv: list[str], env: dict[str, str], run_dir: Path, count: int) -> Replicas:
    processes = []
    for index in range(count):
        own = dict(env)
        if index > 0:  # each replica is a pod of its own: its own metrics port and state directory
            own["ECASH_METRICS_PORT"] = str(free_port())
            own["ECASH_STATE_DIR"] = str(run_dir / f"state-{index}")
        name = design if count == 1 else f"{design}-{index}"
        processes.append(DesignProcess(name, argv, own, run_dir / f"{name}.log"))
    return Replicas(processes)


async def start_sandbox(latency_ms: float, log_path: Path) -> SandboxProcess:
    options = ["--latency-ms", str(latency_ms), "--auto-create-wallets", "--token-lifetime-s", "0"]
    sandbox = SandboxProcess(options=options, log_path=log_path)
    await sandbox.start()
    return sandbox


def design_env(ctx: Context, topics: Topics, api_url: str, transport: str, run_dir: Path) -> dict[str, str]:
    """The environment of ``ecash-worker run`` (the baseline reads the same settings)."""
    values: dict[str, Any] = {
        **topics.settings(),
        "kafka_bootstrap_servers": ctx.bootstrap,
        "api_base_url": api_url,
        **SANDBOX_API_IDENTITY,
        "max_in_flight": ctx.max_in_flight,
        "http_transport": transport,
        "metrics_host": "127.0.0.1",
        "metrics_port": free_port(),
        "state_dir": run_dir / "state",
        "log_format": "json",
        "log_level": ctx.log_level,
    }
    env = {**settings_env(values), **ctx.extra_env}
    if ctx.worker_src is not None:
        # another tree rejects a setting it does not know (one added since): pass only what the bench sets,
        # and let that tree's own defaults stand for the rest, as they did in its day
        named = {f"ECASH_{name.upper()}" for name in values} | set(ctx.extra_env)
        env = {name: value for name, value in env.items() if name in named}
    # bench.* (the baseline, the no-journal variant) is not installed: it comes from this checkout.
    sources = [ctx.worker_src, REPO_ROOT] if ctx.worker_src is not None else [REPO_ROOT]
    env["PYTHONPATH"] = os.pathsep.join(str(path) for path in sources)
    return child_environ(env)


# --profile NAME: the wrapper module the design runs under, and the file it writes in the run's directory
WRAPPERS = {
    "kafka-requests": ("bench.kafka_requests", "kafka-requests.txt"),  # each request type's round trips
    "gc": ("bench.gc_pauses", "gc.txt"),  # the cycle collector's passes by generation
    "memory": ("bench.memory_probe", "memory.tsv"),  # RSS beside Python's, glibc's and SQLite's memory
}


def design_argv(design: str, profile: str, run_dir: Path, worker_src: Path | None) -> list[str]:
    """The command line of the design under test. With ``worker_src`` the interpreter runs with ``-P``
    (no current directory on sys.path), so PYTHONPATH (``design_env``) picks that tree's ``worker``."""
    python = [sys.executable, "-P"] if worker_src is not None else [sys.executable]
    if design == "baseline":
        return [*python, "-m", "bench.baseline"]
    module = ["-m", "bench.run", "--child", design] if design in CHILDREN else []
    module = module or ["-m", "worker.cli", "run"]
    if profile == "pyinstrument":
        out = str(run_dir / "profile.txt")
        return [*python, "-m", "pyinstrument", "-r", "text", "-o", out, "--show-all", *module]
    if profile in WRAPPERS:  # the module run under a measuring hook (bench/wrapped_module.py)
        wrapper, out_name = WRAPPERS[profile]
        return [*python, "-m", wrapper, str(run_dir / out_name), "--", *module]
    if profile in ("py-spy", "py-spy-svg"):  # collapsed stacks to count, or a flame graph to look at
        svg = profile == "py-spy-svg"
        out = str(run_dir / ("profile.svg" if svg else "profile.collapsed"))
        py_spy = str(Path(sys.executable).with_name("py-spy"))
        form = ["--format", "flamegraph"] if svg else ["--format", "raw"]
        record = [py_spy, "record", "--rate", "200", *form, "--output", out]
        return [*record, "--", *python, *module]
    return [*python, *module]
