"""bench/tracing_cost.py runs and its figures are the right shape (the figures themselves are in
docs/performance.md, "Tracing": a shared CI machine is no place to assert a 3% bound)."""

from __future__ import annotations

from bench.tracing_cost import MODES, measure
from worker import tracing


def test_the_tracing_cost_bench_runs_every_mode_and_leaves_the_default() -> None:
    figures = measure(commands=60, repeats=2, concurrency=8, loops=200)
    assert set(figures["median_us_per_command"]) == set(MODES)
    assert all(len(runs) == 2 for runs in figures["us_per_command"].values())
    calls = figures["calls_only_us_per_command"]
    assert calls["untraced"] < calls["none"] < calls["recorded"]
    assert tracing.current_ids() == {}
    assert not tracing.recording()  # back to the default, none
