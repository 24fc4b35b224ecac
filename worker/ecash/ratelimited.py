"""One rate limit for every call to the API, whatever the operation: applied at the transport.

This is also the last step before the request is handed to the connection, so the send lease (lease.py)
is checked here, after any wait for the limiter and with no ``await`` between the check and the hand-over.
"""

from __future__ import annotations

import httpx

from worker.core.ratelimit import RateLimiter
from worker.ecash import wire
from worker.ecash.lease import current_lease

__all__ = ["MONEY_PATHS", "RateLimitedTransport"]

MONEY_PATHS = (wire.PATHS[wire.Operation.CHARGE], wire.PATHS[wire.Operation.CREDIT])


class RateLimitedTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, limiter: RateLimiter) -> None:
        self._inner = inner
        self._limiter = limiter

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        lease = current_lease() if request.url.path.endswith(MONEY_PATHS) else None
        if lease is not None and lease.prepaid:
            lease.prepaid = False  # the permit was taken before the intent (processor), once
        else:
            await self._limiter.acquire()
        if lease is not None:
            lease.check()
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
