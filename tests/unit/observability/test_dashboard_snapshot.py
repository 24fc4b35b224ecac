"""The dashboard picture (bench/dashboard_snapshot): its panels, Prometheus' answers on the time axis, its
run plan. No matplotlib, no Prometheus (the real one is run in tests/integration/test_real_prometheus.py).

What is drawn is what Prometheus answers to the dashboard's own expressions: these tests hold the drawn
panels to the dashboard JSON, and the answers to the right instants, legends and label order.
"""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from bench.dashboard_snapshot.draw import _segments, legend_layout, shown_lines
from bench.dashboard_snapshot.panels import (
    BREAKER_PANEL,
    ROWS,
    STATS,
    TOTALS_QUERY,
    Grid,
    Line,
    clock_label,
    dashboard_panels,
    drawn_titles,
    format_value,
    legend_text,
    mapped,
    panel_lines,
    panel_queries,
    peak_queries,
    story,
    tick_text,
    totals,
)
from bench.dashboard_snapshot.prometheus import PrometheusServer, Series, grafana_to_promql
from bench.dashboard_snapshot.run import (
    UNRESOLVED_TRACES,
    Recording,
    RunOptions,
    fault_rules,
    plan_messages,
    poor_msisdn,
    worker_values,
)
from worker.settings import load_settings

from .promql import promtool

START = 1_767_225_600.0
GRID = Grid(START, 1.0, 5)
RATE_INTERVAL_S = 4.0


# --- the panels drawn are the dashboard's, asked as Grafana asks ------------------------------------------


def test_every_drawn_panel_is_a_dashboard_panel_with_queries() -> None:
    panels = dashboard_panels()
    assert len(set(drawn_titles())) == len(drawn_titles()) == len(STATS) + sum(len(t) for _, t in ROWS)
    for title in drawn_titles():
        assert title in panels, f"no panel {title!r} in the dashboard"
        assert panel_queries(panels[title], RATE_INTERVAL_S), title
    assert panels[BREAKER_PANEL]["type"] == "state-timeline"


def test_grafanas_variables_become_what_grafana_sends() -> None:
    expr = 'sum(rate(x{namespace=~"$namespace",job=~"$job",instance=~"$instance"}[$__rate_interval]))'
    assert (
        grafana_to_promql(expr, 4.0) == 'sum(rate(x{namespace=~".*",job=~"ecash-worker",instance=~".*"}[4s]))'
    )
    for title in drawn_titles():
        for expr, _ in panel_queries(dashboard_panels()[title], RATE_INTERVAL_S):
            assert "$" not in expr, expr


