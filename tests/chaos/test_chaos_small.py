"""The chaos run, small: the same code as ``python -m ecash_dev.chaos``, sized for CI (about 2 minutes).

Its own broker (it is crashed and restarted once), the sandbox and two workers as processes, 2,000
commands over 200 MSISDNs with every ambiguous fault, token expiry and status lag, two kill -9, and one
worker frozen (SIGSTOP) past its session timeout while it holds partitions, then resumed. Among them, about
1.5% of the commands are sent again to another partition and 1.5% have their trace number reused on another
wallet (in another partition): one trace number, one payment, across the whole deployment (issue 14).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ecash_dev.chaos.plan import AMBIGUOUS_KINDS, CROSS_PARTITION_DUPLICATE, TRACE_REUSE, ChaosOptions
from ecash_dev.chaos.report import summary_table
from ecash_dev.chaos.run import run_chaos

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def test_a_small_chaos_run_moves_money_at_most_once_and_answers_every_command(tmp_path: Path) -> None:
    options = ChaosOptions(
        commands=2000,
        msisdns=200,
        workers=2,
        seconds_between_kills=8.0,
        max_kills=2,
        freezes=1,
        freeze_s=12.0,  # twice the session timeout: its partitions move while it is frozen
        journal_preload=20_000,
        broker_restarts=1,
        seed=11,
        rate_per_s=50.0,
        max_wait_s=240.0,
        workdir=tmp_path,
    )
    summary = await run_chaos(options, say=lambda message: None)
    report = summary.to_json()
    print(summary_table(report))
    check = summary.agreement
    assert summary.injected[CROSS_PARTITION_DUPLICATE] >= 20
    assert summary.injected[TRACE_REUSE] >= 20
    assert check.double_charges == {}, "a trace number moved money twice"
    assert check.acted_on_twice == {}, "two commands with one trace number were acted on"
    assert check.unanswered == {}, "command messages without a result"
    assert check.seen_twice == {}, "a read_committed reader saw a result twice"
    assert check.lost == (), "commands without a result"
    assert check.disagreements == (), "results that disagree with the ledger"
    assert summary.complete
    assert check.commands == 2000
    assert check.messages == check.exactly_one == 2000 + sum(summary.injected.values())
    assert summary.timeline.kills == 2
    assert summary.timeline.freezes == 1
    assert summary.timeline.broker_restarts == 1
    faults = report["faults_injected"]
    assert all(faults.get(kind, 0) > 0 for kind in (*AMBIGUOUS_KINDS, "token_expired", "status_lag"))
    assert check.resolved_by["status_inquiry"] > 0
    assert summary.ok
