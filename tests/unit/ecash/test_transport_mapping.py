"""The mapping from aiohttp's failures to httpx's, and from httpx's to not_sent/ambiguous (pure)."""

from __future__ import annotations

import socket

import aiohttp
import httpx
import pytest
from aiohttp.client_reqrep import ConnectionKey

from worker.ecash.codes import CallClass
from worker.ecash.transport import (
    AiohttpTransport,
    Progress,
    classify_transport_error,
    describe_transport_error,
    make_transport,
    map_aiohttp_error,
    transport_reason,
)
from worker.settings import TransportKind

REQUEST = httpx.Request(
    "POST",
    "http://ecash.test/eCashHost/TransactionManager/Charge",
    extensions={"timeout": {"connect": 3.0, "read": 10.0, "write": 10.0, "pool": 10.0}},
)
KEY = ConnectionKey("ecash.test", 80, False, True, None, None, None)

NOT_YET = Progress(started=True)
QUEUED = Progress(started=True, queued=True)
CONNECTED = Progress(started=True, connection_acquired=True)
WRITTEN = Progress(started=True, connection_acquired=True, request_written=True)
REUSED_WRITTEN = Progress(started=True, connection_acquired=True, reused=True, request_written=True)
NO_TRACE = Progress()


@pytest.mark.parametrize(
    ("exc", "progress", "expected", "call_class"),
    [
        (
            aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "refused")),
            NOT_YET,
            httpx.ConnectError,
            "not_sent",
        ),
        (
            aiohttp.ClientConnectorDNSError(KEY, socket.gaierror(-2, "unknown")),
            NOT_YET,
            httpx.ConnectError,
            "not_sent",
        ),
        (
            aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "x")),
            NO_TRACE,
            httpx.ConnectError,
            "not_sent",
        ),
        (aiohttp.ConnectionTimeoutError("connect"), NOT_YET, httpx.ConnectTimeout, "not_sent"),
        (aiohttp.ConnectionTimeoutError("connect"), QUEUED, httpx.PoolTimeout, "not_sent"),
        (aiohttp.ServerDisconnectedError(), NOT_YET, httpx.ConnectError, "not_sent"),
        (aiohttp.ClientOSError(104, "reset"), NOT_YET, httpx.ConnectError, "not_sent"),
        (aiohttp.InvalidURL("nope"), NOT_YET, httpx.UnsupportedProtocol, "not_sent"),
        # after a connection was ours: whatever it is, the request may have left
        (aiohttp.ServerDisconnectedError(), WRITTEN, httpx.RemoteProtocolError, "ambiguous"),
        (aiohttp.ServerDisconnectedError(), REUSED_WRITTEN, httpx.RemoteProtocolError, "ambiguous"),
        (aiohttp.ServerDisconnectedError(), CONNECTED, httpx.RemoteProtocolError, "ambiguous"),
        (aiohttp.ClientOSError(104, "reset"), WRITTEN, httpx.ReadError, "ambiguous"),
        (aiohttp.ClientOSError(32, "broken pipe"), CONNECTED, httpx.WriteError, "ambiguous"),
        (aiohttp.SocketTimeoutError("read"), WRITTEN, httpx.ReadTimeout, "ambiguous"),
        (aiohttp.ClientPayloadError("truncated"), WRITTEN, httpx.RemoteProtocolError, "ambiguous"),
        (ConnectionResetError(104, "reset"), WRITTEN, httpx.ReadError, "ambiguous"),
        # no proof either way: the traces never ran, so a disconnect is not "not sent"
        (aiohttp.ServerDisconnectedError(), NO_TRACE, httpx.RemoteProtocolError, "ambiguous"),
        (aiohttp.ClientOSError(104, "reset"), NO_TRACE, httpx.WriteError, "ambiguous"),
        # the witnesses disagree (a connect-phase class after a connection was ours): ambiguous
        (aiohttp.ClientConnectorError(KEY, OSError(1, "x")), CONNECTED, httpx.WriteError, "ambiguous"),
        (aiohttp.ConnectionTimeoutError("x"), WRITTEN, httpx.ReadTimeout, "ambiguous"),
    ],
)
def test_aiohttp_failures_map_to_what_really_happened(
    exc: BaseException, progress: Progress, expected: type[Exception], call_class: str
) -> None:
    mapped = map_aiohttp_error(exc, progress, REQUEST)
    assert type(mapped) is expected
    assert classify_transport_error(mapped) == CallClass(call_class)
    assert mapped.request is REQUEST  # type: ignore[attr-defined]


