"""The send lease: a Charge or Credit may leave only within ``send_lease_s`` of its intent's commit.

The processor opens a lease (``send_lease``) around a money call once the intent is committed in the
partition's transaction; the transport checks it (``check_lease``) synchronously, with no ``await`` between
the check and handing the request to the HTTP connection. A worker that froze or lost the broker after its
intent was committed therefore sends nothing once the lease has passed: the request fails with
``LeaseExpired`` before any byte leaves, and the processor writes a fresh intent (which a fenced worker
cannot commit). The lease is a context variable, so it follows the call through the client's layers and
applies only to the task that opened it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from worker.clock import Clock

__all__ = ["Lease", "LeaseExpired", "current_lease", "send_lease"]


class LeaseExpired(Exception):
    """The send lease passed before the request was written: nothing was sent."""


@dataclass
class Lease:
    not_after_s: float  # monotonic
    clock: Clock
    prepaid: bool = False  # the rate limiter's permit was taken before the intent was written

    def check(self) -> None:
        late_s = self.clock.monotonic_s() - self.not_after_s
        if late_s >= 0:
            raise LeaseExpired(f"the send lease passed {late_s:.3f} s ago; the request was not sent")


_LEASE: ContextVar[Lease | None] = ContextVar("ecash_send_lease", default=None)


@contextmanager
def send_lease(not_after_s: float, clock: Clock, *, prepaid: bool = False) -> Iterator[Lease]:
    lease = Lease(not_after_s, clock, prepaid)
    token = _LEASE.set(lease)
    try:
        yield lease
    finally:
        _LEASE.reset(token)


def current_lease() -> Lease | None:
    return _LEASE.get()
