"""Hostile input, small: the same code as ``python -m ecash_dev.hostile``, sized for CI (600 messages).

The session's real broker, the sandbox and one ``ecash-worker run`` as processes; half the messages hostile
(every kind in ``ecash_dev.hostile.plan``), half valid commands. No message may stop the worker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ecash_dev.hostile.plan import HOSTILE, REPLAYS
from ecash_dev.hostile.run import HostileOptions, run_hostile, summary_table

pytestmark = [pytest.mark.kafka]


async def test_no_message_stops_the_worker_and_every_message_is_answered(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    options = HostileOptions(
        messages=600,
        msisdns=50,
        seed=13,
        partitions=4,
        max_wait_s=45.0,
        bootstrap=kafka_bootstrap,
        workdir=tmp_path,
    )
    verdict = await run_hostile(options, say=lambda message: None)
    print(summary_table(verdict))
    assert verdict.worker_exits == 0, f"the worker exited; see {tmp_path / 'worker.log'}"
    assert verdict.processor_failures == 0, f"jobs failed; see {tmp_path / 'worker.log'}"
    assert verdict.messages == 600
    assert set(verdict.kinds) == {*HOSTILE, *REPLAYS, "valid"}
    assert verdict.answered == 600, verdict.unexpected
    assert verdict.answered_twice == 0
    assert verdict.answered_as_expected == 600, verdict.unexpected
    assert verdict.valid_succeeded == 300
    assert verdict.executions == verdict.expected_executions > 300  # valid plus odd-but-legal hostile
    assert verdict.executed_twice == verdict.unexpected_executions == verdict.not_executed_once == 0
    assert verdict.ok