def test_a_stale_keep_alive_failure_says_so_in_the_message() -> None:
    mapped = map_aiohttp_error(aiohttp.ServerDisconnectedError(), REUSED_WRITTEN, REQUEST)
    assert "reused keep-alive connection" in str(mapped)


@pytest.mark.parametrize(
    ("exc", "call_class"),
    [
        (httpx.ConnectError("refused"), "not_sent"),
        (httpx.ConnectTimeout("slow"), "not_sent"),
        (httpx.PoolTimeout("busy"), "not_sent"),
        (httpx.UnsupportedProtocol("ftp"), "not_sent"),
        (httpx.ReadTimeout("slow"), "ambiguous"),
        (httpx.WriteTimeout("slow"), "ambiguous"),
        (httpx.ReadError("reset"), "ambiguous"),
        (httpx.WriteError("pipe"), "ambiguous"),
        (httpx.RemoteProtocolError("closed"), "ambiguous"),
        (httpx.LocalProtocolError("h11"), "ambiguous"),
        # httpcore raises it only when the proxy answers CONNECT with no 2xx: the tunnel never opened
        (httpx.ProxyError("407 Proxy Authentication Required"), "not_sent"),
        (httpx.DecodingError("gzip"), "ambiguous"),
        (RuntimeError("bug"), "ambiguous"),
        (TimeoutError(), "ambiguous"),
    ],
)
def test_only_failures_before_a_connection_are_not_sent(exc: BaseException, call_class: str) -> None:
    assert classify_transport_error(exc) == CallClass(call_class)


def test_evidence_sentences_say_whether_the_request_left() -> None:
    read = httpx.ReadTimeout("", request=REQUEST)
    assert describe_transport_error(read) == "read timeout after 10.0 s; the request had been sent"
    connect = httpx.ConnectTimeout("", request=REQUEST)
    assert describe_transport_error(connect) == "connect timeout after 3.0 s; the request was not sent"
    pool = describe_transport_error(httpx.PoolTimeout("", request=REQUEST))
    assert pool == "no free connection after 10.0 s; the request was not sent"
    refused = describe_transport_error(httpx.ConnectError("Connection refused"))
    assert refused == "could not connect (Connection refused); the request was not sent"
    closed = describe_transport_error(httpx.RemoteProtocolError("Server disconnected"))
    assert closed.endswith("the request may have reached the server")
    assert (
        describe_transport_error(RuntimeError())
        == "unexpected RuntimeError; the request may have reached the server"
    )


def test_reason_words() -> None:
    assert transport_reason(httpx.ReadTimeout("x")) == "read_timeout"
    assert transport_reason(httpx.PoolTimeout("x")) == "pool_timeout"
    assert transport_reason(httpx.ConnectTimeout("x")) == "connect_timeout"
    assert transport_reason(httpx.RemoteProtocolError("x")) == "remote_closed"
    assert transport_reason(KeyError("x")) == "transport_error"


async def test_make_transport_builds_either_kind() -> None:
    aio = make_transport(TransportKind.AIOHTTP, max_connections=8, connect_timeout_s=1.0)
    plain = make_transport("httpx", max_connections=8, connect_timeout_s=1.0)
    assert isinstance(aio, AiohttpTransport)
    assert isinstance(plain, httpx.AsyncHTTPTransport)
    await aio.aclose()
    await plain.aclose()
    with pytest.raises(ValueError, match="nope"):
        make_transport("nope", max_connections=8, connect_timeout_s=1.0)


def test_a_transport_needs_at_least_one_connection() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        AiohttpTransport(max_connections=0)
