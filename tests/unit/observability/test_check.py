"""`ecash-worker check`: exit codes and the one line an operator (or a probe log) reads."""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from types import SimpleNamespace

import pytest

from worker.clock import FakeClock
from worker.commandline import parse
from worker.events import PipelineSnapshot
from worker.observability import check
from worker.observability.check import command, probe_url, run_check
from worker.observability.health import HealthServer, serve_health
from worker.observability.metrics import Metrics
from worker.settings import Settings, load_settings

from .samples import busy_snapshot


class Probed:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.snap = busy_snapshot(clock.now().timestamp())

    def __call__(self) -> PipelineSnapshot:
        return self.snap


@pytest.fixture
async def probed() -> AsyncIterator[tuple[Probed, HealthServer]]:
    state = Probed(FakeClock())
    settings = load_settings(metrics_host="127.0.0.1", metrics_port=0)
    server = await serve_health(settings, Metrics(), state, clock=state.clock)
    yield state, server
    await server.stop()


async def checked(port: int, live: bool = False, timeout_s: float = 3.0) -> tuple[int, str]:
    out = io.StringIO()
    settings = load_settings(metrics_port=port)
    code = await asyncio.to_thread(run_check, settings, live, timeout_s, None, out)
    return code, out.getvalue()


async def test_ready_worker_exits_0(probed: tuple[Probed, HealthServer]) -> None:
    code, line = await checked(probed[1].port)
    assert code == 0
    assert line == "ready (assigned_partitions=[0, 3], breaker_state=closed, logged_in=True)\n"


async def test_unready_worker_exits_1_with_the_reasons(probed: tuple[Probed, HealthServer]) -> None:
    state, server = probed
    state.snap = replace(state.snap, consuming=False, fatal="login refused: BLOCKED")
    code, line = await checked(server.port)
    assert code == 1
    assert line == (
        "not ready (HTTP 503): fatal configuration error: login refused: BLOCKED; "
        "consumer not running or not joined to its group\n"
    )


async def test_during_a_bank_outage_the_worker_is_ready_and_the_line_says_the_bank_is_down(
    probed: tuple[Probed, HealthServer],
) -> None:
    state, server = probed
    state.snap = replace(state.snap, logged_in=False, breaker_state="open")
    code, line = await checked(server.port)
    assert code == 0
    assert line == "ready (assigned_partitions=[0, 3], breaker_state=open, logged_in=False)\n"


async def test_live_asks_healthz_which_ignores_readiness(probed: tuple[Probed, HealthServer]) -> None:
    state, server = probed
    state.snap = replace(state.snap, logged_in=False)
    code, line = await checked(server.port, live=True)
    assert (code, line.split(" ")[0].strip()) == (0, "live")
    state.clock.advance(3600)
    code, line = await checked(server.port, live=True)
    assert code == 1
    assert line.startswith("not live (HTTP 503): event loop stuck")


async def test_nothing_listening_exits_1() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, line = await checked(port)
    assert code == 1
    assert line.startswith(f"not ready: cannot reach http://127.0.0.1:{port}/readyz")
    assert "is the worker running?" in line


async def test_a_hung_server_exits_1_after_the_timeout() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # hold the connection until the client gives up; say nothing

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    try:
        code, line = await checked(server.sockets[0].getsockname()[1], timeout_s=0.2)
    finally:
        server.close()
    assert code == 1
    assert "did not answer within 0.2 s" in line


@pytest.mark.parametrize(
    ("host", "live", "url"),
    [
        ("0.0.0.0", False, "http://127.0.0.1:9464/readyz"),
        ("::", True, "http://127.0.0.1:9464/healthz"),
        ("10.1.2.3", False, "http://10.1.2.3:9464/readyz"),
        ("::1", False, "http://[::1]:9464/readyz"),
    ],
)
def test_probe_url_reaches_a_wildcard_bind_over_loopback(host: str, live: bool, url: str) -> None:
    settings: Settings = load_settings(metrics_host=host, metrics_port=9464)
    assert probe_url(settings, live) == url


def test_command_line_wiring() -> None:
    args = parse(command, ["--live", "--timeout-s", "1.5", "--port", "9999"])
    assert (args.live, args.timeout_s, args.port, args.config) == (True, 1.5, 9999, False)
    defaults = parse(command, [])
    assert (defaults.live, defaults.timeout_s, defaults.port) == (False, 3.0, None)


async def test_run_reads_the_port_from_the_environment(
    probed: tuple[Probed, HealthServer], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ECASH_METRICS_PORT", str(probed[1].port))
    args = SimpleNamespace(live=False, timeout_s=3.0, port=None)
    assert await asyncio.to_thread(check.run, args) == 0
    assert capsys.readouterr().out.startswith("ready")


def test_run_with_a_bad_setting_exits_1_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ECASH_METRICS_PORT", "not-a-port")
    assert check.run(SimpleNamespace(live=False, timeout_s=1.0, port=None)) == 1
    assert "ECASH_METRICS_PORT" in capsys.readouterr().out
