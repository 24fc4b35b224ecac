"""Proof over real loopback sockets that both transports say truthfully whether a request left.

Each server reads the whole request before misbehaving, so "ambiguous" here really means "the server had
the request". Failures before a connection exists must come out as not_sent, everything after as
ambiguous, for the aiohttp transport and for httpx's default one alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import aiohttp
import httpx
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from worker.ecash.client import EcashClient
from worker.ecash.codes import CallClass
from worker.ecash.transport import AiohttpTransport, classify_transport_error, make_transport
from worker.events import Recorder
from worker.settings import Settings, TransportKind

KINDS = [TransportKind.AIOHTTP, TransportKind.HTTPX]
CHARGE_PATH = "/eCashHost/TransactionManager/Charge"
SHORT = httpx.Timeout(2.0, connect=0.3, pool=0.3)


# --- a scripted HTTP/1.1 server ------------------------------------------------------------------------


@dataclass
class Server:
    """Answers every request with JSON, except Charge requests, which get ``charge_mode``."""

    charge_mode: str = "json"
    port: int = 0
    requests: list[str] = field(default_factory=list)  # paths of requests read in full
    heads: list[str] = field(default_factory=list)  # their request lines and headers, as received
    connections: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    charge_seen: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def charges(self) -> int:
        return self.requests.count(CHARGE_PATH)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.connections += 1
        served = 0
        try:
            while (request := await _read_request(reader)) is not None:
                path, head = request
                self.requests.append(path)
                self.heads.append(head)
                if path == CHARGE_PATH:
                    self.charge_seen.set()
                served += 1
                mode = self.charge_mode if path == CHARGE_PATH else "json"
                if mode == "keepalive_then_close":
                    mode = "json" if served == 1 else "close"
                if not await self._answer(mode, writer):
                    return
        finally:
            writer.close()

    async def _answer(self, mode: str, writer: asyncio.StreamWriter) -> bool:
        if mode == "close":
            return False
        if mode == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if mode == "hang":
            await asyncio.Event().wait()
        if mode == "http_500":
            writer.write(_response(500, b'{"status":"GENERAL_ERROR"}'))
        elif mode == "not_json":
            writer.write(_response(200, b"<html>gateway says hi</html>", "text/html"))
        elif mode == "gzip":
            compressed = gzip.compress(b'{"status":"NOT_ENOUGH_CREDITS"}')
            writer.write(_response(200, compressed, extra="Content-Encoding: gzip\r\n"))
        else:
            body = {"status": "PROCESSED", "token": "t" * 48, "traceNumber": "T1", "transactionNumber": "1"}
            writer.write(_response(200, json.dumps(body).encode()))
        await writer.drain()
        return True


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return lines[0].split(" ")[1], head.decode("latin-1")


def _response(status: int, body: bytes, content_type: str = "application/json", extra: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


@contextlib.asynccontextmanager
async def serving(charge_mode: str = "json") -> AsyncIterator[Server]:
    server = Server(charge_mode)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        for task in list(server.tasks):
            task.cancel()
        await asyncio.gather(*server.tasks, return_exceptions=True)
        await listener.wait_closed()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A listening socket that never accepts, its backlog filled: new connects get no SYN-ACK."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@contextlib.asynccontextmanager
async def http_client(kind: TransportKind, max_connections: int = 8) -> AsyncIterator[httpx.AsyncClient]:
    transport = make_transport(kind, max_connections=max_connections, connect_timeout_s=0.3)
    async with httpx.AsyncClient(transport=transport, timeout=SHORT) as client:
        yield client


async def post_failure(client: httpx.AsyncClient, url: str) -> Exception:
    with pytest.raises(httpx.TransportError) as caught:
        await client.post(url + CHARGE_PATH, data={"msisdn": "08131234567", "amount": "100000"})
    return caught.value


# --- not sent -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_a_refused_connection_is_not_sent(kind: TransportKind) -> None:
    async with http_client(kind) as client:
        error = await post_failure(client, f"http://127.0.0.1:{free_port()}")
    assert type(error) is httpx.ConnectError
    assert classify_transport_error(error) is CallClass.NOT_SENT


@pytest.mark.parametrize("kind", KINDS)
async def test_a_connect_timeout_is_not_sent(kind: TransportKind) -> None:
    with full_backlog() as port:
        async with http_client(kind) as client:
            error = await post_failure(client, f"http://127.0.0.1:{port}")
    assert type(error) is httpx.ConnectTimeout
    assert classify_transport_error(error) is CallClass.NOT_SENT


@pytest.mark.parametrize("kind", KINDS)
async def test_waiting_too_long_for_a_pooled_connection_is_not_sent(kind: TransportKind) -> None:
    async with serving("hang") as server, http_client(kind, max_connections=1) as client:
        first = asyncio.create_task(client.post(server.url + CHARGE_PATH, data={"a": "1"}))
        await server.charge_seen.wait()
        error = await post_failure(client, server.url)
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await first
    assert type(error) is httpx.PoolTimeout
    assert classify_transport_error(error) is CallClass.NOT_SENT
    assert server.charges() == 1  # the second request never reached the server


class FailingResolver(AbstractResolver):
    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        raise OSError(socket.EAI_NONAME, "Name or service not known")

    async def close(self) -> None:
        return None


async def test_a_dns_failure_is_not_sent_through_aiohttps_real_connector() -> None:
    # Loopback only: the resolver is swapped for one that fails as getaddrinfo would; the connector,
    # its exception wrapping and our mapping are the real ones. (httpx's transport maps gaierror, an
    # OSError, to ConnectError in httpcore; that path is not exercised here without a DNS server.)
    transport = AiohttpTransport(max_connections=4, connect_timeout_s=0.3, resolver=FailingResolver())
    async with httpx.AsyncClient(transport=transport, timeout=SHORT) as client:
        error = await post_failure(client, "http://ecash.invalid")
    assert type(error) is httpx.ConnectError
    assert isinstance(error.__cause__, aiohttp.ClientConnectorDNSError)
    assert classify_transport_error(error) is CallClass.NOT_SENT


# --- ambiguous --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("close", httpx.RemoteProtocolError),
        ("reset", httpx.ReadError),
        ("hang", httpx.ReadTimeout),
    ],
)
async def test_a_failure_after_the_server_read_the_request_is_ambiguous(
    kind: TransportKind, mode: str, expected: type[Exception]
) -> None:
    async with serving(mode) as server, http_client(kind) as client:
        client.timeout = httpx.Timeout(0.3)
        error = await post_failure(client, server.url)
    assert type(error) is expected
    assert classify_transport_error(error) is CallClass.AMBIGUOUS
    assert server.charges() == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_a_reused_keep_alive_connection_dying_mid_request_is_ambiguous(kind: TransportKind) -> None:
    async with serving("keepalive_then_close") as server, http_client(kind) as client:
        first = await client.post(server.url + CHARGE_PATH, data={"a": "1"})
        assert first.status_code == 200
        error = await post_failure(client, server.url)
    assert type(error) is httpx.RemoteProtocolError
    assert classify_transport_error(error) is CallClass.AMBIGUOUS
    assert (server.connections, server.charges()) == (1, 2)  # the same connection, and it had the request


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("mode", "status"), [("http_500", 500), ("not_json", 200)])
async def test_a_5xx_or_a_non_json_body_is_an_answer_not_a_transport_error(
    kind: TransportKind, mode: str, status: int
) -> None:
    async with serving(mode) as server, http_client(kind) as client:
        response = await client.post(server.url + CHARGE_PATH, data={"a": "1"})
    assert response.status_code == status


# --- the client over real sockets -------------------------------------------------------------------------


async def _no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


def _settings(url: str, kind: TransportKind) -> Settings:
    return Settings(
        api_base_url=url + "/eCashHost",
        http_transport=kind,
        request_timeout_s=0.3,
        connect_timeout_s=0.3,
        not_sent_retry_attempts=2,
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("mode", "evidence"),
    [
        ("http_500", "HTTP 500 from the API saying GENERAL_ERROR"),
        ("not_json", "not a JSON object"),
        ("close", "closed the connection"),
        ("reset", "failed while waiting for the answer"),
        ("hang", "read timeout after 0.3 s; the request had been sent"),
    ],
)
async def test_the_client_calls_every_post_send_failure_ambiguous_and_sends_once(
    kind: TransportKind, mode: str, evidence: str
) -> None:
    async with serving(mode) as server:
        async with EcashClient(_settings(server.url, kind), sink=Recorder(), sleep=_no_sleep) as client:
            result = await client.charge(msisdn="08131234567", amount=Decimal("100000"), trace_number="T1")
        assert result.call_class is CallClass.AMBIGUOUS
        assert evidence in result.evidence
        assert result.sends == 1
        assert server.charges() == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_the_client_calls_an_unreachable_api_not_sent(kind: TransportKind) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with EcashClient(_settings(url, kind), sink=Recorder(), sleep=_no_sleep) as client:
        result = await client.charge(msisdn="08131234567", amount=Decimal("100000"), trace_number="T1")
    assert (result.call_class, result.sends) == (CallClass.NOT_SENT, 0)
    assert result.evidence.startswith("not sent: login failed: could not connect")


@pytest.mark.parametrize("kind", KINDS)
async def test_the_client_succeeds_over_real_sockets(kind: TransportKind) -> None:
    async with serving("json") as server:
        async with EcashClient(_settings(server.url, kind), sink=Recorder(), sleep=_no_sleep) as client:
            result = await client.charge(msisdn="08131234567", amount=Decimal("100000"), trace_number="T1")
        assert (result.call_class, result.sends) == (CallClass.SUCCEEDED, 1)
    assert server.requests[-1] == "/eCashHost/SessionManager/Logout"


@pytest.mark.parametrize("kind", KINDS)
async def test_headers_arrive_spelled_as_the_spec_prints_them_and_gzip_answers_are_read(
    kind: TransportKind,
) -> None:
    async with (
        serving("gzip") as server,
        EcashClient(_settings(server.url, kind), sink=Recorder(), sleep=_no_sleep) as client,
    ):
        result = await client.charge(msisdn="08131234567", amount=Decimal("100000"), trace_number="T1")
    assert (result.call_class, result.response_code) == (CallClass.DECLINED, "NOT_ENOUGH_CREDITS")
    login_head, charge_head = server.heads[0], server.heads[1]
    assert "\r\nAPIKey: " in login_head
    assert "\r\nCredentials: " in login_head
    assert "\r\nAPIKey: " in charge_head
    assert "Credentials" not in charge_head
    assert "Content-Type: application/x-www-form-urlencoded" in charge_head


# --- concurrency ------------------------------------------------------------------------------------------


async def test_two_hundred_concurrent_requests_through_the_aiohttp_transport() -> None:
    peers: set[tuple[str, int]] = set()

    async def charge(request: web.Request) -> web.Response:
        form = await request.post()
        peers.add(request.transport.get_extra_info("peername"))  # type: ignore[union-attr]
        await asyncio.sleep(0.02)
        return web.json_response({"status": "PROCESSED", "traceNumber": form["traceNumber"]})

    app = web.Application()
    app.router.add_post(CHARGE_PATH, charge)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        transport = AiohttpTransport(max_connections=64, connect_timeout_s=1.0)
        async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(10.0)) as client:
            responses = await asyncio.gather(
                *(
                    client.post(f"http://127.0.0.1:{port}{CHARGE_PATH}", data={"traceNumber": str(i)})
                    for i in range(200)
                )
            )
    finally:
        await runner.cleanup()
    assert [r.status_code for r in responses] == [200] * 200
    assert sorted(r.json()["traceNumber"] for r in responses) == sorted(str(i) for i in range(200))
    assert len(peers) <= 64
