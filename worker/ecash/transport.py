"""HTTP transports for the E-Cash client, and the one honest answer to "did the request leave?".

``classify_transport_error`` turns any transport failure into ``not_sent`` (provably never reached the
server: safe to send again) or ``ambiguous`` (it may have; a Charge may have moved money). Only a failure
before a connection was ours is ``not_sent``: DNS failure, connection refused, connect timeout, no free
connection in the pool. Everything after (server closed, reset, read timeout, a reused keep-alive
connection dying mid-request) is ``ambiguous``, and so is anything we cannot place.

``AiohttpTransport`` is an ``httpx.AsyncBaseTransport`` over one ``aiohttp.ClientSession``: httpx's API,
types and exceptions, aiohttp's pool (httpx's own collapses past ~32 requests in flight; see
``shared/tools/HTTP_CLIENT_BENCH.md``). It does its own exception mapping, because httpx-aiohttp maps every
connection error to ``ConnectTimeout``, making "never left" and "reached the server" look the same. It
decides with two witnesses: aiohttp's trace signals say whether a connection was acquired for the
request, and the exception's class says in which phase it was raised. ``not_sent`` needs both.
"""

from __future__ import annotations

import base64
import re
import ssl
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver
from multidict import CIMultiDict

from worker.ecash.codes import CallClass
from worker.settings import Settings, TransportKind

__all__ = [
    "DEFAULT_KEEPALIVE_S",
    "DEFAULT_MAX_BODY_BYTES",
    "AiohttpTransport",
    "ApiNetwork",
    "LeanAsyncClient",
    "Progress",
    "api_network",
    "api_ssl_context",
    "classify_transport_error",
    "describe_transport_error",
    "make_transport",
    "map_aiohttp_error",
    "progress_trace_config",
    "split_proxy_url",
    "tls_failure",
    "transport_reason",
    "without_passwords",
]

DEFAULT_KEEPALIVE_S = 4.0  # below uvicorn's 5 s: drop idle connections before the server does
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024


# --- the network path to the API: proxy, trust, client certificate ------------------------------------


@dataclass(frozen=True)
class ApiNetwork:
    """How both transports reach the API: one TLS context (the system's trust plus ``ECASH_API_CA_FILE``,
    and the mTLS client certificate) and an optional HTTP proxy.

    ``proxy_url`` carries no credentials (they are in ``proxy_authorization``, a ``Proxy-Authorization``
    header value): whatever prints the URL, in an error or a log, prints no password. The environment's
    ``HTTPS_PROXY``/``NO_PROXY`` are never consulted: a stray variable must not reroute money calls.
    """

    ssl_context: ssl.SSLContext
    proxy_url: str | None = None
    proxy_authorization: str | None = field(default=None, repr=False)  # a secret

    @property
    def proxy_headers(self) -> dict[str, str] | None:
        return {"Proxy-Authorization": self.proxy_authorization} if self.proxy_authorization else None


def api_ssl_context(
    ca_file: str | None = None, client_cert_file: str | None = None, client_key_file: str | None = None
) -> ssl.SSLContext:
    """The system's default trust store, with ``ca_file`` added (not replacing it), and the client
    certificate for mutual TLS when given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    if client_cert_file is not None:
        context.load_cert_chain(client_cert_file, client_key_file)
    return context


def split_proxy_url(url: str) -> tuple[str, str | None]:
    """``http://user:pass@host:port`` -> (``http://host:port``, the ``Basic`` Proxy-Authorization value)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    bare = urlunsplit((parts.scheme, netloc, "", "", ""))
    if parts.username is None and parts.password is None:
        return bare, None
    userpass = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    return bare, "Basic " + base64.b64encode(userpass.encode()).decode("ascii")


def api_network(settings: Settings) -> ApiNetwork:
    """The ``ApiNetwork`` of ``ECASH_API_PROXY_URL``, ``ECASH_API_CA_FILE`` and the client certificate."""

    def path(value: object) -> str | None:
        return str(value) if value is not None else None

    context = api_ssl_context(
        path(settings.api_ca_file), path(settings.api_client_cert_file), path(settings.api_client_key_file)
    )
    if settings.api_proxy_url is None:
        return ApiNetwork(context)
    proxy_url, authorization = split_proxy_url(settings.api_proxy_url.get_secret_value())
    return ApiNetwork(context, proxy_url, authorization)


_USERINFO = re.compile(r"(//[^/@\s:]*):[^/@\s]*@")


def without_passwords(text: str) -> str:
    """``text`` with any ``//user:password@`` in a URL shown as ``//user:***@``."""
    return _USERINFO.sub(r"\1:***@", text)


