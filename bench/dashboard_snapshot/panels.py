"""Which of the dashboard's panels are drawn, how each is computed, and how Grafana writes its values. Pure.

Each ``PanelSpec`` mirrors the panel of the same title in ``deploy/grafana/dashboards/ecash-worker.json``:
its targets in order, their metrics, groupings and legendFormats (a unit test holds the two together).
Units, stacking, thresholds and value mappings are read from the JSON itself when drawing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bench.dashboard_snapshot.promql import Evaluator, Labels, Matchers, Scrape, Values, project

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_JSON = REPO / "deploy" / "grafana" / "dashboards" / "ecash-worker.json"
RATE_INTERVAL_SCRAPES = 4  # Grafana: $__rate_interval = max($__interval + scrape, 4 x scrape interval)
DAY_S = 86_400.0

QueryKind = Literal["rate", "increase", "quantile", "gauge", "breaker", "since_last_result", "up"]


@dataclass(frozen=True)
class Query:
    """One target of a panel, as evaluated here; ``legend`` is the target's legendFormat."""

    kind: QueryKind
    metric: str = ""
    by: tuple[str, ...] = ()
    where: Matchers = ()
    legend: str = ""
    q: float = 0.0
    agg: Literal["sum", "max"] = "sum"
    window_s: float | None = None  # None: $__rate_interval

    def metric_names(self) -> set[str]:
        """The metric names the dashboard's expression for this target selects."""
        fixed = {
            "breaker": {"ecash_breaker_state"},
            "since_last_result": {"ecash_last_processed_timestamp_seconds"},
            "up": {"up"},
        }
        if self.kind in fixed:
            return fixed[self.kind]
        return {f"{self.metric}_bucket"} if self.kind == "quantile" else {self.metric}


@dataclass(frozen=True)
class PanelSpec:
    title: str  # exactly the dashboard panel's title
    queries: tuple[Query, ...]


@dataclass(frozen=True)
class Line:
    name: str
    values: Values


def rate(metric: str, by: tuple[str, ...] = (), legend: str = "") -> Query:
    return Query("rate", metric, by, legend=legend)


def gauge(
    metric: str, by: tuple[str, ...] = (), legend: str = "", agg: Literal["sum", "max"] = "sum"
) -> Query:
    return Query("gauge", metric, by, legend=legend, agg=agg)


def quantiles(metric: str, legend: str, operations: str = "") -> tuple[Query, ...]:
    """p50, p95, p99; by operation when ``operations`` (a regex) is given."""
    by, where = (("operation",), (("operation", operations),)) if operations else ((), ())
    return tuple(
        Query("quantile", metric, by, where, legend.replace("{p}", name), q=q)
        for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"))
    )


STATS: tuple[PanelSpec, ...] = (
    PanelSpec("Workers up", (Query("up"),)),
    PanelSpec("Commands / s", (rate("ecash_commands_consumed_total"),)),
    PanelSpec("Results / s", (rate("ecash_results_total"),)),
    PanelSpec(
        "Unresolved (24 h)",
        (Query("increase", "ecash_results_total", where=(("outcome", "unresolved"),), window_s=DAY_S),),
    ),
    PanelSpec("Breaker", (Query("breaker"),)),
    PanelSpec("Fatal configuration", (gauge("ecash_fatal_configuration", agg="max"),)),
)

_COMMANDS = (
    PanelSpec(
        "Commands consumed and results published",
        (
            rate("ecash_commands_consumed_total", legend="consumed"),
            rate("ecash_results_total", legend="results"),
        ),
    ),
    PanelSpec("Results by outcome", (rate("ecash_results_total", ("outcome",), "{{outcome}}"),)),
    PanelSpec(
        "End-to-end latency (command timestamp to result)",
        quantiles("ecash_end_to_end_duration_seconds", "{p}"),
    ),
    PanelSpec(
        "Rejected and dead-lettered",
        (
            rate("ecash_commands_rejected_total", ("reason",), "rejected {{reason}}"),
            rate("ecash_dead_letters_total", ("reason",), "dead letter {{reason}}"),
        ),
    ),
)
_API = (
    PanelSpec("Response codes", (rate("ecash_api_calls_total", ("code",), "{{code}}"),)),
    PanelSpec(
        "API latency: charge and credit",
        quantiles("ecash_api_call_duration_seconds", "{p} {{operation}}", "charge|credit"),
    ),
    PanelSpec(
        "API latency: status and login",
        quantiles("ecash_api_call_duration_seconds", "{p} {{operation}}", "status|login"),
    ),
    PanelSpec(
        "Logins", (Query("increase", "ecash_logins_total", ("kind", "result"), legend="{{kind}} {{result}}"),)
    ),
)
_BACKLOG = (
    PanelSpec(
        "Consumer lag (messages) by partition",
        (gauge("ecash_consumer_lag_messages", ("partition",), "p{{partition}}"),),
    ),
    PanelSpec(
        "Consumer lag (age of oldest waiting message)",
        (gauge("ecash_consumer_lag_seconds", ("partition",), "p{{partition}}", agg="max"),),
    ),
    PanelSpec(
        "In flight, waiting, resolving",
        (
            gauge("ecash_commands_in_flight", legend="in flight"),
            gauge("ecash_commands_waiting", legend="waiting behind their MSISDN"),
            gauge("ecash_commands_resolving", legend="resolving"),
        ),
    ),
    PanelSpec("Seconds since the last result", (Query("since_last_result", legend="{{instance}}"),)),
)
_RESOLUTION_HEALTH_PROCESS = (
    PanelSpec(
        "Resolutions started / finished",
        (
            rate("ecash_resolutions_started_total", ("reason",), "started {{reason}}"),
            rate("ecash_resolutions_finished_total", ("outcome",), "finished {{outcome}}"),
        ),
    ),
    PanelSpec("Circuit breaker state", (Query("breaker", legend="{{instance}}"),)),
    PanelSpec("CPU (cores)", (rate("process_cpu_seconds_total", legend="{{instance}}"),)),
    PanelSpec("Resident memory", (gauge("process_resident_memory_bytes", legend="{{instance}}"),)),
)
ROWS: tuple[tuple[str, tuple[PanelSpec, ...]], ...] = (
    ("Commands (rate, errors, duration)", _COMMANDS),
    ("E-Cash API (rate, errors, duration)", _API),
    ("Backlog", _BACKLOG),
    ("Resolution (ambiguous outcomes) · Health · Process", _RESOLUTION_HEALTH_PROCESS),
)


