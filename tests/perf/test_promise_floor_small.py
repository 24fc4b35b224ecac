"""bench/promise_floor.py, tiny: 150 commands through each leg (the bare HTTP request, the worker's client,
the promise's Kafka writes, and all of a command's I/O), on the test session's broker and a sandbox.

Asserts only that every leg carried every command, that a read_committed reader finds each command's
records exactly once, and that the figures are printed and written; what they are worth is in
docs/performance.md ("The floor"), not in timed assertions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.promise_floor import LEGS, main_async, parse_args

pytestmark = pytest.mark.kafka

COMMANDS = 150


async def test_every_leg_carries_every_command_once_and_the_figures_are_printed(
    kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "floor.json"
    argv = [
        "--commands",
        str(COMMANDS),
        "--msisdns",
        "40",
        "--in-flight",
        "32",
        "--bootstrap",
        kafka_bootstrap,
    ]
    argv += ["--work-dir", str(tmp_path / "work"), "--json-out", str(out)]

    code = await main_async(parse_args(argv))

    printed = capsys.readouterr().out
    report: dict[str, Any] = orjson.loads(out.read_bytes())
    runs = {run["leg"]: run for run in report["runs"]}
    assert code == 0
    assert tuple(runs) == LEGS
    for run in runs.values():
        assert run["commands"] == COMMANDS
        assert run["process_ms"] > 0
        assert run["figures"]["command_ms"]["p99"] is not None
    for leg in ("kafka", "floor"):  # each command's result once; intent and outcome; claim and final
        figures = runs[leg]["figures"]
        assert figures["transactions"] > 0
        assert figures["results_read"] == COMMANDS
        assert figures["journal_read"] == figures["claims_read"] == 2 * COMMANDS
        assert figures["journal_keys"] == figures["claims_keys"] == COMMANDS
    assert "-core ceiling" in printed.splitlines()[0]
    assert [line.split()[0] for line in printed.splitlines()[1:5]] == list(LEGS)
