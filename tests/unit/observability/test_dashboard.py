"""Dashboards and alerts query metrics the worker really exports: a renamed metric breaks this test."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from worker.observability.metrics import Metrics

from .promql import (
    ALERTS_TEST,
    GRAFANA_DIR,
    METRICS_DOC,
    PROMETHEUS_OWN,
    alert_rules,
    dashboard,
    dashboard_exprs,
    grafana_to_promql,
    load_yaml,
    metric_names,
    promtool,
    series_name,
)
from .samples import EVERY_EVENT, busy_snapshot


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """Every sample name on /metrics once each event has happened and the snapshot has every gauge."""
    metrics = Metrics()
    metrics.set_snapshot_source(busy_snapshot)
    for event in EVERY_EVENT:
        metrics.hook(event)
    return {sample.name for family in metrics.registry.collect() for sample in family.samples}


def test_every_dashboard_query_uses_exported_metrics(exported: set[str]) -> None:
    for expr in dashboard_exprs():
        names = metric_names(expr)
        assert names, f"no metric found in {expr!r}"
        assert names <= exported | PROMETHEUS_OWN, f"{sorted(names - exported - PROMETHEUS_OWN)} in {expr!r}"


def test_every_alert_uses_exported_metrics(exported: set[str]) -> None:
    for rule in alert_rules():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= exported | PROMETHEUS_OWN, (
            f"{rule['alert']}: {sorted(names - exported - PROMETHEUS_OWN)}"
        )


def test_alert_unit_tests_feed_series_the_worker_exports(exported: set[str]) -> None:
    for case in load_yaml(ALERTS_TEST)["tests"]:
        for series in case["input_series"]:
            name = series_name(series["series"])
            assert name in exported | PROMETHEUS_OWN, f"{case['name']}: {name}"


def test_the_dashboard_covers_red_latency_backlog_breaker_and_process(exported: set[str]) -> None:
    used = set().union(*(metric_names(e) for e in dashboard_exprs()))
    for name in (
        "ecash_commands_consumed_total",
        "ecash_results_total",
        "ecash_api_calls_total",
        "ecash_api_call_duration_seconds_bucket",
        "ecash_end_to_end_duration_seconds_bucket",
        "ecash_consumer_lag_messages",
        "ecash_commands_in_flight",
        "ecash_commands_waiting",
        "ecash_resolutions_finished_total",
        "ecash_breaker_state",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ):
        assert name in used, name
    assert any("histogram_quantile(0.99" in e for e in dashboard_exprs())


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:query_{i}", "expr": grafana_to_promql(e)}
        for i, e in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_structure_grafana_needs() -> None:
    board = dashboard()
    assert board["uid"] == "ecash-worker"
    panels = board["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys(), panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert ref_ids, panel["title"]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    assert "ecash_build_info" in variables["instance"]["definition"]
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource", "job", "namespace", "instance"]


def test_job_and_namespace_variables_narrow_every_panel_query() -> None:
    """Dev and prod in one Prometheus: each panel shows one namespace's workers, never their sum."""
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["job"]["definition"] == "label_values(ecash_build_info, job)"
    assert variables["job"]["current"]["value"] == "ecash-worker"
    namespace = variables["namespace"]
    assert namespace["definition"] == 'label_values(ecash_build_info{job=~"$job"}, namespace)'
    assert namespace["allValue"] == ".*"  # also matches targets without a namespace (Docker Compose)
    assert variables["instance"]["definition"] == (
        'label_values(ecash_build_info{namespace=~"$namespace",job=~"$job"}, instance)'
    )
    for expr in dashboard_exprs():
        selectors = re.findall(r"\{([^}]*)\}", expr)
        assert selectors, expr
        for selector in selectors:
            assert selector.startswith('namespace=~"$namespace",job=~"$job",instance=~"$instance"'), expr
            assert selector.count("namespace=") == selector.count("job=") == 1, expr
        assert 'job="' not in expr, expr


def test_provisioning_points_grafana_at_prometheus_and_the_dashboard_folder() -> None:
    (source,) = yaml.safe_load((GRAFANA_DIR / "provisioning/datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    assert (source["type"], source["url"]) == ("prometheus", "http://prometheus:9090")
    (provider,) = yaml.safe_load((GRAFANA_DIR / "provisioning/dashboards/ecash-worker.yml").read_text())[
        "providers"
    ]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/var/lib/grafana/dashboards")


def test_every_worker_metric_is_documented_and_every_documented_metric_exists(exported: set[str]) -> None:
    families = {f.name for f in Metrics().registry.collect() if f.name.startswith("ecash_")}
    doc = METRICS_DOC.read_text()
    documented = set(re.findall(r"^\|\s*`(ecash_[a-z_]+)`", doc, flags=re.MULTILINE))
    exported_names = {_doc_name(name, exported) for name in families}
    assert exported_names - documented == set(), "exported but not in docs/metrics.md"
    assert documented - exported_names == set(), "in docs/metrics.md but not exported"


def _doc_name(family: str, samples: set[str]) -> str:
    """The name a user queries: counters with _total, info with _info, histograms and gauges as is."""
    for suffix in ("_total", "_info"):
        if family + suffix in samples:
            return family + suffix
    return family