def every_panel() -> tuple[PanelSpec, ...]:
    return STATS + tuple(spec for _, specs in ROWS for spec in specs)


# --- evaluation -----------------------------------------------------------------------------------------


def legend_text(legend: str, labels: Mapping[str, str]) -> str:
    """Grafana's legendFormat: ``{{label}}`` replaced by the series' value of that label."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), legend).strip()


def _query_values(query: Query, ev: Evaluator) -> dict[Labels, Values]:
    if query.kind in ("rate", "increase"):
        per_second = query.kind == "rate"
        return ev.rate(query.metric, query.by, query.where, per_second=per_second, window_s=query.window_s)
    if query.kind == "quantile":
        return ev.quantile(query.q, query.metric, query.by, query.where)
    if query.kind == "gauge":
        return ev.gauge(query.metric, query.by, query.where, query.agg)
    single = {"breaker": ev.breaker, "since_last_result": ev.since_last_result, "up": ev.up}[query.kind]()
    return {project(ev.target, ("instance",)): single}


def _label_order(labels: Labels) -> tuple[tuple[str, int, int, str], ...]:
    """Label values in order, numbers by value (partition 2 before partition 10)."""
    return tuple(
        (name, 0, int(value), "") if value.isdigit() else (name, 1, 0, value) for name, value in labels
    )


def evaluate(panel: PanelSpec, ev: Evaluator) -> list[Line]:
    """The panel's series, named by their legends, target by target, in label order."""
    lines: list[Line] = []
    for query in panel.queries:
        groups = _query_values(query, ev)
        for labels in sorted(groups, key=_label_order):
            lines.append(Line(legend_text(query.legend, {**dict(ev.target), **dict(labels)}), groups[labels]))
    return lines


def last_not_null(values: Values) -> float | None:
    return next((v for v in reversed(values) if v is not None), None)


def max_not_null(values: Values) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def evaluator(meta: Mapping[str, Any], scrapes: Sequence[Scrape]) -> Evaluator:
    """$__rate_interval from the run's scrape interval; the run's target labels."""
    window_s = RATE_INTERVAL_SCRAPES * float(meta["options"]["scrape_interval_s"])
    return Evaluator(scrapes, window_s, meta["target"])


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


def story(meta: Mapping[str, Any], scrapes: Sequence[Scrape]) -> list[str]:
    """The events, the final counters, the breaker's changes and the peaks, one per line."""
    ev = evaluator(meta, scrapes)
    lines = [f"{e['event']} at {clock_label(e['at_s'])}" for e in meta["events"]]
    totals: dict[str, float] = {}
    for (name, labels), value in scrapes[-1].values.items():
        if value and name.endswith("_total") and name.startswith(COUNTED):
            key = f"{name.removeprefix('ecash_').removesuffix('_total')} " + " ".join(
                v for k, v in labels if k not in ("type", "resolved_by")
            )
            totals[key] = totals.get(key, 0.0) + value
    lines += [f"{key}: {value:.0f}" for key, value in sorted(totals.items())]
    breaker = ev.breaker()
    lines += [
        f"breaker {breaker[i - 1]} -> {breaker[i]} at {clock_label(ev.times[i])}"
        for i in range(1, len(breaker))
        if breaker[i] != breaker[i - 1]
    ]
    peaks = (
        ("lag (messages)", ev.gauge("ecash_consumer_lag_messages"), 1.0),
        ("lag age (s)", ev.gauge("ecash_consumer_lag_seconds", agg="max"), 1.0),
        ("in flight", ev.gauge("ecash_commands_in_flight"), 1.0),
        ("waiting", ev.gauge("ecash_commands_waiting"), 1.0),
        ("resolving", ev.gauge("ecash_commands_resolving"), 1.0),
        ("results/s", ev.rate("ecash_results_total"), 1.0),
        ("CPU (cores)", ev.rate("process_cpu_seconds_total"), 1.0),
        ("RSS (MiB)", ev.gauge("process_resident_memory_bytes"), 2.0**20),
    )
    for title, groups, scale in peaks:
        values = groups.get((), ev.empty())
        peak = max_not_null(values)
        if peak is not None:
            lines.append(f"peak {title}: {peak / scale:.1f} at {clock_label(ev.times[values.index(peak)])}")
    lines += [
        f"{key}: {json.dumps(meta[key], sort_keys=True)}" for key in ("sandbox", "agreement") if key in meta
    ]
    return lines
