"""What Python's cycle collector costs the worker: ``--profile gc``.

``python -m bench.gc_pauses OUT -- -m worker.cli run`` runs the module after the ``--`` as ``python -m``
would, with a ``gc.callbacks`` hook timing every collection: per generation, how many passes, their total
and longest time, and how many paused the event loop (the whole process: a pass holds the GIL) for 10 ms
or more. Written to OUT every 2 s of collections and at exit, with the thresholds in force and how many
objects start-up froze (worker/gc_policy.py).

Measurement only (docs/performance.md, "Garbage"): the hook costs a microsecond or two per pass.
"""

from __future__ import annotations

import atexit
import gc
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.wrapped_module import run_wrapped

__all__ = ["GcStats", "main", "render"]

LONG_PAUSE_S = 0.010
_WRITE_EVERY_S = 2.0


@dataclass
class Generation:
    passes: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    long: int = 0  # passes of LONG_PAUSE_S or more


@dataclass
class GcStats:
    """The passes of each generation (0 young, 2 full), from ``gc.callbacks``' start and stop."""

    generations: list[Generation] = field(default_factory=lambda: [Generation() for _ in range(3)])

    def add(self, generation: int, elapsed_s: float) -> None:
        g = self.generations[generation]
        g.passes += 1
        g.total_s += elapsed_s
        g.max_s = max(g.max_s, elapsed_s)
        g.long += int(elapsed_s >= LONG_PAUSE_S)

    @property
    def total_s(self) -> float:
        return sum(g.total_s for g in self.generations)


def render(stats: GcStats, *, thresholds: tuple[int, ...], frozen: int) -> str:
    """One line per generation, then the total, the thresholds and the frozen count."""
    lines = [
        f"{'generation':12s} {'passes':>8s} {'total s':>9s} {'mean ms':>8s} {'max ms':>8s} {'>=10 ms':>8s}"
    ]
    for number, g in enumerate(stats.generations):
        mean_ms = 1000 * g.total_s / g.passes if g.passes else 0.0
        lines.append(
            f"{number:<12d} {g.passes:8d} {g.total_s:9.3f} {mean_ms:8.2f} {1000 * g.max_s:8.1f} {g.long:8d}"
        )
    lines.append(f"{'all':12s} {sum(g.passes for g in stats.generations):8d} {stats.total_s:9.3f}")
    lines.append(f"thresholds {thresholds}, frozen at start-up {frozen:,} objects")
    return "\n".join(lines) + "\n"


def _install(out: Path) -> None:
    stats = GcStats()
    started = [0.0]
    written = [time.monotonic()]

    def write() -> None:
        out.write_text(render(stats, thresholds=gc.get_threshold(), frozen=gc.get_freeze_count()), "utf-8")

    def hook(phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            started[0] = now
            return
        stats.add(int(info["generation"]), now - started[0])
        if time.monotonic() - written[0] >= _WRITE_EVERY_S:
            written[0] = time.monotonic()
            write()

    gc.callbacks.append(hook)
    atexit.register(write)


def main(argv: Sequence[str] | None = None) -> int:
    return run_wrapped("bench.gc_pauses", _install, argv)


if __name__ == "__main__":
    sys.exit(main())