_NOT_SENT_ERRORS = (
    httpx.ProxyError,  # the proxy refused the tunnel (CONNECT): nothing went towards the API
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.InvalidURL,
)


def classify_transport_error(exc: BaseException) -> CallClass:
    """``not_sent`` only for failures that happen before the request can leave; else ``ambiguous``."""
    return CallClass.NOT_SENT if isinstance(exc, _NOT_SENT_ERRORS) else CallClass.AMBIGUOUS


def tls_failure(exc: BaseException) -> str | None:
    """The TLS error behind a transport failure (certificate not verified, handshake refused), or None.

    Such a failure is our configuration (the bank's CA, the URL's host name, a proxy), not the network:
    nothing was sent, and retrying will not help. Both transports keep the ``ssl.SSLError`` (or aiohttp's
    SSL error) in the exception's cause chain.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, aiohttp.ClientConnectorCertificateError):
            cause = current.certificate_error
            detail = getattr(cause, "verify_message", None) or getattr(cause, "reason", None) or cause
            return f"certificate verify failed: {detail}"
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {current.verify_message or current.reason}"
        if isinstance(current, ssl.SSLError | aiohttp.ClientSSLError):
            return f"TLS failed: {getattr(current, 'reason', None) or current}"
        current = current.__cause__ or current.__context__
    return None


def _timeout_s(exc: BaseException, phase: str) -> float | None:
    if not isinstance(exc, httpx.RequestError):
        return None
    try:
        request = exc.request
    except RuntimeError:  # raised without a request
        return None
    value = request.extensions.get("timeout", {}).get(phase)
    return float(value) if isinstance(value, int | float) else None


def _after(seconds: float | None) -> str:
    return f" after {seconds:.1f} s" if seconds is not None else ""


def describe_transport_error(exc: BaseException) -> str:  # noqa: C901 - one flat case per transport error, in the order they must be tested
    """A sentence for the evidence: what failed and whether the request had left."""
    if isinstance(exc, httpx.ProxyError):
        what = "the proxy (ECASH_API_PROXY_URL) refused the tunnel"
    elif isinstance(exc, httpx.PoolTimeout):
        what = f"no free connection{_after(_timeout_s(exc, 'pool'))}"
    elif isinstance(exc, httpx.ConnectTimeout):
        what = f"connect timeout{_after(_timeout_s(exc, 'connect'))}"
    elif isinstance(exc, httpx.ConnectError):
        what = "could not connect"
    elif isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        what = "the URL cannot be used"
    elif isinstance(exc, httpx.ReadTimeout):
        return f"read timeout{_after(_timeout_s(exc, 'read'))}; the request had been sent"
    elif isinstance(exc, httpx.WriteTimeout | httpx.WriteError):
        what = "the connection failed while the request was being written"
    elif isinstance(exc, httpx.RemoteProtocolError):
        what = "the server closed the connection without a complete answer"
    elif isinstance(exc, httpx.ReadError):
        what = "the connection failed while waiting for the answer"
    else:
        what = f"unexpected {type(exc).__name__}"
    detail = without_passwords(str(exc).strip())[:200]
    what = f"{what} ({detail})" if detail else what
    if classify_transport_error(exc) is CallClass.NOT_SENT:
        return f"{what}; the request was not sent"
    return f"{what}; the request may have reached the server"


_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (httpx.ProxyError, "proxy_refused"),
    (httpx.PoolTimeout, "pool_timeout"),
    (httpx.ConnectTimeout, "connect_timeout"),
    (httpx.ConnectError, "connect_error"),
    (httpx.UnsupportedProtocol, "bad_url"),
    (httpx.InvalidURL, "bad_url"),
    (httpx.ReadTimeout, "read_timeout"),
    (httpx.WriteTimeout, "write_error"),
    (httpx.WriteError, "write_error"),
    (httpx.RemoteProtocolError, "remote_closed"),
    (httpx.ReadError, "read_error"),
)


def transport_reason(exc: BaseException) -> str:
    """A short word for metrics and events: ``read_timeout``, ``connect_error``, ``remote_closed``, ..."""
    for kind, word in _REASONS:
        if isinstance(exc, kind):
            return word
    return "transport_error"


# --- where a request got to, from aiohttp's trace signals -----------------------------------------------


@dataclass
class Progress:
    """Filled in by aiohttp's trace signals while one request runs."""

    started: bool = False  # our trace config saw the request: the other flags can be trusted
    queued: bool = False  # waited for a free connection
    dequeued: bool = False
    connection_acquired: bool = False  # a new or reused connection was handed to the request
    reused: bool = False
    request_written: bool = False  # aiohttp flushed the request headers (and maybe the body)


