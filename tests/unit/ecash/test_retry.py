from __future__ import annotations

import pytest

from tests.unit.ecash.fake_api import SleepRecorder, make_settings
from worker.ecash.retry import RetryPolicy, retry_while
from worker.events import Recorder, RetryScheduled


class Script:
    def __init__(self, *results: str) -> None:
        self.results = list(results)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        return self.results.pop(0)


async def test_retries_while_the_predicate_holds_then_returns_the_first_other_result() -> None:
    sink, sleep = Recorder(), SleepRecorder()
    script = Script("not_sent", "not_sent", "done")
    policy = RetryPolicy(attempts=5, initial_s=0.2, max_s=5.0, jitter_s=0.0)
    result = await retry_while(
        script,
        should_retry=lambda r: r == "not_sent",
        policy=policy,
        operation="charge",
        reason="not_sent",
        sink=sink,
        sleep=sleep,
    )
    assert result == "done"
    assert script.calls == 3
    assert sleep.delays_s == pytest.approx([0.2, 0.4])
    assert sink.events == [
        RetryScheduled("charge", "not_sent", 1, 0.2),
        RetryScheduled("charge", "not_sent", 2, 0.4),
    ]


async def test_gives_up_after_the_attempts_and_returns_the_last_result() -> None:
    sleep = SleepRecorder()
    script = Script(*["not_sent"] * 10)
    policy = RetryPolicy(attempts=4, initial_s=1.0, max_s=3.0, jitter_s=0.0)
    result = await retry_while(
        script,
        should_retry=lambda r: r == "not_sent",
        policy=policy,
        operation="status",
        reason="read_retry",
        sink=Recorder(),
        sleep=sleep,
    )
    assert result == "not_sent"
    assert script.calls == 4
    assert sleep.delays_s == pytest.approx([1.0, 2.0, 3.0])  # capped at max_s


async def test_a_result_the_predicate_rejects_is_never_retried() -> None:
    script = Script("ambiguous", "done")
    sink = Recorder()
    result = await retry_while(
        script,
        should_retry=lambda r: r == "not_sent",
        policy=RetryPolicy(5, 0.1, 1.0, 0.1),
        operation="charge",
        reason="not_sent",
        sink=sink,
        sleep=SleepRecorder(),
    )
    assert result == "ambiguous"
    assert script.calls == 1
    assert sink.events == []


async def test_an_exception_propagates_at_once() -> None:
    calls = 0

    async def boom() -> str:
        nonlocal calls
        calls += 1
        raise RuntimeError("config")

    with pytest.raises(RuntimeError):
        await retry_while(
            boom,
            should_retry=lambda r: True,
            policy=RetryPolicy(5, 0.1, 1.0, 0.1),
            operation="login",
            reason="not_sent",
            sink=Recorder(),
            sleep=SleepRecorder(),
        )
    assert calls == 1


async def test_jitter_stays_within_its_bound_and_the_cap() -> None:
    sleep = SleepRecorder()
    policy = RetryPolicy(attempts=6, initial_s=0.5, max_s=2.0, jitter_s=0.5)
    await retry_while(
        Script(*["x"] * 6),
        should_retry=lambda r: True,
        policy=policy,
        operation="charge",
        reason="not_sent",
        sink=Recorder(),
        sleep=sleep,
    )
    assert len(sleep.delays_s) == 5
    for retry, delay_s in enumerate(sleep.delays_s, start=1):
        base_s = min(0.5 * 2 ** (retry - 1), 2.0)
        assert min(base_s, 2.0) <= delay_s <= policy.max_delay_s(retry)


def test_the_not_sent_policy_comes_from_settings() -> None:
    settings = make_settings(
        not_sent_retry_attempts=6, not_sent_backoff_initial_s=0.3, not_sent_backoff_max_s=4.0
    )
    assert RetryPolicy.not_sent(settings) == RetryPolicy(attempts=6, initial_s=0.3, max_s=4.0, jitter_s=0.3)


@pytest.mark.parametrize(("attempts", "initial_s"), [(0, 1.0), (3, -1.0)])
def test_a_nonsense_policy_is_refused(attempts: int, initial_s: float) -> None:
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(attempts=attempts, initial_s=initial_s, max_s=1.0, jitter_s=0.0)
