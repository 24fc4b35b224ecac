"""Run the sandbox on a real socket: in the current event loop, or in a thread with its own loop.

    async with serve_sandbox(SandboxConfig(auto_create_wallets=True)) as sandbox:
        ... POST sandbox.base_url + "/SessionManager/Login" ...; sandbox.state.ledger ...

uvicorn serves it (access log off, the host's logging left alone, no signal handlers taken). On exit
the calls held by ``hang_after_commit`` are released (their connections reset), then uvicorn stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp
from uvicorn.loops.auto import auto_loop_factory

from ecash_dev.sandbox.admin import admin_routes
from ecash_dev.sandbox.app import BASE_PATH, Sandbox, api_routes, expose_transport
from ecash_dev.sandbox.state import SandboxConfig, SandboxState
from worker.clock import Clock

ADMIN_PATH = "/admin"
_KEEP_ALIVE_S = 60  # longer than a client pool's idle time, so pooled connections are not cut mid-reuse
_GRACEFUL_SHUTDOWN_S = 5
_STARTUP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SandboxTls:
    """Serve over TLS (the tests of ``ECASH_API_CA_FILE`` and mutual TLS): the server's certificate
    chain and key (PEM), and with ``client_ca_file`` a client certificate signed by it is required."""

    certfile: str
    keyfile: str
    client_ca_file: str | None = None


@dataclass(frozen=True)
class RunningSandbox:
    host: str
    port: int
    sandbox: Sandbox
    scheme: str = "http"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API's base URL, ending in ``/eCashHost`` (what the client's ``api_base_url`` takes)."""
        return self.url + BASE_PATH

    @property
    def admin_url(self) -> str:
        return self.url + ADMIN_PATH

    @property
    def state(self) -> SandboxState:
        """The live state, for in-process assertions (from another thread: only once traffic is quiet)."""
        return self.sandbox.state


def build_app(sandbox: Sandbox) -> ASGIApp:
    app = Starlette(routes=[*api_routes(sandbox), Mount(ADMIN_PATH, routes=admin_routes(sandbox))])
    return expose_transport(app)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the process that embeds the sandbox keeps its own."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY on accepted sockets only then (else a 40 ms
    # Nagle/delayed-ACK stall on every response, whose headers and body uvicorn writes separately).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _uvicorn_config(app: ASGIApp, tls: SandboxTls | None = None) -> uvicorn.Config:
    tls_options: dict[str, object] = {}
    if tls is not None:
        tls_options = {"ssl_certfile": tls.certfile, "ssl_keyfile": tls.keyfile}
        if tls.client_ca_file is not None:
            tls_options |= {"ssl_ca_certs": tls.client_ca_file, "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=_KEEP_ALIVE_S,
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
        **tls_options,  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def serve_sandbox(
    config: SandboxConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Clock | None = None,
    tls: SandboxTls | None = None,
) -> AsyncIterator[RunningSandbox]:
    """Serve the sandbox in the running event loop on ``host:port`` (0 = a free port) until exit
    (over TLS with ``tls``).

    ``clock`` drives token expiry, timestamps, status lag and latency: with a ``FakeClock`` a test moves
    time by hand (latency faults then advance that clock instead of sleeping).
    """
    sandbox = Sandbox.create(config or SandboxConfig(), clock)
    sock = _listen(host, port)
    server = _EmbeddedServer(_uvicorn_config(build_app(sandbox), tls))
    task = asyncio.create_task(server.serve(sockets=[sock]), name="ecash-sandbox")
    try:
        await _until_started(server, task)
        scheme = "https" if tls is not None else "http"
        yield RunningSandbox(host=host, port=sock.getsockname()[1], sandbox=sandbox, scheme=scheme)
    finally:
        sandbox.closing.set()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


async def _until_started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    async with asyncio.timeout(_STARTUP_TIMEOUT_S):
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the sandbox server stopped during start-up")
            await asyncio.sleep(0.005)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop if uvloop is installed, else asyncio's."""
    return auto_loop_factory()


class _SandboxThread(threading.Thread):
    def __init__(self, config: SandboxConfig | None, host: str, port: int) -> None:
        super().__init__(name="ecash-sandbox", daemon=True)
        self._config, self._host, self._port = config, host, port
        self._ready = threading.Event()
        self._stop_soon: Callable[[], object] | None = None
        self.running: RunningSandbox | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                runner.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread by start_serving
            self.error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._stop_soon = lambda: loop.call_soon_threadsafe(stop.set)
        async with serve_sandbox(self._config, host=self._host, port=self._port) as running:
            self.running = running
            self._ready.set()
            await stop.wait()

    def start_serving(self) -> RunningSandbox:
        self.start()
        self._ready.wait(_STARTUP_TIMEOUT_S)
        if self.running is None:
            raise RuntimeError("the sandbox thread did not start") from self.error
        return self.running

    def stop_serving(self) -> None:
        if self._stop_soon is not None:
            self._stop_soon()
        self.join(_STARTUP_TIMEOUT_S + _GRACEFUL_SHUTDOWN_S)


@contextlib.contextmanager
def sandbox_in_thread(
    config: SandboxConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Iterator[RunningSandbox]:
    """Serve the sandbox from a thread with its own event loop (when the code under test owns the loop)."""
    thread = _SandboxThread(config, host, port)
    running = thread.start_serving()
    try:
        yield running
    finally:
        thread.stop_serving()
