"""``ecash-worker check``: ask the running worker's probe server whether it is ready (or live); exit 0 or 1.

Usable as an exec probe or by hand: one line says why. The worker must run with the same settings
(``ECASH_METRICS_PORT``); a wildcard ``ECASH_METRICS_HOST`` (0.0.0.0, ::) is reached over loopback.

``ecash-worker check --config`` asks no worker: it validates the ``ECASH_*`` settings with every check
that needs no network (as ``ecash-worker run`` does before it starts) and prints the effective
configuration, secrets masked; exit 0, or the one-line errors and exit 2.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any, TextIO

import click
from pydantic import SecretStr

from worker.commandline import Command, arguments, help_text
from worker.settings import ENV_PREFIX, Settings, SettingsError, load_settings

__all__ = [
    "MASK",
    "check_config",
    "command",
    "effective_configuration",
    "probe_url",
    "run",
    "run_check",
]

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
) -> int:
    """GET /readyz (or /healthz with ``live``); print one line; 0 when it answers 200, else 1.

    The standard library's HTTP client, not httpx: an exec probe runs every few seconds, and importing
    httpx (which loads click and rich for its own CLI when they are installed) costs more CPU than the
    probe itself. No proxy: the probe server is local."""
    import http.client
    import json
    from urllib.parse import urlsplit

    out = out or sys.stdout
    what = "live" if live else "ready"
    url = probe_url(settings, live, port)
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout_s)
    try:
        connection.request("GET", parts.path, headers={"Accept": "application/json"})
        response = connection.getresponse()
        status, raw = response.status, response.read()
    except TimeoutError:
        print(f"not {what}: {url} did not answer within {timeout_s:g} s", file=out)
        return 1
    except (OSError, http.client.HTTPException) as exc:
        print(f"not {what}: cannot reach {url} ({type(exc).__name__}: is the worker running?)", file=out)
        return 1
    finally:
        connection.close()
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = None
    if status == 200:
        print(f"{what}{_summary(body)}", file=out)
        return 0
    print(f"not {what} (HTTP {status}): {_reason(body)}", file=out)
    return 1


MASK = "********"


def effective_configuration(settings: Settings) -> list[str]:
    """``ECASH_X=value`` for every setting, in the documented order; secrets as ``MASK`` (or unset)."""
    lines = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            text = ""
        elif isinstance(value, SecretStr):
            text = MASK
        elif isinstance(value, list):
            text = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            text = str(value).lower()
        else:
            text = str(value)
        lines.append(f"{ENV_PREFIX}{name.upper()}={text}")
    return lines


def check_config(out: TextIO | None = None, err: TextIO | None = None) -> int:
    from worker.preflight import preflight

    try:
        settings = load_settings()
        preflight(settings, bind_ports=False)  # the running worker may hold ECASH_METRICS_PORT
    except SettingsError as exc:
        for line in exc.lines:
            print(f"ecash-worker: {line}", file=err or sys.stderr)
        return 2
    print("\n".join(effective_configuration(settings)), file=out or sys.stdout)
    return 0


@click.command(
    "check",
    cls=Command,
    short_help="exit 0 if the running worker is ready (or live, with --live), else 1, with a one-line reason",
    help=help_text(__doc__),
)
@click.option("--live", is_flag=True, help="ask /healthz (liveness) instead of /readyz")
@click.option("--timeout-s", type=float, default=3.0, help="how long to wait for an answer")
@click.option("--port", type=int, default=None, help="probe port (default: ECASH_METRICS_PORT)")
@click.option(
    "--config",
    is_flag=True,
    help="ask no worker: validate the ECASH_* settings and print them, secrets masked (exit 0 or 2)",
)
@click.pass_context
def command(ctx: click.Context, /, **_: Any) -> int:
    return run(arguments(ctx))


def run(args: SimpleNamespace) -> int:
    if getattr(args, "config", False):
        return check_config()
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"not checked: {exc}", file=sys.stdout)
        return 1
    return run_check(settings, live=args.live, timeout_s=args.timeout_s, port=args.port)
