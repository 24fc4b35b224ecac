"""``--profile gc``: the table of the cycle collector's passes, and a real process measured through it
(bench/gc_pauses.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.gc_pauses import GcStats, render
from bench.processes import design_argv


def test_the_table_counts_each_generation_and_the_pauses_of_ten_ms_or_more() -> None:
    stats = GcStats()
    for _ in range(4):
        stats.add(0, 0.002)
    stats.add(2, 0.080)  # a full pass that stopped the loop for 80 ms
    lines = render(stats, thresholds=(25_000, 10, 10), frozen=91_000).splitlines()
    assert lines[1].split() == ["0", "4", "0.008", "2.00", "2.0", "0"]
    assert lines[2].split() == ["1", "0", "0.000", "0.00", "0.0", "0"]
    assert lines[3].split() == ["2", "1", "0.080", "80.00", "80.0", "1"]
    assert lines[4].split() == ["all", "5", "0.088"]
    assert lines[5] == "thresholds (25000, 10, 10), frozen at start-up 91,000 objects"


def test_a_process_run_through_it_leaves_its_collections_in_the_table(tmp_path: Path) -> None:
    out = tmp_path / "gc.txt"
    script = "import gc\nfor _ in range(3): gc.collect()\n"
    (tmp_path / "collects.py").write_text(script)
    subprocess.run(
        [sys.executable, "-m", "bench.gc_pauses", str(out), "--", "-m", "collects"],
        check=True,
        cwd=Path(__file__).resolve().parents[2],
        env={"PYTHONPATH": f"{tmp_path}:{Path(__file__).resolve().parents[2]}", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    full = out.read_text().splitlines()[3].split()
    assert full[0] == "2"
    assert int(full[1]) >= 3  # its three full passes, at least


def test_the_profile_wraps_the_design_under_test(tmp_path: Path) -> None:
    argv = design_argv("worker", "gc", tmp_path, None)
    assert argv == [
        sys.executable,
        "-m",
        "bench.gc_pauses",
        str(tmp_path / "gc.txt"),
        "--",
        "-m",
        "worker.cli",
        "run",
    ]
