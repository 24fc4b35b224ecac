"""The alert rules: valid, unit-tested by promtool, and each one tells the on-call where to start."""

from __future__ import annotations

import re
from pathlib import Path

from .promql import (
    ALERTS,
    ALERTS_TEST,
    PROMETHEUS_CONFIG,
    RUNBOOK,
    RUNBOOK_BASE_PLACEHOLDER,
    alert_rules,
    load_yaml,
    promtool,
)

REQUIRED_ALERTS = {
    "EcashUnresolvedTransactions",
    "EcashConsumerLagGrowing",
    "EcashNoResultsWhileCommandsArrive",
    "EcashApiErrorRatioHigh",
    "EcashBreakerOpen",
    "EcashLoginFailing",
    "EcashDeadLetterRate",
    "EcashWorkerDown",
    "EcashFatalConfiguration",
}


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(ALERTS_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_accepts_the_prometheus_config() -> None:
    result = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_would_catch_a_broken_rule(tmp_path: Path) -> None:
    broken = tmp_path / "alerts.yml"
    broken.write_text(ALERTS.read_text().replace("> 0.1", "> > 0.1", 1))
    assert promtool("check", "rules", str(broken)).returncode != 0


def test_the_required_alerts_exist_once_per_severity() -> None:
    keys = [(rule["alert"], rule["labels"]["severity"]) for rule in alert_rules()]
    assert len(keys) == len(set(keys))
    assert {name for name, _ in keys} >= REQUIRED_ALERTS


def test_every_alert_has_severity_summary_description_and_a_runbook_section() -> None:
    anchors = _runbook_anchors()
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), name
        assert annotations["description"].strip(), name
        url = annotations["runbook_url"]
        assert url == f"{RUNBOOK_BASE_PLACEHOLDER}#{name.lower()}", name  # the overlays replace the base
        assert name.lower() in anchors, f"docs/runbook.md has no section '## {name}'"


def test_money_and_outage_alerts_page() -> None:
    severities: dict[str, set[str]] = {}
    for rule in alert_rules():
        severities.setdefault(rule["alert"], set()).add(rule["labels"]["severity"])
    for name in ("EcashUnresolvedTransactions", "EcashWorkerDown", "EcashBreakerOpen", "EcashLoginFailing"):
        assert "critical" in severities[name], name


def test_every_aggregation_and_match_keeps_namespace_and_job() -> None:
    """Dev and prod sharing a Prometheus page separately, and the alert says which namespace."""
    for rule in alert_rules():
        groupings = re.findall(r"\b(by|on)\s*\(([^)]*)\)", rule["expr"])
        for keyword, labels in groupings:
            names = {label.strip() for label in labels.split(",")}
            assert {"namespace", "job"} <= names, f"{rule['alert']}: {keyword} ({labels})"
        assert "without" not in rule["expr"], rule["alert"]
        assert "ignoring" not in rule["expr"], rule["alert"]
        if re.search(r"\b(sum|max|min|avg|count)\b", rule["expr"]):
            assert groupings, f"{rule['alert']}: an aggregation without by (namespace, job)"
        assert "{{ with $labels.namespace }}" in rule["annotations"]["summary"], rule["alert"]


def test_unresolved_transactions_fire_on_the_open_items_not_on_a_window_of_results() -> None:
    rules = [rule for rule in alert_rules() if rule["alert"] == "EcashUnresolvedTransactions"]
    assert {rule["labels"]["severity"] for rule in rules} == {"warning", "critical"}
    for rule in rules:
        assert "ecash_review_open" in rule["expr"]
        assert "ecash_results_total" not in rule["expr"]
        assert "for" not in rule  # from the first scrape that shows an open item


def test_every_severity_of_every_alert_is_tested_firing() -> None:
    fired: set[tuple[str, str]] = set()
    for case in load_yaml(ALERTS_TEST)["tests"]:
        for check in case["alert_rule_test"]:
            for alert in check.get("exp_alerts") or []:
                fired.add((check["alertname"], alert["exp_labels"]["severity"]))
    assert {(rule["alert"], rule["labels"]["severity"]) for rule in alert_rules()} - fired == set()


def test_every_alert_is_tested_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in load_yaml(ALERTS_TEST)["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested quiet"


def _runbook_anchors() -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", RUNBOOK.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-") for h in headings}
