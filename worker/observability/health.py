"""The metrics and probe server: ``/metrics``, ``/healthz`` (liveness), ``/readyz`` (readiness).

It runs as a task inside the worker's own asyncio loop (uvicorn, no signal handlers of its own: the
worker owns SIGTERM), so a loop that stops turning also stops answering, which is what a liveness probe
should see. The decisions are plain functions over a ``PipelineSnapshot`` (``liveness``, ``readiness``).

Readiness means "this pod can own partitions" (docs/runbook.md): the loop is live, the consumer runs and
has joined its group (an empty assignment is ready: a standby worker in a group with more workers than
partitions is healthy), and no fatal configuration error stands. It does not mean "the bank is up": an API
session and a closed breaker are reported in the body but never fail it. A bank outage is every pod's at
once; failing readiness for it would only block rollouts and node drains (and a pod started during an
outage would sit NotReady), while the pod keeps its partitions and resumes by itself (the breaker's
probe). The bank's health is in the metrics and their alerts (EcashBreakerOpen, EcashLoginFailing).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Generator
from dataclasses import dataclass

import uvicorn
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker.clock import Clock, SystemClock
from worker.events import PipelineSnapshot
from worker.observability.metrics import Metrics
from worker.settings import Settings

__all__ = ["HealthServer", "SnapshotSource", "Verdict", "build_app", "liveness", "readiness", "serve_health"]

SnapshotSource = Callable[[], PipelineSnapshot]


@dataclass(frozen=True)
class Verdict:
    ok: bool
    failing: tuple[str, ...]

    def body(self, checks: dict[str, object]) -> dict[str, object]:
        return {"status": "ok" if self.ok else "fail", "failing": list(self.failing), "checks": checks}


def liveness(
    snap: PipelineSnapshot, now_unix_s: float, started_unix_s: float, stuck_loop_s: float
) -> Verdict:
    """Live while the loop's heartbeat is recent. Before the first heartbeat, the server's start counts."""
    last_beat = max(snap.loop_heartbeat_unix_s, started_unix_s)
    silent_s = now_unix_s - last_beat
    if silent_s > stuck_loop_s:
        return Verdict(
            False, (f"event loop stuck: no heartbeat for {silent_s:.1f} s (limit {stuck_loop_s:g} s)",)
        )
    return Verdict(True, ())


def readiness(snap: PipelineSnapshot, live: Verdict) -> Verdict:
    """Can this pod own partitions? ``logged_in`` and ``breaker_state`` are the bank's health: not here."""
    failing = list(live.failing)
    if snap.fatal is not None:
        failing.append(f"fatal configuration error: {snap.fatal}")
    if not snap.consuming:
        failing.append("consumer not running or not joined to its group")
    return Verdict(not failing, tuple(failing))


def _checks(snap: PipelineSnapshot) -> dict[str, object]:
    return {
        "consuming": snap.consuming,
        "assigned_partitions": list(snap.assigned_partitions),
        "logged_in": snap.logged_in,
        "breaker_state": snap.breaker_state,
        "fatal": snap.fatal,
        "loop_heartbeat_unix_s": snap.loop_heartbeat_unix_s,
    }


class _Probes:
    def __init__(self, settings: Settings, metrics: Metrics, source: SnapshotSource, clock: Clock) -> None:
        self._metrics = metrics
        self._source = source
        self._clock = clock
        self._stuck_loop_s = settings.stuck_loop_s
        self._started_unix_s = clock.now().timestamp()

    def _snapshot(self) -> PipelineSnapshot | JSONResponse:
        try:
            snap = self._source()
        except Exception as exc:  # noqa: BLE001 - the probe must answer, and say why it cannot judge
            verdict = Verdict(False, (f"snapshot unavailable: {type(exc).__name__}",))
            return JSONResponse(verdict.body({}), status_code=503)
        return snap

    def _live(self, snap: PipelineSnapshot) -> Verdict:
        now = self._clock.now().timestamp()
        return liveness(snap, now, self._started_unix_s, self._stuck_loop_s)

    async def healthz(self, request: Request) -> Response:
        snap = self._snapshot()
        if isinstance(snap, Response):
            return snap
        verdict = self._live(snap)
        checks: dict[str, object] = {"loop_heartbeat_unix_s": snap.loop_heartbeat_unix_s}
        return JSONResponse(verdict.body(checks), status_code=200 if verdict.ok else 503)

    async def readyz(self, request: Request) -> Response:
        snap = self._snapshot()
        if isinstance(snap, Response):
            return snap
        verdict = readiness(snap, self._live(snap))
        return JSONResponse(verdict.body(_checks(snap)), status_code=200 if verdict.ok else 503)

    async def metrics(self, request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(self._metrics.registry), media_type=content_type)


def build_app(settings: Settings, metrics: Metrics, source: SnapshotSource, clock: Clock) -> Starlette:
    probes = _Probes(settings, metrics, source, clock)
    routes = [
        Route("/metrics", probes.metrics, methods=["GET"]),
        Route("/healthz", probes.healthz, methods=["GET"]),
        Route("/readyz", probes.readyz, methods=["GET"]),
    ]
    return Starlette(routes=routes)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its SIGINT/SIGTERM capture: the worker's own shutdown decides when we stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class HealthServer:
    """A running probe server; ``port`` is the bound one (useful with ``metrics_port=0``)."""

    def __init__(self, server: _EmbeddedServer, task: asyncio.Task[None], sock: socket.socket) -> None:
        self._server = server
        self._task = task
        self.host: str = sock.getsockname()[0]
        self.port: int = sock.getsockname()[1]

    @property
    def running(self) -> bool:
        return not self._task.done()

    async def stop(self) -> None:
        """Stop accepting, finish the requests in progress (a couple of seconds at most), return."""
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def serve_health(
    settings: Settings, metrics: Metrics, snapshot_fn: SnapshotSource, clock: Clock | None = None
) -> HealthServer:
    """Bind ``settings.metrics_host:metrics_port`` now (an OSError names a busy port at start) and serve."""
    clock = clock or SystemClock()
    app = build_app(settings, metrics, snapshot_fn, clock)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
        server_header=False,
    )
    sock = _bind(settings.metrics_host, settings.metrics_port)
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="health-server")
    return HealthServer(server, task, sock)