def _progress(ctx: SimpleNamespace) -> Progress | None:
    progress = getattr(ctx, "trace_request_ctx", None)
    return progress if isinstance(progress, Progress) else None


def _mark(**flags: bool) -> Any:
    async def callback(_session: aiohttp.ClientSession, ctx: SimpleNamespace, _params: object) -> None:
        progress = _progress(ctx)
        if progress is not None:
            for name, value in flags.items():
                setattr(progress, name, value)

    return callback


def progress_trace_config() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    config.on_request_start.append(_mark(started=True))
    config.on_connection_queued_start.append(_mark(queued=True))
    config.on_connection_queued_end.append(_mark(dequeued=True))
    config.on_connection_create_end.append(_mark(connection_acquired=True))
    config.on_connection_reuseconn.append(_mark(connection_acquired=True, reused=True))
    config.on_request_headers_sent.append(_mark(request_written=True))
    config.on_request_chunk_sent.append(_mark(request_written=True))
    config.freeze()
    return config


# Raised by aiohttp only while getting a connection (client.py wraps connector.connect's timeout into
# ConnectionTimeoutError; connector.py wraps connect-time OSErrors into ClientConnectorError).
_CONNECT_PHASE = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
_NETWORK = (aiohttp.ClientError, OSError, TimeoutError)


def map_aiohttp_error(exc: BaseException, progress: Progress, request: httpx.Request) -> Exception:
    """The httpx exception that says truthfully how far ``request`` got when aiohttp raised ``exc``."""
    message = f"{type(exc).__name__}: {exc}".strip()
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol(message, request=request)
    connect_phase = isinstance(exc, _CONNECT_PHASE) or (progress.started and isinstance(exc, _NETWORK))
    if connect_phase and not progress.connection_acquired:
        if isinstance(exc, aiohttp.ClientHttpProxyError):  # the proxy answered CONNECT with no 200
            return httpx.ProxyError(message, request=request)
        if isinstance(exc, TimeoutError):
            if progress.queued and not progress.dequeued:
                return httpx.PoolTimeout(message, request=request)
            return httpx.ConnectTimeout(message, request=request)
        return httpx.ConnectError(message, request=request)
    sent = "" if progress.request_written else " (the connection was ours; the request may have been written)"
    stale = " on a reused keep-alive connection" if progress.reused else ""
    message = f"{message}{stale}{sent}"
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(
        exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError
    ):
        return httpx.RemoteProtocolError(message, request=request)
    if not progress.request_written and isinstance(exc, _NETWORK):
        return httpx.WriteError(message, request=request)
    return httpx.ReadError(message, request=request)


# --- the transport ---------------------------------------------------------------------------------------


def _client_timeout(request: httpx.Request, default_connect_s: float) -> aiohttp.ClientTimeout:
    timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
    connect_s = timeouts.get("connect", default_connect_s)
    pool_s = timeouts.get("pool")
    parts = [s for s in (connect_s, pool_s) if s is not None]
    return aiohttp.ClientTimeout(
        total=None,
        connect=sum(parts) if parts else None,  # aiohttp's "connect" covers the pool wait and the connect
        sock_connect=connect_s,
        sock_read=timeouts.get("read"),
    )


