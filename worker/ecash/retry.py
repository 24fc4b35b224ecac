"""Retrying what is safe to retry: a small typed surface over tenacity (in the manner of stamina).

Policy is data (``RetryPolicy``); whether an outcome may be retried is the caller's predicate (the client
retries a money call only when it was provably not sent); every scheduled retry is an event; the sleep is
injected, so tests run every retry path without waiting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar, cast

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
    wait_exponential_jitter,
)

from worker.events import EventSink, RetryReason, RetryScheduled
from worker.settings import Settings

__all__ = ["RetryPolicy", "Sleep", "retry_while"]

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``attempts`` tries; before retry n, waits ``initial_s * 2**(n-1)`` plus up to ``jitter_s``,
    capped at ``max_s``."""

    attempts: int
    initial_s: float
    max_s: float
    jitter_s: float

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if min(self.initial_s, self.max_s, self.jitter_s) < 0:
            raise ValueError("delays must not be negative")

    @classmethod
    def not_sent(cls, settings: Settings) -> RetryPolicy:
        """From ``ECASH_NOT_SENT_*``; the jitter is as large as the first delay."""
        return cls(
            attempts=settings.not_sent_retry_attempts,
            initial_s=settings.not_sent_backoff_initial_s,
            max_s=settings.not_sent_backoff_max_s,
            jitter_s=settings.not_sent_backoff_initial_s,
        )

    def max_delay_s(self, retry: int) -> float:
        """The longest wait before retry number ``retry`` (1 = the first retry), jitter included."""
        return float(min(self.initial_s * 2 ** (retry - 1) + self.jitter_s, self.max_s))


async def retry_while(
    call: Callable[[], Awaitable[T]],
    *,
    should_retry: Callable[[T], bool],
    policy: RetryPolicy,
    operation: str,
    reason: RetryReason,
    sink: EventSink,
    sleep: Sleep,
) -> T:
    """Await ``call()`` until ``should_retry(result)`` is False or the attempts are used up; return the last
    result either way. An exception from ``call`` is never retried: it propagates at once."""

    def scheduled(state: RetryCallState) -> None:
        delay_s = state.next_action.sleep if state.next_action is not None else 0.0
        sink.emit(RetryScheduled(operation, reason, state.attempt_number, float(delay_s)))

    def last_result(state: RetryCallState) -> T:
        assert state.outcome is not None
        return cast(T, state.outcome.result())

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait_exponential_jitter(multiplier=policy.initial_s, max=policy.max_s, jitter=policy.jitter_s),
        retry=retry_if_result(should_retry),
        sleep=sleep,
        before_sleep=scheduled,
        retry_error_callback=last_result,
        reraise=True,
    )
    return cast(T, await retrying(call))
