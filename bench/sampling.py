"""CPU and memory of the processes while a design runs, from /proc: the samples and what they add up to."""

from __future__ import annotations

import asyncio
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bench.scenarios import Context
from bench.topics import EndOffsets
from ecash_dev.stack import SandboxProcess

CLK_TCK = os.sysconf("SC_CLK_TCK")
# How often the harness looks for a run's end: the end offsets between two samples (watch_until), then,
# once they pass the number of commands (they count commit markers too), the committed results
# (bench.measuring.drive): the last transactions commit within milliseconds.
END_POLL_S = 0.1


def cpu_s(pid: int | None) -> float | None:
    """user + system CPU seconds of a process (fields 14 and 15 of /proc/<pid>/stat)."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid: int | None, name: str) -> int | None:
    """A ``Vm*`` line of /proc/<pid>/status in KiB (VmRSS now, VmHWM the peak)."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def status_line_kib(path: str, name: str) -> int | None:
    for line in Path(path).read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return None


def machine_busy_s() -> float:
    """CPU seconds every process on the machine has used (the ``cpu`` line of /proc/stat, idle excluded)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Sample:
    t_unix_s: float
    results: int
    design_cpu_s: float | None
    design_rss_kib: int | None
    sandbox_cpu_s: float | None
    broker_cpu_s: float | None
    bench_cpu_s: float
    machine_busy_s: float


@dataclass
class Watch:
    samples: list[Sample] = field(default_factory=list)

    def cpu_between(self, name: str, t0: float, t1: float) -> float | None:
        a, b = self.at(name, t0), self.at(name, t1)
        return None if a is None or b is None else max(0.0, b - a)

    def at(self, name: str, t: float) -> float | None:
        """The named counter at time ``t``, interpolated between the samples around it."""
        points = [(s.t_unix_s, getattr(s, name)) for s in self.samples if getattr(s, name) is not None]
        if not points:
            return None
        before = [p for p in points if p[0] <= t]
        after = [p for p in points if p[0] >= t]
        if not before:
            return float(points[0][1])
        if not after:
            return float(points[-1][1])
        (t0, v0), (t1, v1) = before[-1], after[0]
        if t1 == t0:
            return float(v0)
        return float(v0 + (v1 - v0) * (t - t0) / (t1 - t0))


class Measured(Protocol):
    """What is sampled of the design under test (``bench.processes.Replicas``)."""

    @property
    def running(self) -> bool: ...

    def cpu_s(self) -> float | None: ...

    def kib(self, name: str) -> int | None: ...


async def watch_until(
    ctx: Context,
    design: Measured,
    sandbox: SandboxProcess,
    ends: EndOffsets,
    expected: int,
    timeout_s: float,
) -> tuple[Watch, bool]:
    """Sample the processes until ``expected`` results are in the results topic (or time runs out)."""
    watch = Watch()
    deadline = time.monotonic() + timeout_s
    while True:
        results = await ends.total()
        watch.samples.append(
            Sample(
                time.time(),
                results,
                design.cpu_s(),
                design.kib("VmRSS"),
                cpu_s(sandbox.pid),
                cpu_s(ctx.broker_pid),
                self_cpu_s(),
                machine_busy_s(),
            )
        )
        if results >= expected:
            return watch, True
        if not design.running or time.monotonic() > deadline:
            return watch, False
        await _until_sample_or_done(ends, expected, ctx.sample_interval_s)


async def _until_sample_or_done(ends: EndOffsets, expected: int, interval_s: float) -> None:
    """Wait for the next sample, looking at the end offsets every ``END_POLL_S`` meanwhile: a run that ends
    between two samples is seen (and its last sample taken) within that, not up to a whole interval late."""
    next_sample = time.monotonic() + interval_s
    while (left_s := next_sample - time.monotonic()) > 0:
        await asyncio.sleep(min(END_POLL_S, left_s))
        if await ends.total() >= expected:
            return


async def wait_for_quiet(ctx: Context, ours: list[int | None], window_s: float = 3.0) -> float:
    """Wait (at most ``ctx.quiet_wait_s``) until the rest of the machine uses less than
    ``ctx.quiet_below_cores`` over a window: a run on a shared machine measures less of its neighbours."""
    started = time.monotonic()
    while True:
        busy0, mine0 = machine_busy_s(), sum(cpu_s(pid) or 0.0 for pid in ours) + self_cpu_s()
        await asyncio.sleep(window_s)
        busy1, mine1 = machine_busy_s(), sum(cpu_s(pid) or 0.0 for pid in ours) + self_cpu_s()
        others = ((busy1 - busy0) - (mine1 - mine0)) / window_s
        waited = time.monotonic() - started
        assert ctx.quiet_below_cores is not None
        if others < ctx.quiet_below_cores or waited >= ctx.quiet_wait_s:
            return round(waited, 1)
