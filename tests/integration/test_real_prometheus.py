"""A real Prometheus scrapes a short real run and answers every dashboard, alert and KEDA expression.

The run: real Kafka, the sandbox, one worker; Prometheus (Debian's package) scrapes it every second and
evaluates deploy/prometheus/alerts.yml. Commands of every kind flow (succeeded, declined, one ambiguous
that Status Inquiry resolves, a dead letter, a rejected one); a second worker joins the group and leaves
(partitions move away and back, their journals are restored); then the API fails until the breaker opens,
then it comes back and everything is answered.

- Every dashboard panel's expression, as Grafana sends it, returns data over the run, with at least one
  number (a quantile with no observation in any window is NaN throughout: that is no data).
- Every alert expression is evaluated without error, both by the rule manager (health ``ok``) and as a
  query at two moments (breaker open, and the end); each vector selector it reads returns data (an alert
  on a metric nobody exports would never fire). The alerts this run must trigger return data; those that
  must stay quiet in it do not, each with the reason written down; two depend on the outage's timing.
- The KEDA ScaledObject's Prometheus queries (deploy/k8s/base) answer: breaker_open is 1 while the breaker
  holds commands and 0 after; the formula then holds the worker count, and follows lag again after.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bench.dashboard_snapshot.prometheus import (
    ALERTS,
    PrometheusServer,
    Series,
    grafana_to_promql,
)
from ecash_dev.kafka import free_ports
from ecash_dev.sandbox.server import RunningSandbox, serve_sandbox
from ecash_dev.sandbox.state import SandboxConfig, WalletSpec
from tests.integration.harness import (
    command,
    create_topics,
    eventually,
    fast_settings,
    produce,
    running_worker,
    wait_results,
)
from tests.unit.deploy.keda import desired_replicas
from tests.unit.observability.promql import alert_rules, dashboard, metric_names
from worker.service import Worker

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
SCALED_OBJECT = REPO / "deploy" / "k8s" / "base" / "scaledobject.yaml"
RICH, POOR = "0817000000001", "0817000000002"
AMBIGUOUS = "PAMB1"  # its charge goes through but the answer is a 500: Status Inquiry resolves it

# Alerts this run triggers (the test sends what they watch for).
FIRES = {
    "EcashDeadLetterRate": "a message that is not JSON was sent",
    "EcashCommandsRejected": "a command with a negative amount was sent",
    "EcashBreakerOpen": "the API failed until the breaker opened (queried while open; `for` is the rule's)",
}
# Alerts that are empty in this run, and why: each watches for something a healthy run does not do.
QUIET = {
    "EcashWorkerDown": "the worker is scraped the whole time (up == 1, and the target exists)",
    "EcashUnresolvedTransactions": "no command ends unresolved: ecash_review_open stays 0",
    "EcashFatalConfiguration": "the credentials are right: ecash_fatal_configuration is 0",
    "EcashNoResultsWhileCommandsArrive": "results are published throughout (their 10m rate is > 0)",
    "EcashConsumerLagGrowing": "the lag stays far below 100 messages",
    "EcashConsumerLagHigh": "no command waits 30 minutes",
    "EcashBreakerStuck": "the breaker changes state within seconds (no 15 minutes without a transition)",
    "EcashPartitionsFenced": "nothing fences the only worker: no partition is lost",
    "EcashNotConsuming": "the consumer runs the whole time (ecash_consuming is 1)",
}
# Alerts that the outage may or may not trigger, by its timing; each is evaluated and its inputs exist.
EITHER = {
    "EcashApiErrorRatioHigh": "the failed calls of the outage may or may not exceed 10% of the 5m window",
    "EcashLoginFailing": "a login may fail during the outage while the session is lost, or may not",
    "EcashBreakerFlapping": "the breaker reopens after failed probes: more than two opens depends on timing",
}


@pytest.fixture
async def sandbox() -> Any:
    config = SandboxConfig(
        wallets=[
            WalletSpec(msisdn=RICH, balance=Decimal("1000000")),
            WalletSpec(msisdn=POOR, balance=Decimal("1")),
        ],
        auto_create_wallets=True,
    )
    async with serve_sandbox(config) as running:
        yield running


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[PrometheusServer, int]]:
    (port,) = free_ports(1)
    with PrometheusServer(tmp_path / "prometheus", [f"127.0.0.1:{port}"], rule_files=[ALERTS]) as server:
        server.wait_first_scrape()
        yield server, port


async def set_faults(sandbox: RunningSandbox, rules: list[str]) -> None:
    async with httpx.AsyncClient(trust_env=False) as admin:
        (await admin.put(f"{sandbox.admin_url}/faults", json=rules)).raise_for_status()


async def until_answers(server: PrometheusServer, expr: str, timeout_s: float) -> float:
    """Wait until ``expr`` returns data; the unix time of that answer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await asyncio.to_thread(server.query, expr):
            return time.time()
        await asyncio.sleep(0.25)
    raise AssertionError(f"Prometheus never answered {expr} within {timeout_s:g} s")


def keda_queries() -> dict[str, str]:
    spec = yaml.safe_load(SCALED_OBJECT.read_text())["spec"]
    return {t["name"]: t["metadata"]["query"] for t in spec["triggers"] if t["type"] == "prometheus"}


def scalar(series: list[Series]) -> float:
    assert len(series) == 1, series
    return series[0].points[-1][1]


