"""The demo's core against the session's broker: every scripted case ends as the demo says it does."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecash_dev.demo.plan import CASES
from ecash_dev.demo.run import render, run_demo
from ecash_dev.stack import free_port

pytestmark = pytest.mark.kafka


async def test_the_demo_agrees_with_the_ledger_and_explains_every_case(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    summary = await run_demo(kafka_bootstrap, tmp_path, metrics_port=free_port(), say=lambda message: None)
    text = render(summary)
    print(text)
    check = summary.agreement
    assert (check.double_charges, check.lost, check.disagreements) == ({}, (), ())
    assert summary.complete
    assert check.exactly_one == check.messages
    assert {case.trace_number: case.actual for case in summary.cases} == {
        trace: case.expected for trace, case in CASES.items()
    }
    assert check.unresolved.keys() == {"REVIEW1"}
    assert summary.review is not None
    assert summary.review["trace_number"] == "REVIEW1"
    assert summary.review["state"] == "open"
    assert len(summary.review_ledger) == 1  # the money did move: the operator has what they need
    assert sorted(reason.split(":")[0] for reason in summary.dead_letters) == ["no_trace_number", "not_json"]
    lagged = next(case for case in summary.cases if case.trace_number == "LAG1")
    assert lagged.calls[1:] == ("status: PAYMENT_NOT_FOUND", "status: PROCESSED")
    assert any(line.startswith("ecash_results_total{") for line in summary.metrics_excerpt)
    assert summary.ok
    assert text.rstrip().endswith("Everything agrees.")
