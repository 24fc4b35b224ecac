"""Which of the dashboard's panels are drawn, their lines from Prometheus' answers, how Grafana writes values.

The panels are named by title; what each draws is the dashboard's own targets (``deploy/grafana/dashboards/
ecash-worker.json``): their expressions sent to a real Prometheus as Grafana sends them
(``prometheus.grafana_to_promql``), their legendFormats naming the lines. Units, stacking, thresholds and
value mappings are read from the JSON too. Pure: the answers are given.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.dashboard_snapshot.prometheus import Series, grafana_to_promql

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_JSON = REPO / "deploy" / "grafana" / "dashboards" / "ecash-worker.json"

Values = list[float | None]  # one value per step of the grid; None: no data (Grafana draws a gap)
Answers = Mapping[str, list[Series]]  # a query_range's answer by the expression sent

STATS: tuple[str, ...] = (
    "Workers up",
    "Commands / s",
    "Results / s",
    "Unresolved (24 h)",
    "Breaker",
    "Fatal configuration",
)
ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Commands (rate, errors, duration)",
        (
            "Commands consumed and results published",
            "Results by outcome",
            "End-to-end latency (command timestamp to result)",
            "Rejected and dead-lettered",
        ),
    ),
    (
        "E-Cash API (rate, errors, duration)",
        ("Response codes", "API latency: charge and credit", "API latency: status and login", "Logins"),
    ),
    (
        "Backlog",
        (
            "Consumer lag (messages) by partition",
            "Consumer lag (age of oldest waiting message)",
            "In flight, waiting, resolving",
            "Seconds since the last result",
        ),
    ),
    (
        "Resolution (ambiguous outcomes) · Health · Process",
        ("Resolutions started / finished", "Circuit breaker state", "CPU (cores)", "Resident memory"),
    ),
)
BREAKER_PANEL = "Circuit breaker state"


def drawn_titles() -> tuple[str, ...]:
    return STATS + tuple(title for _, titles in ROWS for title in titles)


@dataclass(frozen=True)
class Line:
    name: str
    values: Values


@dataclass(frozen=True)
class Grid:
    """The instants of a range query: ``start_unix_s + k * step_s``, ``count`` of them."""

    start_unix_s: float
    step_s: float
    count: int

    @property
    def times(self) -> list[float]:
        """Seconds since the start, one per step (the time axis)."""
        return [k * self.step_s for k in range(self.count)]

    @property
    def end_unix_s(self) -> float:
        return self.start_unix_s + (self.count - 1) * self.step_s

    def on_grid(self, points: Iterable[tuple[float, float]]) -> Values:
        """A series' points at the grid's steps; None where Prometheus had no value or answered NaN."""
        values: Values = [None] * self.count
        for t, v in points:
            k = round((t - self.start_unix_s) / self.step_s)
            if 0 <= k < self.count and math.isfinite(v):
                values[k] = v
        return values


def panel_queries(panel: Mapping[str, Any], rate_interval_s: float) -> list[tuple[str, str]]:
    """(the expression Prometheus is asked, the legendFormat) for each target of a dashboard panel."""
    return [
        (grafana_to_promql(target["expr"], rate_interval_s), target.get("legendFormat", ""))
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def legend_text(legend: str, labels: Mapping[str, str]) -> str:
    """Grafana's legendFormat: ``{{label}}`` replaced by the series' value of that label."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), legend).strip()


def _label_order(labels: Mapping[str, str]) -> tuple[tuple[str, int, int, str], ...]:
    """Label values in order, numbers by value (partition 2 before partition 10)."""
    return tuple(
        (name, 0, int(value), "") if value.isdigit() else (name, 1, 0, value)
        for name, value in sorted(labels.items())
    )


def panel_lines(panel: Mapping[str, Any], answers: Answers, grid: Grid, rate_interval_s: float) -> list[Line]:
    """The panel's series, named by their legends, target by target, in label order."""
    lines: list[Line] = []
    for expr, legend in panel_queries(panel, rate_interval_s):
        for series in sorted(answers[expr], key=lambda s: _label_order(s.labels)):
            lines.append(Line(legend_text(legend, series.labels), grid.on_grid(series.points)))
    return lines


def last_not_null(values: Values) -> float | None:
    return next((v for v in reversed(values) if v is not None), None)


def max_not_null(values: Values) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


# --- the dashboard JSON -----------------------------------------------------------------------------------


def dashboard_panels(path: Path = DASHBOARD_JSON) -> dict[str, dict[str, Any]]:
    """The dashboard's panels by title."""
    panels: list[dict[str, Any]] = json.loads(path.read_text())["panels"]
    return {panel["title"]: panel for panel in panels}


def mapped(panel: Mapping[str, Any], value: float | None) -> tuple[str | None, str]:
    """(the value mapping's text, or None; the colour name) for a value, from the panel's field config."""
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    if value is None:
        return "No data", "text"
    key = str(int(value)) if float(value).is_integer() else str(value)
    for mapping in defaults.get("mappings", []):
        hit = mapping.get("options", {}).get(key) if mapping.get("type") == "value" else None
        if hit:
            return hit.get("text"), hit.get("color", "green")
    color = "green"
    for step in defaults.get("thresholds", {}).get("steps", []):
        if step["value"] is None or value >= step["value"]:
            color = step["color"]
    return None, color


