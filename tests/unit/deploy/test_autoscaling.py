"""KEDA does not fight a bank outage: while the breaker holds commands, the worker count holds whatever the
lag.

Checked on the ScaledObject as rendered (the base, and the prod overlay through kustomize): the triggers the
formula names, the Prometheus queries (valid PromQL for promtool, on the breaker's metric, in the overlay's
namespace), and the replica count the HPA would ask for in an outage and out of one. The same queries are
run against a real Prometheus and a real worker whose breaker opens in
tests/integration/test_real_prometheus.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.unit.observability.promql import promtool

from .keda import desired_replicas, formula_names
from .test_deploy_files import Doc, base_docs, one, render

BREAKER_METRIC = "ecash_breaker_state"


@pytest.fixture(scope="module", params=["base", "prod"])
def scaled(request: pytest.FixtureRequest) -> Doc:
    docs = base_docs() if request.param == "base" else render(request.param)
    return one(docs, "ScaledObject")


def triggers(scaled: Doc) -> dict[str, Doc]:
    named = {t["name"]: t for t in scaled["spec"]["triggers"]}
    assert len(named) == len(scaled["spec"]["triggers"]), "every trigger has a name of its own"
    return named


def test_the_formula_combines_lag_with_the_breaker_and_the_worker_count(scaled: Doc) -> None:
    spec = scaled["spec"]
    named = triggers(scaled)
    modifiers = spec["advanced"]["scalingModifiers"]
    assert formula_names(modifiers["formula"]) == set(named) == {"lag", "breaker_open", "workers"}
    assert named["lag"]["type"] == "kafka"
    assert named["breaker_open"]["type"] == named["workers"]["type"] == "prometheus"
    # One target for the formula and the lag: a worker per lagThreshold messages, as without the breaker.
    lag_threshold = named["lag"]["metadata"]["lagThreshold"]
    assert modifiers["target"] == lag_threshold
    assert re.search(rf"workers\s*\*\s*{lag_threshold}\b", modifiers["formula"])


@pytest.mark.parametrize("workers", [2, 5, 12])
def test_an_open_breaker_holds_the_worker_count_whatever_the_lag(scaled: Doc, workers: int) -> None:
    spec = scaled["spec"]
    for lag in (0.0, 499.0, 5_000.0, 1_000_000.0):
        wanted = desired_replicas(spec, {"breaker_open": 1.0, "workers": float(workers), "lag": lag})
        assert wanted == workers, f"breaker open, lag {lag}: {workers} workers -> {wanted}"


def test_a_closed_breaker_scales_on_lag_as_before(scaled: Doc) -> None:
    spec = scaled["spec"]
    threshold = float(triggers(scaled)["lag"]["metadata"]["lagThreshold"])

    def wanted(lag: float) -> int:
        return desired_replicas(spec, {"breaker_open": 0.0, "workers": 3.0, "lag": lag})

    assert wanted(0.0) == spec["minReplicaCount"]
    assert wanted(6 * threshold) == 6
    assert wanted(1e9) == spec["maxReplicaCount"]


def test_the_prometheus_queries_read_the_breaker_and_the_workers_of_this_deployment(scaled: Doc) -> None:
    named = triggers(scaled)
    breaker = named["breaker_open"]["metadata"]["query"]
    workers = named["workers"]["metadata"]["query"]
    assert re.search(rf'{BREAKER_METRIC}\{{[^}}]*state=~"open\|half_open"', breaker)
    namespace = scaled["metadata"].get("namespace")
    for query in (breaker, workers):
        assert 'job="ecash-worker"' in query
        # A Prometheus shared by dev and prod: each deployment reads its own namespace's workers.
        assert (f'namespace="{namespace}"' in query) if namespace else ("namespace=" not in query)
        # No data (no worker scraped yet) is 0, not an error that would stop the scaler.
        assert query.rstrip().endswith("or vector(0)")
        assert named["breaker_open"]["metadata"]["ignoreNullValues"] == "false"


def test_the_prometheus_queries_are_valid_promql(scaled: Doc, tmp_path: Path) -> None:
    rules = [
        {"record": f"keda:{name}", "expr": t["metadata"]["query"]}
        for name, t in triggers(scaled).items()
        if t["type"] == "prometheus"
    ]
    path = tmp_path / "keda_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "keda", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
