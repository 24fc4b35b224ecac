"""A circuit breaker over a sliding time window: stop starting new money movements while the API is sick.

Health, not business: a definite refusal (declined, NOT_ENOUGH_CREDITS, ...) is a *success* here, because
the API answered. Failures are transport failures (``not_sent``), ambiguous answers (``ambiguous``,
``GENERAL_ERROR``) and login failures (``login``). In-flight resolution is never stopped, only slowed
(``resolution_pace_factor``).

closed --(ratio, N failures in a row, or consecutive login failures)--> open --(open_for_s)-->
half_open --(one probe)--> closed on success / open again (open time doubled, capped) on failure.
The probe is whichever call takes the half-open slot: a buffered command (``allow_new_work``) or, when
none is waiting, the background prober's harmless call (``claim_probe``, ``worker/pipeline/probe.py``),
so the breaker never waits on traffic to recover. See ``docs/resolution.md``.
"""

from __future__ import annotations

import contextlib
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from worker.clock import Clock

__all__ = ["LOGIN_FAILURE", "BreakerPolicy", "BreakerState", "CircuitBreaker", "OnChange"]

LOGIN_FAILURE = "login"


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


OnChange = Callable[[BreakerState, str], None]


@dataclass(frozen=True)
class BreakerPolicy:
    window_s: float = 30.0
    min_calls: int = 20
    failure_ratio: float = 0.5
    open_s: float = 15.0
    max_open_s: float = 120.0  # a failed probe doubles the open time, up to this
    login_failures_to_open: int = 3  # consecutive, whatever the window holds
    # A hard outage must trip fast even when the window is full of earlier successes (at 200 calls/s a
    # 30 s window holds 6,000 of them): this many failures in a row, with no answer between, also trip.
    consecutive_failures_to_open: int = 20
    probe_timeout_s: float = 30.0  # a probe that never reports frees the slot for another after this
    open_pace_factor: float = 4.0  # inquiry delays are multiplied by this while not closed

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.open_s <= 0 or self.probe_timeout_s <= 0:
            raise ValueError("window_s, open_s and probe_timeout_s must be > 0")
        if self.max_open_s < self.open_s:
            raise ValueError("max_open_s must be >= open_s")
        if self.min_calls < 1 or self.login_failures_to_open < 1 or self.consecutive_failures_to_open < 1:
            raise ValueError("min_calls and login_failures_to_open must be >= 1")
        if not 0 < self.failure_ratio <= 1:
            raise ValueError("failure_ratio must be in (0, 1]")
        if self.open_pace_factor < 1:
            raise ValueError("open_pace_factor must be >= 1")


