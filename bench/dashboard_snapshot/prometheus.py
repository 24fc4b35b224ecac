"""A real Prometheus server on this machine: scrapes one worker, evaluates the alert rules, answers queries.

Debian's ``prometheus`` package brings the server (``scripts/ensure-test-tools.sh`` installs it, or
unpacks it without root into ``~/.cache/ecash-worker/prometheus``). The server runs on a free loopback
port with its data in a work directory; ``query`` and ``query_range`` are its HTTP API. The dashboard's
expressions are sent as Grafana would send them, with its variables replaced (``grafana_to_promql``).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from ecash_dev.stack import free_port

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
JOB = "ecash-worker"  # the job name of deploy/prometheus/prometheus.yml; the alert rules select on it
CACHED = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ecash-worker" / "prometheus"
RATE_INTERVAL_SCRAPES = 4  # Grafana: $__rate_interval = max($__interval + scrape, 4 x scrape interval)


def prometheus_binary() -> str | None:
    """``prometheus`` on PATH, else the one unpacked by scripts/ensure-test-tools.sh; None if neither."""
    found = shutil.which("prometheus")
    if found is not None:
        return found
    cached = CACHED / "usr" / "bin" / "prometheus"
    return str(cached) if cached.is_file() and os.access(cached, os.X_OK) else None


def grafana_to_promql(expr: str, rate_interval_s: float, job: str = JOB) -> str:
    """A dashboard expression as Grafana sends it: every worker of ``job``, any namespace."""
    replacements = (
        ("$__rate_interval", f"{rate_interval_s:g}s"),
        ("$__interval", f"{rate_interval_s / RATE_INTERVAL_SCRAPES:g}s"),
        ("$namespace", ".*"),
        ("$instance", ".*"),
        ("$job", job),
    )
    for variable, value in replacements:
        expr = expr.replace(variable, value)
    return expr


class PrometheusError(RuntimeError):
    """The server refused a query (a parse or evaluation error) or did not start."""


Point = tuple[float, float]  # (unix time, value); NaN where Prometheus answered NaN


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[Point]

    def finite(self) -> list[Point]:
        return [(t, v) for t, v in self.points if math.isfinite(v)]


def _value(text: str) -> float:
    return float(text)  # Prometheus writes "NaN", "+Inf", "-Inf", which float() reads


def _series(result_type: str, result: Any) -> list[Series]:
    if result_type == "matrix":
        return [Series(dict(r["metric"]), [(float(t), _value(v)) for t, v in r["values"]]) for r in result]
    if result_type == "vector":
        return [Series(dict(r["metric"]), [(float(r["value"][0]), _value(r["value"][1]))]) for r in result]
    if result_type == "scalar":
        t, v = result
        return [Series({}, [(float(t), _value(v))])]
    raise PrometheusError(f"unexpected result type {result_type}")


class PrometheusServer:
    """``prometheus`` scraping ``targets`` as job ``ecash-worker`` every ``scrape_interval_s``.

    With ``rule_files``, the rules are evaluated at the scrape interval; ``rules()`` tells their health.
    Use as a context manager, or ``start``/``stop``; the process is killed on any failure to start.
    """

    def __init__(
        self,
        workdir: Path,
        targets: Sequence[str],
        *,
        scrape_interval_s: float = 1.0,
        rule_files: Sequence[Path] = (),
        binary: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.workdir = workdir
        self.targets = list(targets)
        self.scrape_interval_s = scrape_interval_s
        self.rule_files = list(rule_files)
        self.binary = binary or prometheus_binary()
        self.host = host
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(timeout=30.0, trust_env=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def rate_interval_s(self) -> float:
        return RATE_INTERVAL_SCRAPES * self.scrape_interval_s

    def config(self) -> dict[str, Any]:
        interval = f"{self.scrape_interval_s:g}s"
        return {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(path) for path in self.rule_files],
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "metrics_path": "/metrics",
                    "scrape_timeout": interval,
                    "static_configs": [{"targets": self.targets}],
                }
            ],
        }

    def start(self, timeout_s: float = 30.0) -> None:
        if self.binary is None:
            raise PrometheusError(
                "prometheus is not installed: run scripts/ensure-test-tools.sh (Debian's prometheus package)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        self.port = free_port(self.host)
        log = (self.workdir / "prometheus.log").open("ab")
        self._process = subprocess.Popen(  # noqa: S603 - our own argv, no shell
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address={self.host}:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PrometheusError(f"prometheus exited ({self._process.returncode}): {self.log_tail()}")
            try:
                if self._http.get(f"{self.url}/-/ready").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise PrometheusError(f"prometheus not ready in {timeout_s:g} s: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        path = self.workdir / "prometheus.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        self._process = None
        self._http.close()

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- the HTTP API -------------------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        response = self._http.get(f"{self.url}{path}", params=params)
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusError(f"{body.get('errorType')}: {body.get('error')} ({params.get('query', '')})")
        return body["data"]

    def query(self, expr: str, at_unix_s: float | None = None) -> list[Series]:
        """An instant query (now unless ``at_unix_s``); raises PrometheusError when Prometheus refuses it."""
        params = {"query": expr}
        if at_unix_s is not None:
            params["time"] = f"{at_unix_s:.3f}"
        data = self._get("/api/v1/query", params)
        return _series(data["resultType"], data["result"])

    def query_range(self, expr: str, start_unix_s: float, end_unix_s: float, step_s: float) -> list[Series]:
        params = {
            "query": expr,
            "start": f"{start_unix_s:.3f}",
            "end": f"{end_unix_s:.3f}",
            "step": f"{step_s:g}",
        }
        data = self._get("/api/v1/query_range", params)
        return _series(data["resultType"], data["result"])

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule with its health (``ok``, ``err``, ``unknown``) and last error."""
        data = self._get("/api/v1/rules", {})
        return [rule for group in data["groups"] for rule in group["rules"]]

    def wait_first_scrape(self, timeout_s: float = 30.0) -> None:
        """Wait until the target has been scraped once, answering or not (``up`` exists).

        Prometheus reads its targets some seconds after it starts (its scrape manager applies discovered
        targets every 5 s): start what it scrapes after this, and its first moments are in the data.
        """
        deadline = time.monotonic() + timeout_s
        while not self.query(f'up{{job="{JOB}"}}'):
            if time.monotonic() > deadline:
                raise PrometheusError(f"no scrape of {self.targets} in {timeout_s:g} s: {self.log_tail()}")
            time.sleep(0.1)
