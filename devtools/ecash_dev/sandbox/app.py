"""The sandbox's API endpoints (Starlette): parse the form, ask the fault plan, answer or misbehave.

Order for every call: count it, plan faults, sleep the base latency plus any latency fault, then either
a fault *before* processing (nothing happens), or process it through ``SandboxState.handle`` and
optionally misbehave *after* (for Charge/Credit the money has moved by then).

Resetting a connection needs the TCP transport, which ASGI does not expose: ``expose_transport`` (the
outermost ASGI layer) takes it from uvicorn's per-request ``send`` (a bound method of its
request/response cycle, which holds ``transport``) and puts it in the scope. A reset sets SO_LINGER
to 0 and aborts the transport, so the client reads ECONNRESET and no response bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ecash_dev.sandbox.faults import FaultInjector, FaultKind, FaultPlan, FaultRule
from ecash_dev.sandbox.state import TOKEN_EXPIRED, Reply, SandboxConfig, SandboxState, refusal
from worker.clock import Clock, SystemClock
from worker.ecash import wire
from worker.ecash.wire import Operation

BASE_PATH = "/eCashHost"
TRANSPORT_SCOPE_KEY = "ecash_sandbox.transport"
_DISCONNECT_WAIT_S = 1.0


@dataclass
class Sandbox:
    """The live sandbox: what the API and admin endpoints act on. Use it from its event loop only."""

    state: SandboxState
    faults: FaultInjector
    start_config: SandboxConfig
    start_seed: int
    clock: Clock
    closing: asyncio.Event = field(default_factory=asyncio.Event)  # set on shutdown: releases hung calls

    @classmethod
    def create(cls, config: SandboxConfig, clock: Clock | None = None) -> Sandbox:
        clock = clock or SystemClock()
        seed = config.random_seed if config.random_seed is not None else random.randrange(2**31)
        return cls(
            state=SandboxState(config, clock),
            faults=FaultInjector.from_rules(list(config.faults), seed),
            start_config=config,
            start_seed=seed,
            clock=clock,
        )

    @property
    def config(self) -> SandboxConfig:
        return self.state.config

    def configure(self, config: SandboxConfig) -> None:
        """Apply a new configuration (wallets and ledger stay); a new random_seed reseeds the faults."""
        self.state.configure(config)
        if config.random_seed is not None and config.random_seed != self.faults.seed:
            self.faults.reseed(config.random_seed)

    def reset(self) -> None:
        """Back to how it started: the start configuration, its wallets and faults; no ledger, no sessions."""
        self.state.configure(self.start_config)
        self.state.reset()
        self.faults.replace(list(self.start_config.faults))
        self.faults.reseed(self.start_seed)


def api_routes(sandbox: Sandbox) -> list[BaseRoute]:
    return [
        Route(BASE_PATH + path, _endpoint(sandbox, operation), methods=["POST"])
        for operation, path in wire.PATHS.items()
    ]


def _endpoint(sandbox: Sandbox, operation: Operation) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await answer(sandbox, operation, request)

    return endpoint


async def answer(sandbox: Sandbox, operation: Operation, request: Request) -> Response:
    stats = sandbox.state.stats
    stats.calls[operation.value] += 1
    stats.in_flight += 1
    stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
    try:
        return await _answer(sandbox, operation, request)
    finally:
        stats.in_flight -= 1


async def _answer(sandbox: Sandbox, operation: Operation, request: Request) -> Response:
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    state = sandbox.state
    plan = sandbox.faults.plan(operation, form.get(wire.F_TRACE_NUMBER))
    _count_faults(sandbox, plan)
    delay_ms = state.config.base_latency_ms + plan.latency_ms
    if delay_ms > 0:
        await sandbox.clock.sleep_s(delay_ms / 1000.0)
    if plan.before is not None:
        return _fault_before(sandbox, operation, form, plan.before)
    reply = state.handle(
        operation,
        form,
        api_key=request.headers.get(wire.HEADER_API_KEY),
        credentials=request.headers.get(wire.HEADER_CREDENTIALS),
        status_lag_s=plan.status_lag_s,
    )
    if plan.after is not None:
        return _fault_after(sandbox, reply, plan.after)
    return json_response(reply)


def _count_faults(sandbox: Sandbox, plan: FaultPlan) -> None:
    for kind in plan.kinds:
        sandbox.state.stats.faults[kind.value] += 1


def json_response(reply: Reply) -> Response:
    return Response(orjson.dumps(reply.body), status_code=reply.http_status, media_type="application/json")


def _fault_before(sandbox: Sandbox, operation: Operation, form: dict[str, str], rule: FaultRule) -> Response:
    if rule.kind is FaultKind.TOKEN_EXPIRED:
        sandbox.state.expire_token(form.get(wire.F_TOKEN))
        reply = refusal(operation, TOKEN_EXPIRED, form)
        sandbox.state.stats.answered(operation, reply.code)
        return json_response(reply)
    return gateway_error(rule.http_status)


def _fault_after(sandbox: Sandbox, reply: Reply, rule: FaultRule) -> Response:
    if rule.kind is FaultKind.HANG_AFTER_COMMIT:
        return HangResponse(sandbox.closing, sandbox.config.hang_s)
    if rule.kind is FaultKind.RESET_AFTER_COMMIT:
        return ResetResponse()
    if rule.kind is FaultKind.MALFORMED_JSON:
        body = orjson.dumps(reply.body)
        return Response(body[: len(body) // 2], media_type="application/json")
    return gateway_error(rule.http_status)


def gateway_error(status: int) -> Response:
    """A 5xx the way a proxy in front of the host sends one: HTML, not the API's JSON."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Server Error"
    html = f"<html><head><title>{status} {phrase}</title></head><body><h1>{phrase}</h1></body></html>"
    return Response(html, status_code=status, media_type="text/html")


class ResetResponse(Response):
    """No response at all: the TCP connection is reset (RST) right away."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await reset_connection(scope, receive)


class HangResponse(Response):
    """Never answers: holds the call until the client leaves, ``hang_s`` passes or the server stops,
    then resets the connection (a client that is still waiting sees a reset, never a response)."""

    def __init__(self, closing: asyncio.Event, hang_s: float) -> None:
        super().__init__()
        self._closing = closing
        self._hang_s = hang_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        waiters = [asyncio.ensure_future(self._closing.wait()), asyncio.ensure_future(_disconnected(receive))]
        try:
            await asyncio.wait(waiters, timeout=self._hang_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        await reset_connection(scope, receive, wait_for_disconnect=not waiters[1].done())


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def reset_connection(scope: Scope, receive: Receive, *, wait_for_disconnect: bool = True) -> None:
    """Abort the call's TCP connection with a RST, then wait until the server has noticed, so that it
    does not try to answer on its own."""
    transport = scope.get(TRANSPORT_SCOPE_KEY)
    if transport is None:
        raise RuntimeError("cannot reset the connection: the server did not expose its transport")
    if not transport.is_closing():
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    if wait_for_disconnect:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_disconnected(receive), _DISCONNECT_WAIT_S)


def expose_transport(app: ASGIApp) -> ASGIApp:
    """Wrap the whole ASGI app (outermost) so that faults can reach the TCP transport under uvicorn."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is not None:
                scope[TRANSPORT_SCOPE_KEY] = transport
        await app(scope, receive, send)

    return wrapped
