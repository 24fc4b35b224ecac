"""Write deploy/k8s/base/prometheusrule.yaml from deploy/prometheus/alerts.yml (the one source of the rules).

    python deploy/k8s/render_prometheus_rule.py          # rewrite the file
    python deploy/k8s/render_prometheus_rule.py --check  # exit 1 if it is stale (a unit test does this too)

Kustomize cannot read files outside its directory, so the rules are copied, not referenced.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[1]
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
TARGET = DEPLOY / "k8s" / "base" / "prometheusrule.yaml"
HEADER = (
    "# GENERATED from deploy/prometheus/alerts.yml by deploy/k8s/render_prometheus_rule.py: do not edit.\n"
    '# The rules select job="ecash-worker": the ServiceMonitor sets that job label (jobLabel).\n'
)


def render(alerts_text: str) -> str:
    groups = yaml.safe_load(alerts_text)["groups"]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "ecash-worker",
            "labels": {"app.kubernetes.io/name": "ecash-worker", "app.kubernetes.io/component": "alerts"},
        },
        "spec": {"groups": groups},
    }
    return HEADER + yaml.safe_dump(rule, sort_keys=False, width=110, allow_unicode=True)


def main(argv: list[str]) -> int:
    rendered = render(ALERTS.read_text(encoding="utf-8"))
    if "--check" in argv:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != rendered:
            print(f"{TARGET} is stale: run python deploy/k8s/render_prometheus_rule.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(rendered, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
