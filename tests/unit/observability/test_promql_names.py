"""The metric-name extractor the dashboard and alert checks rely on: it must find names, and only names."""

from __future__ import annotations

import pytest

from .promql import metric_names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up == 0", {"up"}),
        (
            'sum by (job) (increase(ecash_results_total{outcome="unresolved"}[30m])) > 0',
            {"ecash_results_total"},
        ),
        (
            "histogram_quantile(0.99, sum by (le, operation) "
            "(rate(ecash_api_call_duration_seconds_bucket[5m])))",
            {"ecash_api_call_duration_seconds_bucket"},
        ),
        (
            'sum(rate(a_total{code=~"x|y"}[5m])) / sum(rate(b_total[5m])) > 0.1 and on (job) c > 1e3',
            {"a_total", "b_total", "c"},
        ),
        (
            "time() - max(ecash_last_processed_timestamp_seconds > 0) offset 5m",
            {"ecash_last_processed_timestamp_seconds"},
        ),
        ('2 * x{state="open"} + ignoring(state) y{state="half_open"}', {"x", "y"}),
        ("sum(rate(m_total[$__rate_interval])) without (instance)", {"m_total"}),
        ('absent(up{job="ecash-worker"})', {"up"}),
    ],
)
def test_metric_names_finds_selected_metrics_only(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