# --- units, as Grafana writes them ------------------------------------------------------------------------

_SCALES: dict[str, tuple[tuple[float, str], ...]] = {
    "s": ((3600.0, " h"), (60.0, " min"), (1.0, " s"), (0.001, " ms")),
    "bytes": ((2.0**30, " GiB"), (2.0**20, " MiB"), (2.0**10, " KiB"), (1.0, " B")),
    "short": ((1e9, " Bil"), (1e6, " Mil"), (1e3, " K"), (1.0, "")),
}


def scale_for(unit: str, magnitude: float) -> tuple[float, str]:
    """The divisor and suffix Grafana uses for values of about ``magnitude`` in ``unit``."""
    if unit == "reqps":
        return 1.0, " req/s"
    if unit == "percentunit":
        return 0.01, "%"
    scales = _SCALES.get(unit, _SCALES["short"])
    for divisor, suffix in scales:
        if abs(magnitude) >= divisor:
            return divisor, suffix
    return scales[-1]


def format_value(unit: str, value: float, decimals: int | None = None) -> str:
    """``format_value("s", 0.0352) == "35.2 ms"``: three significant digits unless ``decimals`` is given."""
    divisor, suffix = scale_for(unit, value)
    scaled = value / divisor
    if decimals is None:
        size = abs(scaled)
        decimals = 0 if size >= 100 or scaled == 0 else 1 if size >= 10 else 2 if size >= 1 else 3
    return f"{scaled:.{decimals}f}{suffix}"


def tick_text(value: float, step: float, suffix: str) -> str:
    """An axis label in the axis' scale: as many decimals as the tick step needs (``0.25`` -> 2)."""
    decimals = next((d for d in range(4) if abs(step * 10**d - round(step * 10**d)) < 1e-6), 3)
    return "0" if value == 0 else f"{value:.{decimals}f}{suffix}"


def clock_label(t_s: float) -> str:
    """``75 -> "1:15"``: minutes and seconds since the run's start."""
    whole = round(t_s)
    return f"{whole // 60}:{whole % 60:02d}"


# --- what the run showed, in numbers (for docs/dashboard.md) --------------------------------------------

COUNTED = (
    "ecash_results",
    "ecash_resolutions",
    "ecash_dead_letters",
    "ecash_commands_rejected",
    "ecash_logins",
    "ecash_breaker_transitions",
)
TOTALS_QUERY = f'{{__name__=~"({"|".join(COUNTED)})_.*total"}} > 0'


def peak_queries(rate_interval_s: float) -> tuple[tuple[str, str, float], ...]:
    """(what, expression, divisor) of the peaks the story tells."""
    window = f"{rate_interval_s:g}s"
    return (
        ("lag (messages)", "sum(ecash_consumer_lag_messages)", 1.0),
        ("lag age (s)", "max(ecash_consumer_lag_seconds)", 1.0),
        ("in flight", "sum(ecash_commands_in_flight)", 1.0),
        ("waiting", "sum(ecash_commands_waiting)", 1.0),
        ("resolving", "sum(ecash_commands_resolving)", 1.0),
        ("results/s", f"sum(rate(ecash_results_total[{window}]))", 1.0),
        ("CPU (cores)", f"sum(rate(process_cpu_seconds_total[{window}]))", 1.0),
        ("RSS (MiB)", "sum(process_resident_memory_bytes)", 2.0**20),
    )


def totals(final: Sequence[Series]) -> dict[str, float]:
    """The counters at the end of the run, summed over the labels that only split them further."""
    out: dict[str, float] = {}
    for series in final:
        name = series.labels.get("__name__", "")
        labels = [
            v
            for k, v in sorted(series.labels.items())
            if k not in ("__name__", "type", "resolved_by", "instance", "job")
        ]
        key = " ".join([name.removeprefix("ecash_").removesuffix("_total"), *labels])
        out[key] = out.get(key, 0.0) + series.points[-1][1]
    return out


def story(
    meta: Mapping[str, Any], answers: Answers, final: Sequence[Series], grid: Grid, rate_interval_s: float
) -> list[str]:
    """The events, the final counters, the breaker's changes and the peaks, one per line."""
    lines = [f"{e['event']} at {clock_label(e['at_s'])}" for e in meta["events"]]
    lines += [f"{key}: {value:.0f}" for key, value in sorted(totals(final).items())]
    breaker = panel_lines(dashboard_panels()[BREAKER_PANEL], answers, grid, rate_interval_s)
    times = grid.times
    for line in breaker:
        values = line.values
        lines += [
            f"breaker {values[i - 1]:g} -> {values[i]:g} at {clock_label(times[i])}"
            for i in range(1, len(values))
            if values[i] != values[i - 1] and None not in (values[i], values[i - 1])
        ]
    for title, expr, divisor in peak_queries(rate_interval_s):
        values = grid.on_grid(answers[expr][0].points) if answers.get(expr) else []
        peak = max_not_null(values)
        if peak is not None:
            lines.append(f"peak {title}: {peak / divisor:.1f} at {clock_label(times[values.index(peak)])}")
    lines += [
        f"{key}: {json.dumps(meta[key], sort_keys=True)}" for key in ("sandbox", "agreement") if key in meta
    ]
    return lines
