"""How the worker's process asks glibc's allocator to hand freed memory back (docs/performance.md, "Memory").

Python keeps its small objects in its own arenas; everything larger than 512 bytes (a Kafka response read
off the socket, a produce batch, SQLite's pages) comes from glibc's ``malloc``. glibc serves a request of
``M_MMAP_THRESHOLD`` or more with its own ``mmap``, returned to the system when freed, and starts that
threshold at 128 KiB; but each time such a block is freed it raises the threshold to the block's size
(up to 32 MiB), so after the first few fetch responses every later one is carved out of the heap, and a
burst of them leaves the heap grown with free space the system never gets back. Measured over a million
commands (``--profile memory``): a burst of ~24 MiB of large buffers at 76% of the run left 29 MiB free
but kept, and the RSS stepped from 156 to 177 MiB with Python's objects, SQLite's caches and the live
heap unchanged.

So the threshold is fixed at start-up (which also turns its raising off): a large buffer is its own mapping
and goes back to the system when freed. ``MALLOC_MMAP_THRESHOLD_`` in the environment, glibc's own knob,
wins over this; on another C library (musl, macOS) nothing is done.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["MMAP_THRESHOLD_BYTES", "fix_mmap_threshold", "glibc"]

MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value, kept from moving
_M_MMAP_THRESHOLD = -3  # malloc.h
_OPERATOR_KNOB = "MALLOC_MMAP_THRESHOLD_"


def glibc() -> ctypes.CDLL | None:
    """The C library this process already runs on, if it is glibc (``None`` otherwise).

    ``CDLL(None)`` is the process's own symbols: no search for the library file (``find_library`` runs
    ``ldconfig``, a few milliseconds of start-up). ``malloc_trim`` is glibc's alone."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def fix_mmap_threshold(threshold_bytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Serve every allocation of ``threshold_bytes`` or more with its own mapping, for good.

    True when glibc took it; False when the operator set ``MALLOC_MMAP_THRESHOLD_`` or this is not glibc."""
    if _OPERATOR_KNOB in os.environ:
        return False
    libc = glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold_bytes))
