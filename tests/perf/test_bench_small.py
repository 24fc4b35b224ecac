"""The benchmark, CI-sized: 500 commands at 50 ms API latency: the worker, with its restore timed
after the run, and the naive baseline. (The what-if designs, bench/whatif.py, run in the campaign's
small version, test_bench_suite_small.py.)

Asserts that both designs finish with every result published, that a restart over the worker's state
directory replays nothing (the store is kept: the journal's cache), and that the figures are printed and
written: the speed targets live in the benchmark's printout and docs/performance.md, not in timed
assertions that a busy CI machine would make flaky.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.run import main_async, parse_args

pytestmark = pytest.mark.kafka


async def test_every_design_publishes_every_result_and_the_figures_are_printed(
    kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    argv = ["--scenario", "small", "--design", "worker", "--design", "baseline"]
    argv += ["--transport", "aiohttp"]
    argv += ["--bootstrap", kafka_bootstrap, "--work-dir", str(tmp_path / "work"), "--json-out", str(out)]

    code = await main_async(parse_args(argv))

    printed = capsys.readouterr().out
    report: dict[str, Any] = orjson.loads(out.read_bytes())
    runs = {run["design"]: run for run in report["runs"]}
    assert code == 0
    assert set(runs) == {"worker", "baseline"}
    for run in runs.values():
        assert run["complete"], run
        assert run["results_distinct"] == run["commands"] == 500
        assert run["throughput_per_s"] > 0
        assert run["service_ms"]["p50"] is not None
    restore = runs["worker"]["restore"]
    assert restore["cold"]["partitions"] == restore["warm"]["partitions"] == 12
    assert restore["cold"]["records"] >= 1_000  # the run's journal: an intent and an outcome per command
    assert restore["warm"]["records"] == 0  # restarted over the cold restore's store: nothing to replay
    table_header = printed.splitlines()[0]
    assert "cmd/s" in table_header
    assert "service p50/p95/p99 ms" in table_header
    assert "x the baseline" in printed  # the target line, with the ratio worker/baseline
