"""The breaker's background probe: once it is half-open, a Login tells it whether the API is back.

When the breaker opens with nothing buffered (an idle worker, or one whose buffer drained), nothing may be
there to make the one probe call a half-open breaker allows, and it would stay half-open for ever. This
task needs no traffic: whenever the breaker lets a probe go (``CircuitBreaker.claim_probe``, a pure
decision over the injected clock) and no command took the slot first, it makes one Login through the
worker's own client.
The answer reaches the breaker through the same event hook as every call (``ApiCallFinished`` and
``LoginFinished`` feed ``breaker_hook``): an answer closes it, no usable answer re-opens it for twice as
long. A Login moves no money and needs no wallet or trace number; why it was chosen over a Balance or a
Status Inquiry is in ``docs/resolution.md`` ("Recovering without traffic").
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from worker.clock import Clock
from worker.core.breaker import BreakerState, CircuitBreaker
from worker.ecash.errors import FatalConfigError
from worker.events import BreakerProbed, EventSink, ProbeResult
from worker.pipeline.gate import Gate

__all__ = ["BreakerProber", "ProbeCall", "probe_wait_s"]

log = logging.getLogger("ecash_worker.probe")

ProbeCall = Callable[[], Awaitable[object]]


def probe_wait_s(due_in_s: float | None, poll_s: float) -> float:
    """How long the prober sleeps: until the probe is due, but never longer than ``poll_s`` (a breaker that
    trips while we sleep is noticed within ``poll_s``) and never a busy loop."""
    if due_in_s is None:
        return poll_s
    return min(poll_s, max(due_in_s, 0.01))


class BreakerProber:
    def __init__(
        self,
        breaker: CircuitBreaker,
        gate: Gate,
        call: ProbeCall,
        clock: Clock,
        sink: EventSink,
        on_fatal: Callable[[str], None],
        *,
        poll_s: float = 1.0,
    ) -> None:
        self._breaker = breaker
        self._gate = gate
        self._call = call
        self._clock = clock
        self._sink = sink
        self._on_fatal = on_fatal
        self._poll_s = poll_s

    async def run(self) -> None:
        """Until cancelled (the worker's stop)."""
        while True:
            due_in_s = None if self._gate.fatal is not None else self._breaker.probe_due_in_s()
            await self._clock.sleep_s(probe_wait_s(due_in_s, self._poll_s))
            await self.step()

    async def step(self) -> ProbeResult | None:
        """One probe if the breaker allows one now; None when it does not (closed, open, slot taken)."""
        if self._gate.fatal is not None or not self._breaker.claim_probe():
            return None
        started_s = self._clock.monotonic_s()
        try:
            await self._call()
        except FatalConfigError as exc:
            self._on_fatal(str(exc))
            result = ProbeResult.FATAL
        except Exception as exc:  # noqa: BLE001 - the API's failures are the breaker's business: it heard them already
            result = self._judged()
            log.debug("breaker probe: %s (%s)", result, type(exc).__name__)
        else:
            result = self._judged()
        self._sink.emit(BreakerProbed(result, self._clock.monotonic_s() - started_s))
        return result

    def _judged(self) -> ProbeResult:
        state = self._breaker.state
        if state is BreakerState.CLOSED:
            return ProbeResult.CLOSED
        if state is BreakerState.OPEN:
            return ProbeResult.REOPENED
        return ProbeResult.NO_ANSWER