class CircuitBreaker:
    """One per worker process, shared by every API call. Monotonic time: the breaker is not persisted."""

    def __init__(self, policy: BreakerPolicy, clock: Clock, on_change: OnChange | None = None) -> None:
        self.policy = policy
        self.on_change = on_change
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._calls: deque[tuple[float, str | None]] = deque()  # (monotonic_s, failure kind or None)
        self._login_failures = 0
        self._consecutive_failures = 0
        self._run_started_s = 0.0
        self._opened_at_s = 0.0
        self._open_for_s = policy.open_s
        self._probe_at_s: float | None = None

    @property
    def state(self) -> BreakerState:
        self._tick()
        return self._state

    @property
    def open_for_s(self) -> float:
        """How long the current (or next) open period lasts."""
        return self._open_for_s

    @property
    def resolution_pace_factor(self) -> float:
        """Multiply Status Inquiry delays by this: 1.0 closed, ``open_pace_factor`` open or half-open."""
        return 1.0 if self.state is BreakerState.CLOSED else self.policy.open_pace_factor

    def allow_new_work(self) -> bool:
        """May a new Charge/Credit start? Half-open: True for exactly one caller (the probe)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        now_s = self._clock.monotonic_s()
        if self._probe_at_s is not None and now_s - self._probe_at_s < self.policy.probe_timeout_s:
            return False
        self._probe_at_s = now_s
        return True

    def claim_probe(self) -> bool:
        """Take the half-open slot for a call that moves no money (the background probe).

        True only while half-open with the slot free (or its last holder silent past ``probe_timeout_s``);
        closed or open: False, so a healthy breaker is never probed."""
        if self.state is not BreakerState.HALF_OPEN:
            return False
        return self.allow_new_work()

    def probe_due_in_s(self) -> float | None:
        """Seconds until ``claim_probe`` could succeed: None while closed, 0 when it could now."""
        state = self.state
        if state is BreakerState.CLOSED:
            return None
        now_s = self._clock.monotonic_s()
        if state is BreakerState.OPEN:
            return max(0.0, self._opened_at_s + self._open_for_s - now_s)
        if self._probe_at_s is None:
            return 0.0
        return max(0.0, self._probe_at_s + self.policy.probe_timeout_s - now_s)

    def record_success(self) -> None:
        """The API answered (PROCESSED or a definite business refusal)."""
        self._tick()
        self._login_failures = 0
        self._consecutive_failures = 0
        if self._state is BreakerState.HALF_OPEN:
            self._close("probe succeeded")
        elif self._state is BreakerState.CLOSED:
            self._append(None)

    def record_failure(self, kind: str) -> None:
        """A call the API did not answer usefully. ``kind`` labels it in reasons: ``not_sent``
        (connection failed), ``ambiguous`` (no usable answer), ``GENERAL_ERROR``, ...; ``login`` (a
        refused or failed login) also counts towards the consecutive-login-failure trip."""
        if not kind:
            raise ValueError("a failure needs a kind")
        self._tick()
        if self._state is BreakerState.HALF_OPEN:
            self._open(min(2 * self._open_for_s, self.policy.max_open_s), f"probe failed ({kind})")
            return
        if self._state is BreakerState.OPEN:
            return
        self._append(kind)
        now_s = self._clock.monotonic_s()
        if self._consecutive_failures == 0 or now_s - self._run_started_s > self.policy.window_s:
            self._consecutive_failures, self._run_started_s = 0, now_s
        self._consecutive_failures += 1
        if kind == LOGIN_FAILURE:
            self._login_failures += 1
            if self._login_failures >= self.policy.login_failures_to_open:
                self._open(self.policy.open_s, f"{self._login_failures} consecutive login failures")
                return
        reason = self._ratio_tripped()
        if reason is None and self._consecutive_failures >= self.policy.consecutive_failures_to_open:
            reason = f"{self._consecutive_failures} failures in a row, no answer between ({kind})"
        if reason is not None:
            self._open(self.policy.open_s, reason)

    # --- internals ----------------------------------------------------------------------------------

    def _tick(self) -> None:
        if self._state is not BreakerState.OPEN:
            return
        if self._clock.monotonic_s() >= self._opened_at_s + self._open_for_s:
            self._probe_at_s = None
            self._set(BreakerState.HALF_OPEN, f"open for {self._open_for_s:g} s: one probe allowed")

    def _append(self, failure: str | None) -> None:
        now_s = self._clock.monotonic_s()
        self._calls.append((now_s, failure))
        while self._calls and self._calls[0][0] <= now_s - self.policy.window_s:
            self._calls.popleft()

    def _ratio_tripped(self) -> str | None:
        calls = len(self._calls)
        failures = Counter(kind for _, kind in self._calls if kind is not None)
        failed = sum(failures.values())
        if calls < self.policy.min_calls or failed < self.policy.failure_ratio * calls:
            return None
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(failures.items()))
        return f"{failed} of {calls} calls in the last {self.policy.window_s:g} s failed ({kinds})"

    def _open(self, open_for_s: float, reason: str) -> None:
        self._opened_at_s = self._clock.monotonic_s()
        self._open_for_s = open_for_s
        self._calls.clear()
        self._login_failures = 0
        self._consecutive_failures = 0
        self._set(BreakerState.OPEN, f"{reason}; open for {open_for_s:g} s")

    def _close(self, reason: str) -> None:
        self._open_for_s = self.policy.open_s
        self._calls.clear()
        self._consecutive_failures = 0
        self._probe_at_s = None
        self._set(BreakerState.CLOSED, reason)

    def _set(self, state: BreakerState, reason: str) -> None:
        self._state = state
        if self.on_change is None:
            return
        with contextlib.suppress(Exception):  # instrumentation must never stop money moving
            self.on_change(state, reason)
