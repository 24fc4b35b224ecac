"""The dashboard picture (bench/dashboard_snapshot): its PromQL, its panels and its run plan. No matplotlib.

The numbers drawn in docs/dashboard.png come from these functions: a wrong rate or quantile would put a
wrong picture in front of the SRE, and a panel that drifted from the dashboard JSON would show something
Grafana does not.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from prometheus_client import generate_latest

from bench.dashboard_snapshot.draw import _segments, legend_layout, shown_lines
from bench.dashboard_snapshot.panels import (
    STATS,
    Line,
    PanelSpec,
    Query,
    clock_label,
    dashboard_panels,
    evaluate,
    every_panel,
    format_value,
    legend_text,
    mapped,
    tick_text,
)
from bench.dashboard_snapshot.promql import (
    Evaluator,
    Scrape,
    Series,
    extrapolated_rate,
    histogram_quantile,
    parse_exposition,
    read_samples,
    until_last_up,
    write_samples,
)
from bench.dashboard_snapshot.run import (
    UNRESOLVED_TRACES,
    RunOptions,
    fault_rules,
    plan_messages,
    poor_msisdn,
    total_of,
    worker_values,
)
from worker.observability.events import ApiCallFinished, PipelineSnapshot, ResultPublished
from worker.observability.metrics import Metrics
from worker.settings import load_settings

from .promql import metric_names

TARGET = {"instance": "127.0.0.1:9464", "job": "ecash-worker"}


def counter(values: list[float], start_s: float = 0.0) -> Series:
    return Series([start_s + i for i in range(len(values))], values)


# --- rate and increase, as Prometheus computes them ------------------------------------------------------


def test_rate_of_a_steady_counter_is_its_slope() -> None:
    series = counter([10.0 * i for i in range(10)])
    assert extrapolated_rate(series, 9.0, 4.0) == pytest.approx(10.0)
    assert extrapolated_rate(series, 9.0, 4.0, per_second=False) == pytest.approx(40.0)


def test_a_counter_reset_does_not_make_the_rate_negative() -> None:
    # 0, 10, 20, then the process restarted and counted 5 more: 25 counted, none before the first 0.
    series = counter([0.0, 10.0, 20.0, 5.0])
    assert extrapolated_rate(series, 3.0, 4.0, per_second=False) == pytest.approx(25.0)


def test_a_counter_is_not_extrapolated_below_zero_at_its_start() -> None:
    # Exported at zero from the start, then 10 in a second: the increase is 10, not an invented 15.
    series = counter([0.0, 10.0], start_s=10.0)
    assert extrapolated_rate(series, 11.0, 4.0, per_second=False) == pytest.approx(10.0)


def test_rate_needs_two_samples_in_the_window() -> None:
    series = counter([1.0, 2.0, 3.0])
    assert extrapolated_rate(series, 2.0, 0.5) is None
    assert extrapolated_rate(series, 10.0, 4.0) is None


# --- histogram_quantile ---------------------------------------------------------------------------------


BUCKETS = [(0.1, 50.0), (0.5, 90.0), (1.0, 100.0), (math.inf, 100.0)]


@pytest.mark.parametrize(("q", "expected"), [(0.5, 0.1), (0.9, 0.5), (0.95, 0.75), (0.25, 0.05)])
def test_quantile_interpolates_inside_its_bucket(q: float, expected: float) -> None:
    assert histogram_quantile(q, BUCKETS) == pytest.approx(expected)


def test_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    assert histogram_quantile(0.99, [(0.1, 0.0), (1.0, 0.0), (math.inf, 10.0)]) == 1.0


def test_quantile_without_observations_or_without_inf_is_no_data() -> None:
    assert histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None
    assert histogram_quantile(0.5, [(0.1, 3.0), (1.0, 5.0)]) is None


# --- from the worker's real /metrics page to the panels -----------------------------------------------


def worker_pages(snapshot: PipelineSnapshot, seconds: int) -> list[Scrape]:
    """One scrape a second of a real ``Metrics`` registry: 5 succeeded and 1 declined result a second."""
    metrics = Metrics()
    metrics.set_snapshot_source(lambda: snapshot)
    scrapes = []
    for second in range(seconds):
        for outcome in ["succeeded"] * 5 + ["declined"]:
            metrics.hook(ResultPublished("T", "0813", "charge", outcome, "response", "PROCESSED", 1, 0.3))
            metrics.hook(ApiCallFinished(operation="charge", code="PROCESSED", duration_s=0.04))
        page = generate_latest(metrics.registry).decode()
        scrapes.append(Scrape(float(second), 1_767_225_600.0 + second, True, parse_exposition(page)))
    return scrapes


def test_parsing_keeps_the_worker_and_process_series_only() -> None:
    scrape = worker_pages(PipelineSnapshot(), 1)[0]
    names = {name for name, _ in scrape.values}
    assert "ecash_results_total" in names
    assert "ecash_api_call_duration_seconds_bucket" in names
    assert "process_cpu_seconds_total" in names or "process_resident_memory_bytes" in names
    assert not any(name.startswith("python_") for name in names)
    succeeded = [v for (n, labels), v in scrape.values.items() if ("outcome", "succeeded") in labels]
    assert succeeded
    assert sum(succeeded) >= 5


def test_results_by_outcome_is_the_rate_per_outcome() -> None:
    ev = Evaluator(worker_pages(PipelineSnapshot(), 8), 4.0, TARGET)
    panel = next(spec for spec in every_panel() if spec.title == "Results by outcome")
    lines = {line.name: line.values for line in evaluate(panel, ev)}
    assert lines["succeeded"][-1] == pytest.approx(5.0)
    assert lines["declined"][-1] == pytest.approx(1.0)
    assert lines["failed"][-1] == 0.0  # exported at zero from the start: a flat line, not "no data"
    assert lines["succeeded"][0] is None  # one sample is not a rate


def test_api_latency_quantiles_fall_in_the_observed_bucket() -> None:
    ev = Evaluator(worker_pages(PipelineSnapshot(), 6), 4.0, TARGET)
    panel = next(spec for spec in every_panel() if spec.title == "API latency: charge and credit")
    lines = {line.name: line.values for line in evaluate(panel, ev)}
    # every call took 40 ms: each quantile is inside the bucket that holds 40 ms
    bounds = sorted(
        float(dict(labels)["le"]) for (n, labels) in ev.scrapes[0].values if n.endswith("_bucket")
    )
    upper = min(b for b in bounds if b >= 0.04)
    lower = max(b for b in bounds if b < 0.04)
    for name in ("p50 charge", "p95 charge", "p99 charge"):
        assert lower < (lines[name][-1] or 0.0) <= upper
    assert all(value is None for value in lines["p50 credit"])  # no credit calls: no data, not zero


def test_the_breaker_reads_two_when_open_and_gauges_follow_the_snapshot() -> None:
    snapshot = PipelineSnapshot(in_flight=7, waiting=3, breaker_state="open", lag_messages={0: 12, 3: 4})
    ev = Evaluator(worker_pages(snapshot, 2), 4.0, TARGET)
    assert ev.breaker() == [2.0, 2.0]
    assert ev.gauge("ecash_consumer_lag_messages")[()] == [16.0, 16.0]
    by_partition = ev.gauge("ecash_consumer_lag_messages", ("partition",))
    assert by_partition[(("partition", "0"),)] == [12.0, 12.0]
    stat = next(spec for spec in STATS if spec.title == "Breaker")
    assert mapped(dashboard_panels()["Breaker"], evaluate(stat, ev)[0].values[-1]) == ("open", "red")


def test_unresolved_stat_counts_every_unresolved_result_of_the_run() -> None:
    metrics = Metrics()
    scrapes = []
    for second in range(30):
        if second in (10, 20):
            metrics.hook(ResultPublished("U", None, "charge", "unresolved", "status_inquiry", None, 1, 31.0))
        page = generate_latest(metrics.registry).decode()
        scrapes.append(Scrape(float(second), 1_767_225_600.0 + second, True, parse_exposition(page)))
    ev = Evaluator(scrapes, 4.0, TARGET)
    stat = next(spec for spec in STATS if spec.title == "Unresolved (24 h)")
    assert evaluate(stat, ev)[0].values[-1] == pytest.approx(2.0)


def test_the_picture_ends_with_the_last_scrape_that_answered() -> None:
    up = worker_pages(PipelineSnapshot(), 3)
    down = Scrape(3.0, 1_767_225_603.0, False, {})
    assert until_last_up([*up, down, down]) == up
    assert until_last_up([down]) == []


def test_samples_survive_the_jsonl_round_trip(tmp_path: Path) -> None:
    scrapes = worker_pages(PipelineSnapshot(), 2)
    write_samples(tmp_path / "s.jsonl", {"options": {"scrape_interval_s": 1.0}}, scrapes)
    meta, back = read_samples(tmp_path / "s.jsonl")
    assert meta == {"options": {"scrape_interval_s": 1.0}}
    assert [dict(s.values) for s in back] == [dict(s.values) for s in scrapes]


def test_the_line_scan_sums_exactly_the_named_samples() -> None:
    metrics = Metrics()
    metrics.set_snapshot_source(lambda: PipelineSnapshot(consuming=True))
    for outcome in ["succeeded"] * 5 + ["declined"]:
        metrics.hook(ResultPublished("T", "0813", "charge", outcome, "response", "PROCESSED", 1, 0.3))
    page = generate_latest(metrics.registry).decode()
    assert total_of(page, "ecash_results_total") == 6.0  # not ecash_results_total's neighbours
    assert total_of(page, "ecash_consuming") == 1.0


# --- the panels drawn are the dashboard's -----------------------------------------------------------------


def panel_exprs(title: str) -> list[str]:
    return [target["expr"] for target in dashboard_panels()[title]["targets"]]


@pytest.mark.parametrize("spec", every_panel(), ids=lambda spec: spec.title)
def test_each_drawn_panel_queries_what_the_dashboard_panel_queries(spec: PanelSpec) -> None:
    panels = dashboard_panels()
    assert spec.title in panels, f"no panel {spec.title!r} in the dashboard"
    exprs = panel_exprs(spec.title)
    dashboard_names = set().union(*(metric_names(e) for e in exprs))
    ours = set().union(*(q.metric_names() for q in spec.queries))
    assert ours == dashboard_names
    for query in spec.queries:
        for label in query.by:
            assert any(re.search(rf"by \([^)]*\b{label}\b", e) for e in exprs), f"by {label}"
        for label, pattern in query.where:
            assert any(f'{label}="{pattern}"' in e or f'{label}=~"{pattern}"' in e for e in exprs)
        if query.kind == "quantile":
            assert any(f"histogram_quantile({query.q}," in e for e in exprs)


@pytest.mark.parametrize("spec", every_panel(), ids=lambda spec: spec.title)
def test_each_drawn_panel_names_its_lines_with_the_dashboards_legends(spec: PanelSpec) -> None:
    legends = [target.get("legendFormat", "") for target in dashboard_panels()[spec.title]["targets"]]
    ours = [query.legend for query in spec.queries]
    assert ours == legends


def test_legend_formats_fill_in_label_values() -> None:
    assert legend_text("p95 {{operation}}", {"operation": "charge"}) == "p95 charge"
    assert legend_text("{{kind}} {{ result }}", {"kind": "relogin", "result": "ok"}) == "relogin ok"


def test_stats_take_colour_and_text_from_thresholds_and_mappings() -> None:
    panels = dashboard_panels()
    assert mapped(panels["Unresolved (24 h)"], 2.0) == (None, "red")
    assert mapped(panels["Unresolved (24 h)"], 0.0) == (None, "green")
    assert mapped(panels["Breaker"], 0.0) == ("closed", "green")
    assert mapped(panels["Fatal configuration"], 0.0) == ("none", "green")
    assert mapped(panels["Workers up"], None) == ("No data", "text")


# --- units, as Grafana writes them -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "value", "text"),
    [
        ("s", 0.0352, "35.2 ms"),
        ("s", 1.5, "1.50 s"),
        ("s", 90.0, "1.50 min"),
        ("reqps", 198.6, "199 req/s"),
        ("reqps", 0.75, "0.750 req/s"),
        ("bytes", 94_371_840.0, "90.0 MiB"),
        ("short", 4020.0, "4.02 K"),
        ("short", 7.0, "7.00"),
        ("percentunit", 0.031, "3.10%"),
    ],
)
def test_values_are_written_in_grafanas_units(unit: str, value: float, text: str) -> None:
    assert format_value(unit, value) == text


def test_axis_labels_have_the_decimals_their_step_needs() -> None:
    assert tick_text(0.0, 0.25, " s") == "0"
    assert tick_text(0.75, 0.25, " s") == "0.75 s"
    assert tick_text(1.5, 0.5, " min") == "1.5 min"
    assert tick_text(200.0, 50.0, " req/s") == "200 req/s"
    assert clock_label(75.4) == "1:15"


def test_zero_series_are_left_out_unless_all_are_zero() -> None:
    moving = Line("succeeded", [0.0, 3.0, None])
    flat = Line("resubmit", [0.0, 0.0, None])
    assert shown_lines([moving, flat]) == [moving]
    assert shown_lines([flat]) == [flat]


def test_legend_entries_wrap_at_the_panel_width() -> None:
    places = legend_layout(["aaaa", "bbbb", "cccc"], 150.0, lambda text: 10.0 * len(text))
    assert places == [(0.0, 0), (68.0, 0), (0.0, 1)]


def test_state_timeline_merges_runs_of_one_state() -> None:
    runs = _segments([0.0, 1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 2.0, 2.0, 0.0])
    assert runs == [(0.0, 2.0, 0.0), (2.0, 4.0, 2.0), (4.0, 4.0, 0.0)]


# --- the run: what is sent and how the stack is configured ------------------------------------------------


def test_the_plan_sends_the_steady_stream_and_the_few_special_messages() -> None:
    options = RunOptions(rate_per_s=100.0, duration_s=20.0, msisdns=50)
    planned = plan_messages(options)
    assert [p.at_s for p in planned] == sorted(p.at_s for p in planned)
    bodies = [orjson.loads(p.value) for p in planned if p.answered]
    assert len(planned) == 2000 + 3 + 2 + 2
    assert sum(1 for p in planned if not p.answered) == 3  # not JSON: dead letters, nobody to answer
    assert sum(1 for b in bodies if Decimal(b["amount"]) < 0) == 2  # rejected
    poor = {poor_msisdn(i) for i in range(1, 21)}
    declined = [b for b in bodies if b["msisdn"] in poor]
    assert declined
    assert all(b["type"] == "charge" for b in declined)
    assert 0.01 < len(declined) / 2000 < 0.03
    unresolved = [b for b in bodies if b["trace_number"] in UNRESOLVED_TRACES]
    others = Counter(b["msisdn"] for b in bodies if b["trace_number"] not in UNRESOLVED_TRACES)
    assert len(unresolved) == 2
    assert not any(others[b["msisdn"]] for b in unresolved)
    assert len({b["trace_number"] for b in bodies}) == len(bodies)


def test_the_scripted_faults_come_first_and_name_the_unresolved_trace_numbers() -> None:
    rules = fault_rules()
    assert all("|".join(UNRESOLVED_TRACES) in rule for rule in rules[:2])
    assert rules[1].startswith("status:")
    assert not any("trace=" in rule for rule in rules[2:])


def test_the_worker_settings_are_valid_and_end_resolutions_within_the_run(tmp_path: Path) -> None:
    values = worker_values("127.0.0.1:9092", "http://127.0.0.1:1/eCashHost", "dash", tmp_path, 9464)
    settings = load_settings(**values)
    options = RunOptions()
    assert settings.resolution_deadline_s < options.duration_s - options.outage_at_s
    assert settings.breaker_window_s < options.outage_s
    assert settings.metrics_host == "127.0.0.1"
    assert Query("up").metric_names() == {"up"}
