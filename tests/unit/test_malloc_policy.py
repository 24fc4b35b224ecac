"""glibc's mmap threshold, fixed at start-up: freed large buffers go back to the system
(worker/malloc_policy.py).

Each case runs in its own interpreter: the threshold is process-wide and cannot be put back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

# Free one 4 MiB buffer (glibc then raises its threshold to 4 MiB unless it is fixed), then hold 64
# buffers of 256 KiB and report how much of them glibc served as mappings of their own.
_SCRIPT = """
import json, sys
from bench.memory_probe import _glibc_mallinfo
from worker.malloc_policy import fix_mmap_threshold
took = fix_mmap_threshold() if sys.argv[1] == "fixed" else None
mallinfo = _glibc_mallinfo()
first = bytes(4 << 20)
del first
before = mallinfo().hblkhd
held = [bytes(256 << 10) for _ in range(64)]
print(json.dumps({"took": took, "mapped_kib": (mallinfo().hblkhd - before) // 1024}))
"""


def _run(case: str, **env: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, case],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        timeout=60,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_after_a_large_buffer_is_freed_later_ones_are_still_mappings_of_their_own() -> None:
    fixed = _run("fixed")
    assert fixed["took"] is True
    assert fixed["mapped_kib"] >= 64 * 256  # every 256 KiB buffer its own mapping, returned when freed


def test_glibc_left_alone_carves_them_out_of_its_heap_instead() -> None:
    # what the fix is for: the threshold moved to 4 MiB, so the same buffers stay in the heap when freed
    assert _run("default")["mapped_kib"] == 0


def test_the_operators_own_glibc_setting_wins() -> None:
    mine = _run("fixed", MALLOC_MMAP_THRESHOLD_=str(8 << 20))
    assert mine["took"] is False
    assert mine["mapped_kib"] == 0  # their 8 MiB threshold stands
