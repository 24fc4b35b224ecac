"""``--profile memory``: a real process measured through it, and the command line (bench/memory_probe.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench.memory_probe import _glibc_mallinfo, _sqlite_memory_used, sample
from bench.processes import design_argv
from bench.rss_picture import allocator_series

REPO = Path(__file__).resolve().parents[2]


def test_a_sample_sees_memory_the_process_takes_in_each_allocator() -> None:
    mallinfo, sqlite_used = _glibc_mallinfo(), _sqlite_memory_used()
    before = sample(time.monotonic(), mallinfo, sqlite_used)
    held = [bytes(4096) for _ in range(4096)]  # 16 MiB in glibc's heap (above pymalloc's 512-byte limit)
    import sqlite3

    db = sqlite3.connect(":memory:")
    db.execute("create table t (v blob)")
    db.executemany("insert into t values (?)", ((bytes(1024),) for _ in range(2000)))
    after = sample(time.monotonic(), mallinfo, sqlite_used)
    assert after.heap_in_use_kib - before.heap_in_use_kib >= 15 * 1024
    # the RSS need not grow: a heap with free space kept (as a long test session's is) serves them from it
    assert after.rss_kib >= after.heap_in_use_kib
    assert after.sqlite_kib - before.sqlite_kib >= 1024
    assert after.python_blocks - before.python_blocks >= 4096
    db.close()
    del held


def test_a_process_run_through_it_leaves_rows_of_its_memory(tmp_path: Path) -> None:
    out = tmp_path / "memory.tsv"
    (tmp_path / "holds.py").write_text("import time\nheld = bytes(64 << 20)\ntime.sleep(0.5)\n")
    subprocess.run(
        [sys.executable, "-m", "bench.memory_probe", str(out), "--", "-m", "holds"],
        check=True,
        cwd=REPO,
        env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    header, *rows = out.read_text().splitlines()
    assert header.split("\t")[:3] == ["elapsed_s", "rss_kib", "python_blocks"]
    assert rows  # the first sample is taken at start, before the module runs
    assert all(len(row.split("\t")) == len(header.split("\t")) for row in rows)


def test_the_profile_wraps_the_design_under_test(tmp_path: Path) -> None:
    argv = design_argv("worker", "memory", tmp_path, None)
    assert argv[1:5] == ["-m", "bench.memory_probe", str(tmp_path / "memory.tsv"), "--"]
    assert argv[5:] == ["-m", "worker.cli", "run"]


def test_the_picture_puts_what_no_allocator_holds_as_the_rss_less_glibcs_heap_and_mappings() -> None:
    tsv = (
        "elapsed_s\trss_kib\tpython_blocks\theap_in_use_kib\theap_free_kept_kib\tmmap_kib\tsqlite_kib\tthreads\n"
        "5.0\t163840\t570000\t65536\t7168\t1024\t26624\t2\n"
        "10.0\t185344\t570000\t65536\t28672\t1024\t26624\t2\n"  # the step: 21 MiB freed but kept
    )
    series = allocator_series(tsv)
    assert series["seconds"] == [5.0, 10.0]
    assert series["RSS"] == [160.0, 181.0]
    assert series["glibc heap free but kept"] == [7.0, 28.0]
    assert series["Python's arenas, code and the rest"] == [88.0, 88.0]  # Python flat: the step is glibc's
    assert series["SQLite"] == [26.0, 26.0]