def test_the_story_queries_are_valid_promql(tmp_path: Path) -> None:
    exprs = [TOTALS_QUERY, *(expr for _, expr, _ in peak_queries(RATE_INTERVAL_S))]
    rules = [{"record": f"story:q{i}", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "story.yml"
    path.write_bytes(orjson.dumps({"groups": [{"name": "story", "rules": rules}]}))  # JSON is YAML
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_prometheus_config_scrapes_the_worker_as_the_alerts_job(tmp_path: Path) -> None:
    server = PrometheusServer(tmp_path, ["127.0.0.1:9464"], scrape_interval_s=1.0, binary="prometheus")
    config = server.config()
    [job] = config["scrape_configs"]
    assert job["job_name"] == "ecash-worker"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:9464"]}]
    assert config["global"]["scrape_interval"] == "1s"
    assert server.rate_interval_s == 4.0  # Grafana's $__rate_interval: 4 scrape intervals


# --- Prometheus' answers on the picture's time axis ------------------------------------------------------


def answer(labels: dict[str, str], values: list[float], start: float = START) -> Series:
    return Series(labels, [(start + i, v) for i, v in enumerate(values)])


def test_answers_land_on_the_grid_and_nan_or_missing_is_no_data() -> None:
    assert GRID.times == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert GRID.end_unix_s == START + 4
    points = [(START + 1, 2.0), (START + 2, math.nan), (START + 4.0004, 5.0), (START + 9, 1.0)]
    assert GRID.on_grid(points) == [None, 2.0, None, None, 5.0]


def test_a_panels_lines_follow_its_targets_legends_and_label_order() -> None:
    panel = dashboard_panels()["Rejected and dead-lettered"]
    rejected, dead = (expr for expr, _ in panel_queries(panel, RATE_INTERVAL_S))
    answers = {
        rejected: [answer({"reason": "invalid"}, [0, 1, 1, 0, 0])],
        dead: [answer({"reason": "not_json"}, [0, 0, 3, 0, 0]), answer({"reason": "key_mismatch"}, [0] * 5)],
    }
    lines = panel_lines(panel, answers, GRID, RATE_INTERVAL_S)
    assert [line.name for line in lines] == [
        "rejected invalid",
        "dead letter key_mismatch",
        "dead letter not_json",
    ]
    assert lines[2].values == [0, 0, 3, 0, 0]


def test_partitions_are_ordered_by_number() -> None:
    panel = dashboard_panels()["Consumer lag (messages) by partition"]
    [(expr, _)] = panel_queries(panel, RATE_INTERVAL_S)
    answers = {expr: [answer({"partition": p}, [1.0] * 5) for p in ("10", "2", "0")]}
    assert [line.name for line in panel_lines(panel, answers, GRID, RATE_INTERVAL_S)] == ["p0", "p2", "p10"]


def test_the_breaker_reads_open_as_two_and_the_story_tells_its_changes() -> None:
    panel = dashboard_panels()[BREAKER_PANEL]
    [(expr, _)] = panel_queries(panel, RATE_INTERVAL_S)
    answers = {expr: [answer({"instance": "127.0.0.1:9464"}, [0, 2, 2, 1, 0])]}
    [line] = panel_lines(panel, answers, GRID, RATE_INTERVAL_S)
    assert line.name == "127.0.0.1:9464"
    assert mapped(dashboard_panels()["Breaker"], line.values[1]) == ("open", "red")
    final = [
        Series({"__name__": "ecash_results_total", "type": "charge", "outcome": "succeeded"}, [(START, 7.0)]),
        Series({"__name__": "ecash_results_total", "type": "credit", "outcome": "succeeded"}, [(START, 3.0)]),
    ]
    meta = {"events": [{"event": "API cut", "at_s": 1.0}]}
    told = story(meta, answers, final, GRID, RATE_INTERVAL_S)
    assert told[:2] == ["API cut at 0:01", "results succeeded: 10"]
    assert "breaker 0 -> 2 at 0:01" in told
    assert "breaker 1 -> 0 at 0:04" in told


def test_final_counters_are_summed_over_type_and_decider() -> None:
    final = [
        Series({"__name__": "ecash_dead_letters_total", "reason": "not_json", "job": "j"}, [(START, 3.0)]),
        Series(
            {"__name__": "ecash_results_total", "outcome": "declined", "resolved_by": "x"}, [(START, 2.0)]
        ),
        Series(
            {"__name__": "ecash_results_total", "outcome": "declined", "resolved_by": "y"}, [(START, 1.0)]
        ),
    ]
    assert totals(final) == {"dead_letters not_json": 3.0, "results declined": 3.0}


def test_a_recording_survives_the_json_round_trip(tmp_path: Path) -> None:
    answers = {"up": [answer({"job": "ecash-worker"}, [0.0, math.nan, 1.0])]}
    final = [Series({"__name__": "ecash_results_total"}, [(START, 3.0)])]
    recording = Recording({"events": [], "rate_interval_s": 4.0}, GRID, answers, final)
    recording.save(tmp_path / "answers.json")
    back = Recording.load(tmp_path / "answers.json")
    assert back.grid == GRID
    assert back.meta == recording.meta
    assert GRID.on_grid(back.answers["up"][0].points) == [0.0, None, 1.0, None, None]
    assert back.final == final


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
