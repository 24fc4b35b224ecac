"""The whole campaign (bench/suite.py), CI-sized: every part, every scenario and every what-if design runs
to the end with every command answered. No throughput is asserted: the figures are for docs/performance.md
and the full campaign (``make bench``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.promise_floor import LEGS
from bench.suite import PARTS, main

pytestmark = pytest.mark.kafka


def test_every_part_of_the_campaign_answers_every_command(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = tmp_path / "suite"
    argv = ["--out", str(out), "--commands", "100", "--msisdns", "50", "--soak-commands", "300"]
    argv += ["--no-restore"]
    assert main([*argv, "--bootstrap", kafka_bootstrap]) == 0
    parts = orjson.loads((out / "suite.json").read_bytes())["parts"]
    names = [p["part"] for p in parts]
    assert names == [
        "throughput", "shares", "uvloop", "latency-50", "latency-90", "floor", "floor-50", "scale-out-1",
        "scale-out-2", "soak",
    ]  # fmt: skip
    assert {name.split("-")[0] for name in names} >= {p.split("-")[0] for p in PARTS}
    seen: set[tuple[str, str]] = set()
    for part in parts:
        report: dict[str, Any] = orjson.loads((out / part["report"]).read_bytes())
        if part["module"] == "bench.promise_floor":
            floor_legs(part["part"], report["runs"])
            continue
        for run in report["runs"]:
            seen.add((run["scenario"], run["design"]))
            assert run["complete"], (part["part"], run["design"], run["notes"])
            assert run["results_distinct"] == run["commands"]
    assert {design for _, design in seen} == {
        "worker", "baseline", "worker-notxn", "worker-nojournal", "worker-noclaims", "worker-notracing",
    }  # fmt: skip
    assert {scenario for scenario, _ in seen} == {
        "uniform-0ms", "uniform-50ms", "skewed-50ms", "paced-50ms", "soak-1m",
    }  # fmt: skip
    two = orjson.loads((out / "scale-out-2.json").read_bytes())["runs"][0]
    assert two["replicas"] == 2


def floor_legs(part: str, runs: list[dict[str, Any]]) -> None:
    """bench.promise_floor: every leg carried every command, and a read_committed reader found each
    command's records (its result; intent and outcome; claim and final claim) exactly once."""
    legs = [run["leg"] for run in runs]
    assert legs == (list(LEGS) if part == "floor" else ["floor"]), part
    for run in runs:
        assert run["commands"] == 100, (part, run["leg"])
        assert run["process_ms"] > 0
        assert run["figures"]["command_ms"]["p99"] is not None
        if run["leg"] in ("kafka", "floor"):
            assert run["figures"]["results_read"] == 100
            assert run["figures"]["journal_read"] == run["figures"]["claims_read"] == 200
        assert run["written_once"], (part, run["leg"])