def _wire_headers(request: httpx.Request) -> CIMultiDict[str]:
    """The request's headers with their names as written (``APIKey``, not ``apikey``): some servers care.
    The body is sent whole, so a chunked transfer-encoding does not apply."""
    return CIMultiDict(
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in request.headers.raw
        if name.lower() != b"transfer-encoding"
    )


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport over aiohttp, with an exception mapping that never claims "not sent" wrongly.

    Responses are read whole (they are small JSON documents) and capped at ``max_body_bytes``; the
    body's content-encoding is left to httpx. aiohttp never re-sends a POST on its own.
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        connect_timeout_s: float = 3.0,
        keepalive_s: float = DEFAULT_KEEPALIVE_S,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        resolver: AbstractResolver | None = None,
        ssl_context: ssl.SSLContext | bool = True,
        proxy_url: str | None = None,
        proxy_headers: dict[str, str] | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._max_connections = max_connections
        self._connect_timeout_s = connect_timeout_s
        self._keepalive_s = keepalive_s
        self._max_body_bytes = max_body_bytes
        self._resolver = resolver
        self._ssl = ssl_context
        self._proxy = proxy_url  # without credentials: they travel in proxy_headers
        self._proxy_headers = proxy_headers
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _client(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the transport is closed")
        if self._session is None:  # created on first use: aiohttp binds it to the running loop
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                keepalive_timeout=self._keepalive_s,
                resolver=self._resolver,
                ssl=self._ssl,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,  # httpx decodes according to Content-Encoding
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies
                trace_configs=[progress_trace_config()],
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._client()
        body = await request.aread()
        headers = _wire_headers(request)
        progress = Progress()
        try:
            async with session.request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                proxy=self._proxy,
                proxy_headers=self._proxy_headers,
                timeout=_client_timeout(request, self._connect_timeout_s),
                trace_request_ctx=progress,
            ) as response:
                content = await self._read(response, request)
                return httpx.Response(
                    status_code=response.status,
                    headers=list(response.raw_headers),
                    stream=httpx.ByteStream(content),
                    request=request,
                    extensions={
                        "http_version": f"HTTP/{response.version.major}.{response.version.minor}".encode()
                        if response.version
                        else b"HTTP/1.1",
                        "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
                    },
                )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise map_aiohttp_error(exc, progress, request) from exc

    async def _read(self, response: aiohttp.ClientResponse, request: httpx.Request) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > self._max_body_bytes:
                raise httpx.ReadError(f"answer larger than {self._max_body_bytes} bytes", request=request)
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


# --- the client over the transport ---------------------------------------------------------------------


class _SetCookieOnly(httpx.Cookies):
    """httpx's cookie jar, asked to read a response only when the response sets a cookie.

    ``Cookies.extract_cookies`` wraps every response and request in urllib adapters before the jar looks
    for ``Set-Cookie``/``Set-Cookie2``; without those headers the jar changes nothing (its clock is
    refreshed again before cookies are ever sent), so skipping that case changes no behaviour.
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


class LeanAsyncClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` without two per-request costs that buy nothing here; same requests, same
    responses, same exceptions. Measured in docs/performance.md (about a tenth of the worker's CPU).

    - A relative URL is merged with ``base_url`` once per path, not parsed again for every request
      (the cache is keyed by the path and checked against the ``base_url`` object it was merged with).
    - Cookies are extracted only from responses that set one (``_SetCookieOnly``).
    """

    _MAX_CACHED_URLS = 64

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cookies = _SetCookieOnly(self._cookies)
        self._merged_urls: dict[str, tuple[httpx.URL, httpx.URL]] = {}

    @property
    def cookies(self) -> httpx.Cookies:
        return self._cookies

    @cookies.setter
    def cookies(self, cookies: httpx._types.CookieTypes) -> None:
        self._cookies = _SetCookieOnly(cookies)

    def _merge_url(self, url: httpx.URL | str) -> httpx.URL:
        if not isinstance(url, str):
            return super()._merge_url(url)
        cached = self._merged_urls.get(url)
        if cached is not None and cached[0] is self.base_url:
            return cached[1]
        merged = super()._merge_url(url)
        if len(self._merged_urls) < self._MAX_CACHED_URLS:
            self._merged_urls[url] = (self.base_url, merged)  # httpx.URL is immutable: safe to share
        return merged


def make_transport(
    kind: TransportKind | str,
    max_connections: int,
    connect_timeout_s: float,
    *,
    keepalive_s: float = DEFAULT_KEEPALIVE_S,
    network: ApiNetwork | None = None,
) -> httpx.AsyncBaseTransport:
    """The transport ``ECASH_HTTP_TRANSPORT`` names. ``connect_timeout_s`` is a fallback: the client's
    timeouts travel with each request. ``network`` (``api_network(settings)``): the proxy, the trust
    and the client certificate; without it, the system's trust store and no proxy. Either transport
    ignores the environment's proxy variables."""
    network = network or ApiNetwork(api_ssl_context())
    if TransportKind(kind) is TransportKind.AIOHTTP:
        return AiohttpTransport(
            max_connections=max_connections,
            connect_timeout_s=connect_timeout_s,
            keepalive_s=keepalive_s,
            ssl_context=network.ssl_context,
            proxy_url=network.proxy_url,
            proxy_headers=network.proxy_headers,
        )
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=keepalive_s,
    )
    proxy = None
    if network.proxy_url is not None:
        tls_to_proxy = network.proxy_url.startswith("https://")  # httpx refuses a context for http://
        proxy = httpx.Proxy(
            network.proxy_url,
            ssl_context=network.ssl_context if tls_to_proxy else None,
            headers=network.proxy_headers,
        )
    return httpx.AsyncHTTPTransport(
        limits=limits, retries=0, verify=network.ssl_context, proxy=proxy, trust_env=False
    )
