"""``ecash-worker check``: ask the running worker's probe server whether it is ready (or live); exit 0 or 1.

Usable as an exec probe or by hand: one line says why. The worker must run with the same settings
(``ECASH_METRICS_PORT``); a wildcard ``ECASH_METRICS_HOST`` (0.0.0.0, ::) is reached over loopback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

import httpx

from worker.settings import Settings, SettingsError, load_settings

_WILDCARDS = {"0.0.0.0", "::", ""}


def probe_url(settings: Settings, live: bool, port: int | None = None) -> str:
    host = "127.0.0.1" if settings.metrics_host in _WILDCARDS else settings.metrics_host
    if ":" in host:
        host = f"[{host}]"
    path = "/healthz" if live else "/readyz"
    return f"http://{host}:{port if port is not None else settings.metrics_port}{path}"


def _reason(body: Any) -> str:
    if isinstance(body, dict):
        failing = body.get("failing")
        if isinstance(failing, list) and failing:
            return "; ".join(str(item) for item in failing)
    return "no reason given"


def _summary(body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("checks"), dict):
        return ""
    checks = body["checks"]
    keys = ("assigned_partitions", "breaker_state", "logged_in")  # ready says nothing of the bank: these do
    parts = [f"{key}={checks[key]}" for key in keys if key in checks]
    return f" ({', '.join(parts)})" if parts else ""


def run_check(
    settings: Settings,
    live: bool = False,
    timeout_s: float = 3.0,
    port: int | None = None,
    out: TextIO | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """GET /readyz (or /healthz with ``live``); print one line; 0 when it answers 200, else 1."""
    out = out or sys.stdout
    what = "live" if live else "ready"
    url = probe_url(settings, live, port)
    try:
        with httpx.Client(timeout=timeout_s, transport=transport, trust_env=False) as client:
            response = client.get(url)
    except httpx.TimeoutException:
        print(f"not {what}: {url} did not answer within {timeout_s:g} s", file=out)
        return 1
    except httpx.HTTPError as exc:
        print(f"not {what}: cannot reach {url} ({type(exc).__name__}: is the worker running?)", file=out)
        return 1
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if response.status_code == 200:
        print(f"{what}{_summary(body)}", file=out)
        return 0
    print(f"not {what} (HTTP {response.status_code}): {_reason(body)}", file=out)
    return 1


def configure_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``check`` to the CLI's subparsers (``argparse._SubParsersAction``); its handler is ``run``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "check",
        help="exit 0 if the running worker is ready (or live, with --live), else 1, with a one-line reason",
        description=__doc__,
    )
    parser.add_argument("--live", action="store_true", help="ask /healthz (liveness) instead of /readyz")
    parser.add_argument("--timeout-s", type=float, default=3.0, help="how long to wait for an answer")
    parser.add_argument("--port", type=int, default=None, help="probe port (default: ECASH_METRICS_PORT)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"not checked: {exc}", file=sys.stdout)
        return 1
    return run_check(settings, live=args.live, timeout_s=args.timeout_s, port=args.port)
