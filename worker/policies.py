"""Settings -> the core's policies: the one place the core's plain values are read from ``Settings``.

``worker/core`` takes plain values (frozen dataclasses) and never imports ``worker.settings``; whatever
assembles a worker (``worker/service.py``, ``worker/pipeline/processor.py``) builds them here.
"""

from __future__ import annotations

from worker.core.breaker import BreakerPolicy
from worker.core.lifecycle import NotSentRetry
from worker.core.resolution import NotFoundPolicyName, ResolutionPolicy
from worker.settings import NotFoundPolicy, Settings

__all__ = ["breaker_policy", "not_sent_retry", "resolution_policy"]


def resolution_policy(settings: Settings) -> ResolutionPolicy:
    """The Status Inquiry schedule and the not-found rule (docs/resolution.md). The first inquiry waits
    for the request timeout plus the grace: a Charge still in flight is not asked about."""
    policy: NotFoundPolicyName = (
        "resubmit" if settings.not_found_policy is NotFoundPolicy.RESUBMIT else "fail"
    )
    return ResolutionPolicy(
        first_inquiry_after_s=settings.request_timeout_s + settings.resolution_grace_s,
        schedule_s=tuple(settings.resolution_schedule_s),
        deadline_s=settings.resolution_deadline_s,
        not_found_codes=frozenset(code.strip().upper() for code in settings.not_found_codes),
        not_found_confirmations=settings.not_found_confirmations,
        not_found_policy=policy,
        resubmit_max=settings.resubmit_max,
    )


def breaker_policy(settings: Settings) -> BreakerPolicy:
    """The circuit breaker: a failed probe doubles the open time up to 8 x ``ECASH_BREAKER_OPEN_S``; a
    probe that never reports frees its slot after 3 request timeouts; ``ECASH_BREAKER_MIN_CALLS`` failures
    in a row trip it whatever the window holds."""
    return BreakerPolicy(
        window_s=settings.breaker_window_s,
        min_calls=settings.breaker_min_calls,
        failure_ratio=settings.breaker_failure_ratio,
        open_s=settings.breaker_open_s,
        max_open_s=8 * settings.breaker_open_s,
        probe_timeout_s=3 * settings.request_timeout_s,
        consecutive_failures_to_open=settings.breaker_min_calls,
    )


def not_sent_retry(settings: Settings) -> NotSentRetry:
    """How long a money call that provably never left is tried again, one round per fresh intent:
    waits doubling from ``ECASH_NOT_SENT_BACKOFF_INITIAL_S`` up to ``ECASH_NOT_SENT_BACKOFF_MAX_S``,
    until ``ECASH_NOT_SENT_DEADLINE_S`` after the first try. Within a round the client makes its own
    quick retries (``ECASH_NOT_SENT_RETRY_ATTEMPTS``), within the intent's lease."""
    return NotSentRetry(
        initial_s=settings.not_sent_backoff_initial_s,
        max_s=settings.not_sent_backoff_max_s,
        deadline_s=settings.not_sent_deadline_s,
    )