async def test_a_real_prometheus_answers_every_dashboard_alert_and_keda_expression(
    kafka_bootstrap: str, sandbox: RunningSandbox, prometheus: tuple[PrometheusServer, int], tmp_path: Path
) -> None:
    server, port = prometheus
    prefix = f"prom{uuid.uuid4().hex[:8]}"
    settings = fast_settings(
        kafka_bootstrap,
        sandbox.base_url,
        prefix,
        tmp_path,
        metrics_host="127.0.0.1",
        metrics_port=port,
        breaker_min_calls=5,
        breaker_open_s=1.0,
    )
    await create_topics(settings)
    await set_faults(sandbox, [f"charge:http_5xx_after_commit:trace={AMBIGUOUS}"])
    started_unix_s = time.time()
    worker = Worker(settings, serve_health=True)
    task = asyncio.create_task(worker.run())
    try:
        await eventually(lambda: worker.runner.snapshot().consuming, timeout_s=60)
        # One scrape of the counters at zero before anything happens: an increase needs a sample before
        # it (a dead letter before the first scrape would start its series at 1, and never alert).
        await until_answers(server, 'ecash_dead_letters_total{reason="not_json"} == 0', timeout_s=30)
        good = [
            command(f"PG{i}", RICH if i % 2 else f"08171{i:08d}", 100 + i, ("charge", "credit")[i % 2])
            for i in range(30)
        ]
        good += [command("PDEC", POOR, 5000), command(AMBIGUOUS, RICH, 700)]
        await produce(settings, [*good, b"not json", command("PNEG", RICH, -5)])
        await wait_results(settings, {c["trace_number"] for c in good} | {"PNEG"}, timeout_s=30)

        # A second worker joins and leaves: partitions move away and come back, and the scraped worker
        # restores their journals while Prometheus watches (its first restore may fall before the first
        # scrape that answered, and one sample is not a rate).
        partitions = settings.topic_partitions
        visitor = fast_settings(kafka_bootstrap, sandbox.base_url, prefix, tmp_path / "visitor")
        async with running_worker(visitor):
            await eventually(
                lambda: len(worker.runner.snapshot().assigned_partitions) < partitions, timeout_s=30
            )
        await eventually(
            lambda: len(worker.runner.snapshot().assigned_partitions) == partitions, timeout_s=30
        )
        await asyncio.sleep(2 * server.scrape_interval_s)

        await set_faults(sandbox, ["*:http_5xx_before_commit"])
        outage = [command(f"PO{i}", f"08172{i:08d}", 100, "credit") for i in range(20)]
        await produce(settings, outage)
        breaker = keda_queries()["breaker_open"]
        at_outage = await until_answers(server, f"({breaker}) == 1", timeout_s=30)
        await set_faults(sandbox, [])
        await wait_results(settings, {c["trace_number"] for c in outage}, timeout_s=40)
        await asyncio.sleep(3 * server.scrape_interval_s)  # the last results scraped and in every window
        at_end = time.time()

        # --- KEDA: hold the count while the breaker is open, follow lag after ---------------------------
        keda = keda_queries()
        spec = yaml.safe_load(SCALED_OBJECT.read_text())["spec"]
        during = {name: scalar(server.query(q, at_outage)) for name, q in keda.items()}
        after = {name: scalar(server.query(q, at_end)) for name, q in keda.items()}
        assert during == {"breaker_open": 1.0, "workers": 1.0}
        assert after == {"breaker_open": 0.0, "workers": 1.0}
        assert desired_replicas(spec, {**during, "lag": 100_000}) == max(1, spec["minReplicaCount"])
        assert desired_replicas(spec, {**after, "lag": 6_000}) > spec["minReplicaCount"]

        # --- every dashboard expression returns data over the run --------------------------------------
        panels = [
            (p["title"], t) for p in dashboard()["panels"] for t in p.get("targets", []) if t.get("expr")
        ]
        no_data = []
        for title, target in panels:
            expr = grafana_to_promql(target["expr"], server.rate_interval_s)
            series = server.query_range(expr, started_unix_s, at_end, server.scrape_interval_s)
            if not any(s.finite() for s in series):
                no_data.append(f"{title} [{target.get('legendFormat', '')}]: {expr}")
        assert not no_data, "panels without data:\n" + "\n".join(no_data)

        # --- every alert expression: evaluated by the rule manager and as a query; inputs exist --------
        rules = server.rules()
        assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()}
        assert [r for r in rules if r["health"] != "ok"] == [], "alert rules that failed to evaluate"
        answered: dict[str, bool] = {}
        missing_inputs = []
        for rule in alert_rules():
            answers = [server.query(rule["expr"], at) for at in (at_outage, at_end)]
            answered[rule["alert"]] = answered.get(rule["alert"], False) or any(answers)
            for name in metric_names(rule["expr"]):
                if not server.query(name, at_end):
                    missing_inputs.append(f"{rule['alert']}: {name}")
        assert not missing_inputs, f"alerts reading series nobody exports: {missing_inputs}"
        assert set(answered) == FIRES.keys() | QUIET.keys() | EITHER.keys()
        assert {a for a in FIRES if not answered[a]} == set(), "alerts this run should have triggered"
        assert {a for a in QUIET if answered[a]} == set(), "alerts that should be quiet in this run"
        print(
            f"\n{len(panels)} dashboard expressions, {len(alert_rules())} alert expressions "
            f"({sum(answered.values())} alerts returned data), {len(keda)} KEDA queries; "
            f"run {at_end - started_unix_s:.0f} s"
        )
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
