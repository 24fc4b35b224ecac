"""bench/repartition_hop.py, tiny: 200 commands through each stage (the repartition hop, the claim with a
plain reader and with the worker's claims index), paced and at full speed, on the test session's broker.

Asserts only that every stage handled every command exactly once and that the figures are printed and
written; what they are worth is in docs/performance.md ("What a claim costs"), not in timed assertions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.repartition_hop import main_async, parse_args

pytestmark = pytest.mark.kafka


async def test_every_stage_handles_every_command_and_the_figures_are_printed(
    kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "hop.json"
    argv = ["--commands", "200", "--msisdns", "50", "--rate", "400", "--bootstrap", kafka_bootstrap]
    argv += ["--work-dir", str(tmp_path / "work"), "--json-out", str(out)]

    code = await main_async(parse_args(argv))

    printed = capsys.readouterr().out
    report: dict[str, Any] = orjson.loads(out.read_bytes())
    runs = {(run["stage"], run["mode"]): run for run in report["runs"]}
    assert code == 0
    assert set(runs) == {(s, m) for s in ("hop", "claim", "claim-index") for m in ("paced", "full")}
    for run in runs.values():
        assert run["commands"] == 200
        assert run["figures"]["cpu_ms_per_1k"] > 0
        assert run["figures"]["transactions"] > 0
        assert run["added_ms"]["p50"] is not None
    for mode in ("paced", "full"):  # a read_committed reader of the by-trace topic saw each command once
        hop = runs[("hop", mode)]["figures"]
        assert hop["forwarded_read"] == hop["forwarded_distinct"] == 200
    assert "CPU ms/1k" in printed.splitlines()[0]
    assert "hop / claim:" in printed
