"""Where the worker's resident memory sits, over time: ``--profile memory``.

``python -m bench.memory_probe OUT -- -m worker.cli run`` runs the module after the ``--`` as ``python -m``
would, with a thread that every ``SAMPLE_EVERY_S`` appends one row to OUT (tab-separated, a header first):
the process's RSS, then the three allocators that can hold it, so that a step in the RSS curve can be put
on one of them:

- Python's own: ``sys.getallocatedblocks()`` (live objects' memory blocks, pymalloc and larger);
- glibc's heap (``mallinfo2``): bytes in use, bytes free but kept in the heap's arenas, bytes in ``mmap``
  blocks; free-but-kept is fragmentation, not a leak;
- SQLite's (``sqlite3_memory_used``): the journal's and the claims index's page caches and statements.

Measurement only (docs/performance.md, "Memory over a million commands"): a sample reads ``/proc`` and
makes two C calls, under a millisecond every few seconds.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from bench.wrapped_module import run_wrapped
from worker.malloc_policy import glibc

__all__ = ["MemorySample", "main", "sample"]

SAMPLE_EVERY_S = 5.0


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


@dataclass(frozen=True)
class MemorySample:
    """One row: seconds since start, then sizes in KiB (blocks are a count)."""

    elapsed_s: float
    rss_kib: int
    python_blocks: int
    heap_in_use_kib: int
    heap_free_kept_kib: int
    mmap_kib: int
    sqlite_kib: int
    threads: int


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text("ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _glibc_mallinfo() -> Callable[[], _MallInfo2] | None:
    libc = glibc()
    info = getattr(libc, "mallinfo2", None) if libc is not None else None  # glibc 2.33 and later
    if info is None:
        return None
    info.restype = _MallInfo2
    return info  # type: ignore[no-any-return]


def _sqlite_memory_used() -> Callable[[], int] | None:
    try:
        import _sqlite3

        used = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used
    except (ImportError, OSError, AttributeError):
        return None
    used.restype = ctypes.c_int64
    return used


def sample(
    started: float,
    mallinfo: Callable[[], _MallInfo2] | None,
    sqlite_used: Callable[[], int] | None,
) -> MemorySample:
    """Read every figure once, now (a figure its library cannot give is -1)."""
    info = mallinfo() if mallinfo is not None else None
    return MemorySample(
        elapsed_s=round(time.monotonic() - started, 1),
        rss_kib=_rss_kib(),
        python_blocks=sys.getallocatedblocks(),
        heap_in_use_kib=info.uordblks // 1024 if info else -1,
        heap_free_kept_kib=info.fordblks // 1024 if info else -1,
        mmap_kib=info.hblkhd // 1024 if info else -1,
        sqlite_kib=sqlite_used() // 1024 if sqlite_used else -1,
        threads=threading.active_count(),
    )


def _install(out: Path) -> None:
    started = time.monotonic()
    mallinfo, sqlite_used = _glibc_mallinfo(), _sqlite_memory_used()
    out.write_text("\t".join(f.name for f in fields(MemorySample)) + "\n", "utf-8")

    def loop() -> None:
        while True:
            row = sample(started, mallinfo, sqlite_used)
            with out.open("a", encoding="utf-8") as file:
                file.write("\t".join(str(value) for value in astuple(row)) + "\n")
            time.sleep(SAMPLE_EVERY_S)

    threading.Thread(target=loop, name="memory-probe", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    return run_wrapped("bench.memory_probe", _install, argv)


if __name__ == "__main__":
    sys.exit(main())
