"""The panels drawn in Grafana's dark style with matplotlib (the ``docs`` extra, imported only when drawing).

Layout: the dashboard's title and what the run was, the six stats of its Overview row, then four rows of
four panels under the dashboard's row titles. Per panel, from the dashboard JSON: the title, the unit
(axis and legend values scaled as Grafana does: ms, s, min; KiB, MiB; K), stacking, the table legend
with Last and Max, thresholds and value mappings (stats, the breaker's state timeline). The outage is
shaded on every time axis in the colour of the dashboard's built-in annotations. A series that stays at
zero for the whole run (the label values exported at zero from the start) is left out of a panel unless
all of them are.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.dashboard_snapshot.panels import (
    ROWS,
    STATS,
    Answers,
    Grid,
    Line,
    Values,
    clock_label,
    dashboard_panels,
    format_value,
    last_not_null,
    mapped,
    max_not_null,
    panel_lines,
    scale_for,
    tick_text,
)

WIDTH_PX, HEIGHT_PX, DPI = 1600, 1200, 100
BACKGROUND = "#111217"
PANEL = "#181b1f"
BORDER = "#2a2d33"
TEXT = "#ccccdc"
MUTED = "#8e8e9e"
GRID = "#25282e"
ANNOTATION = "#00d3ff"  # the dashboard's built-in annotation colour, rgba(0, 211, 255, 1)
PALETTE = (  # Grafana's classic palette, in its order
    "#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9", "#705DA0",
    "#508642", "#CCA300", "#447EBC", "#C15C17", "#890F02", "#0A437C", "#6D1F62", "#584477",
)  # fmt: skip
NAMED = {"green": "#73BF69", "yellow": "#FADE2A", "orange": "#FF9830", "red": "#F2495C", "blue": "#5794F2"}
LEGEND_FONT, LEGEND_ROW_PX, TABLE_MAX_ROWS = 7.5, 12.5, 5


@dataclass(frozen=True)
class Box:
    x: float
    y: float  # from the top, in pixels
    w: float
    h: float


@dataclass(frozen=True)
class Frame:
    """What every panel shares: the time axis and the outage to shade."""

    times: list[float]
    end_s: float
    outage: tuple[float, float] | None


def shown_lines(lines: Sequence[Line]) -> list[Line]:
    """The lines worth a colour: those not zero (or empty) throughout; all of them if none is."""
    moving = [line for line in lines if any(v for v in line.values)]
    return moving or list(lines)


def legend_layout(
    texts: Sequence[str], width: float, measure: Callable[[str], float]
) -> list[tuple[float, int]]:
    """(x offset, row) of each entry, left to right, wrapping at ``width``; the marker takes 14 px."""
    places: list[tuple[float, int]] = []
    x, row = 0.0, 0
    for text in texts:
        entry_w = 14 + measure(text) + 14
        if x > 0 and x + entry_w > width:
            x, row = 0.0, row + 1
        places.append((x, row))
        x += entry_w
    return places


def require_matplotlib() -> Any:
    """matplotlib, set to draw without a display; fails at once (not after the run) when it is missing."""
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        raise SystemExit("drawing needs matplotlib (the docs extra): pip install -e '.[docs]'") from None
    matplotlib.use("Agg")
    return matplotlib


class Canvas:
    def __init__(self) -> None:
        require_matplotlib()
        self.plt = importlib.import_module("matplotlib.pyplot")
        self.patches = importlib.import_module("matplotlib.patches")
        self.ticker = importlib.import_module("matplotlib.ticker")
        self.fig = self.plt.figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, facecolor=BACKGROUND)
        self.renderer = self.fig.canvas.get_renderer()

    def rect(self, box: Box) -> list[float]:
        return [box.x / WIDTH_PX, 1 - (box.y + box.h) / HEIGHT_PX, box.w / WIDTH_PX, box.h / HEIGHT_PX]

    def axes(self, box: Box) -> Any:
        return self.fig.add_axes(self.rect(box))

    def text(self, x: float, y: float, text: str, **style: Any) -> Any:
        return self.fig.text(x / WIDTH_PX, 1 - y / HEIGHT_PX, text, **{"color": TEXT, "va": "top", **style})

    def measure(self, text: str, fontsize: float = LEGEND_FONT) -> float:
        probe = self.fig.text(0, 0, text, fontsize=fontsize)
        width = float(probe.get_window_extent(renderer=self.renderer).width)
        probe.remove()
        return width

    def frame(self, box: Box, color: str = PANEL, edge: str = BORDER) -> None:
        left, bottom, width, height = self.rect(box)
        self.fig.patches.append(
            self.patches.FancyBboxPatch(
                (left, bottom),
                width,
                height,
                boxstyle="round,pad=0,rounding_size=0.002",
                transform=self.fig.transFigure,
                facecolor=color,
                edgecolor=edge,
                linewidth=0.8,
                zorder=-1,
            )
        )

    def title(self, box: Box, text: str, color: str = TEXT) -> None:
        self.text(box.x + 10, box.y + 8, text, fontsize=9.5, fontweight="bold", color=color)

    def save(self, out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        self.fig.savefig(out, dpi=DPI, facecolor=BACKGROUND)
        self.plt.close(self.fig)


def _nan(values: Values, divisor: float = 1.0) -> list[float]:
    return [math.nan if v is None else v / divisor for v in values]


def _time_axis(canvas: Canvas, ax: Any, frame: Frame) -> None:
    ax.set_facecolor(PANEL)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(colors=MUTED, labelsize=7.5, length=0, pad=3)
    ax.set_xlim(0, frame.end_s)
    ax.xaxis.set_major_locator(canvas.ticker.MultipleLocator(30))
    ax.xaxis.set_major_formatter(canvas.ticker.FuncFormatter(lambda t, _p: clock_label(t)))
    if frame.outage is not None:
        ax.axvspan(*frame.outage, color=ANNOTATION, alpha=0.07, linewidth=0)
        for edge_s in frame.outage:
            ax.axvline(edge_s, color=ANNOTATION, alpha=0.6, linewidth=0.8, linestyle=(0, (3, 3)))


def _value_axis(canvas: Canvas, ax: Any, top: float, suffix: str) -> None:
    ax.grid(True, color=GRID, linewidth=0.7)
    ax.set_axisbelow(True)
    ticks = canvas.ticker.MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]).tick_values(0, top)
    step = float(ticks[1] - ticks[0]) if len(ticks) > 1 else top
    ax.set_ylim(0, top)
    ax.set_yticks([t for t in ticks if 0 <= t <= top])
    ax.yaxis.set_major_formatter(canvas.ticker.FuncFormatter(lambda v, _p: tick_text(v, step, suffix)))


def _peak(lines: Sequence[Line], stacked: bool) -> float:
    if not lines:
        return 0.0
    if stacked:
        return max(sum(line.values[i] or 0.0 for line in lines) for i in range(len(lines[0].values)))
    return max((max_not_null(line.values) or 0.0 for line in lines), default=0.0)


def legend_height(canvas: Canvas, lines: Sequence[Line], width: float, unit: str) -> float:
    if len(lines) <= TABLE_MAX_ROWS:
        return (len(lines) + 1) * LEGEND_ROW_PX + 4
    places = legend_layout([line.name for line in lines], width, canvas.measure)
    return (places[-1][1] + 1) * LEGEND_ROW_PX + 4


def _legend(canvas: Canvas, box: Box, lines: Sequence[Line], colors: Sequence[str], unit: str) -> None:
    """Grafana's table legend (Name, Last *, Max); its list legend (names) when there are many series."""
    table = len(lines) <= TABLE_MAX_ROWS
    if table:
        canvas.text(box.x + box.w - 90, box.y, "Last *", fontsize=7, color=MUTED, ha="right")
        canvas.text(box.x + box.w, box.y, "Max", fontsize=7, color=MUTED, ha="right")
        places = [(0.0, i + 1) for i in range(len(lines))]
    else:
        places = legend_layout([line.name for line in lines], box.w, canvas.measure)
    for (dx, row), line, color in zip(places, lines, colors, strict=True):
        x, y = box.x + dx, box.y + row * LEGEND_ROW_PX
        canvas.text(x, y - 1.5, "━", fontsize=8, color=color, fontweight="bold")
        if not table:
            canvas.text(x + 14, y, line.name, fontsize=LEGEND_FONT)
            continue
        canvas.text(x + 14, y, line.name, fontsize=LEGEND_FONT)
        for right, value in ((90, last_not_null(line.values)), (0, max_not_null(line.values))):
            shown = "-" if value is None else format_value(unit, value)
            canvas.text(box.x + box.w - right, y, shown, fontsize=LEGEND_FONT, ha="right")


def draw_timeseries(
    canvas: Canvas, box: Box, panel: Mapping[str, Any], all_lines: Sequence[Line], frame: Frame
) -> None:
    canvas.frame(box)
    canvas.title(box, panel["title"])
    defaults = panel["fieldConfig"]["defaults"]
    unit = defaults.get("unit", "short")
    stacked = defaults.get("custom", {}).get("stacking", {}).get("mode") == "normal"
    lines = shown_lines(all_lines)
    legend_h = legend_height(canvas, lines, box.w - 24, unit)
    ax = canvas.axes(Box(box.x + 60, box.y + 30, box.w - 72, box.h - 30 - 22 - legend_h))
    peak = _peak(lines, stacked)
    divisor, suffix = scale_for(unit, peak)
    top = peak / divisor * 1.12 if peak > 0 else 1.0
    _time_axis(canvas, ax, frame)
    _value_axis(canvas, ax, top, suffix)
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(lines))]
    base = [0.0] * len(frame.times)
    for line, color in zip(lines, colors, strict=True):
        values = _nan(line.values, divisor)
        if stacked:
            upper = [b + (0.0 if math.isnan(v) else v) for b, v in zip(base, values, strict=True)]
            ax.fill_between(frame.times, base, upper, color=color, alpha=0.10, linewidth=0)
            values = [math.nan if math.isnan(v) else u for u, v in zip(upper, values, strict=True)]
            base = upper
        else:
            ax.fill_between(frame.times, 0, values, color=color, alpha=0.10, linewidth=0)
        ax.plot(frame.times, values, color=color, linewidth=1.0)
    _legend(canvas, Box(box.x + 12, box.y + box.h - legend_h - 2, box.w - 24, legend_h), lines, colors, unit)


def _segments(times: Sequence[float], values: Values) -> list[tuple[float, float, float]]:
    """Runs of one value (merged, as ``mergeValues``), each ending where the next begins."""
    runs: list[tuple[float, float, float]] = []
    start: tuple[int, float] | None = None
    for i, value in enumerate(values):
        if start is not None and value != start[1]:
            runs.append((times[start[0]], times[i], start[1]))
            start = None
        if start is None and value is not None:
            start = (i, value)
    if start is not None:
        runs.append((times[start[0]], times[-1], start[1]))
    return runs


def draw_state_timeline(
    canvas: Canvas, box: Box, panel: Mapping[str, Any], lines: Sequence[Line], frame: Frame
) -> None:
    canvas.frame(box)
    canvas.title(box, panel["title"])
    legend_y = box.y + box.h - 20
    plot = Box(box.x + 118, box.y + 36, box.w - 130, legend_y - box.y - 36 - 24)
    ax = canvas.axes(plot)
    _time_axis(canvas, ax, frame)
    ax.set_yticks([])
    ax.set_ylim(0, len(lines))
    seen: dict[float, tuple[str, str]] = {}
    for row, line in enumerate(lines):
        y = plot.y + plot.h - (row + 0.5) * plot.h / len(lines) - 6
        canvas.text(box.x + 10, y, line.name, fontsize=LEGEND_FONT)
        for start_s, end_s, value in _segments(frame.times, line.values):
            text, color = mapped(panel, value)
            seen[value] = (text or format_value("short", value), NAMED.get(color, color))
            ax.broken_barh(
                [(start_s, end_s - start_s)], (row + 0.1, 0.8), facecolors=seen[value][1], alpha=0.9
            )
    x = box.x + 12
    for _value, (text, color) in sorted(seen.items()):
        canvas.text(x, legend_y, "■", fontsize=9, color=color)
        canvas.text(x + 13, legend_y + 1, text, fontsize=LEGEND_FONT)
        x += 24 + canvas.measure(text)


def draw_stat(
    canvas: Canvas, box: Box, panel: Mapping[str, Any], lines: Sequence[Line], frame: Frame
) -> None:
    values = lines[0].values if lines else []
    value = last_not_null(values)
    text, color = mapped(panel, value)
    unit = panel["fieldConfig"]["defaults"].get("unit", "short")
    if text is None and value is not None:
        text = format_value(unit, value, 0 if float(value).is_integer() else None)
    fill = NAMED.get(color, PANEL)
    canvas.frame(box, color=fill, edge=fill)
    canvas.title(box, panel["title"], color="#ffffff")
    canvas.text(
        box.x + box.w / 2,
        box.y + 26,
        text or "No data",
        fontsize=24,
        fontweight="bold",
        color="#ffffff",
        ha="center",
    )
    if any(v is not None for v in values):
        ax = canvas.axes(Box(box.x + 1, box.y + box.h - 34, box.w - 2, 33))
        ax.set_axis_off()
        ax.set_xlim(0, frame.end_s)
        series = _nan(values)
        ax.set_ylim(0, (max_not_null(values) or 1.0) * 1.05 or 1.0)
        ax.fill_between(frame.times, 0, series, color="#ffffff", alpha=0.18, linewidth=0)
        ax.plot(frame.times, series, color="#ffffff", alpha=0.55, linewidth=1.0)


def _header(canvas: Canvas, meta: Mapping[str, Any], frame: Frame, about: Sequence[str]) -> None:
    canvas.text(12, 10, "ecash-worker", fontsize=15, fontweight="bold")
    controls = f"Worker: All     Time: the whole run, {clock_label(frame.end_s)}     Refresh: 1 s"
    canvas.text(WIDTH_PX - 12, 14, controls, fontsize=8.5, color=MUTED, ha="right")
    for i, line in enumerate(about):
        canvas.text(12, 38 + i * 15, line, fontsize=8.5, color=MUTED)


def render(meta: Mapping[str, Any], answers: Answers, grid: Grid, out: Path, about: Sequence[str]) -> None:
    """Draw the stats and the grid of panels into ``out`` (PNG, WIDTH_PX x HEIGHT_PX)."""
    canvas = Canvas()
    panels = dashboard_panels()
    rate_interval_s = float(meta["rate_interval_s"])

    def lines(title: str) -> list[Line]:
        return panel_lines(panels[title], answers, grid, rate_interval_s)

    events = {e["event"]: float(e["at_s"]) for e in meta.get("events", [])}
    outage = (events["API cut"], events["API back"]) if {"API cut", "API back"} <= events.keys() else None
    times = grid.times
    frame = Frame(times, times[-1], outage)
    _header(canvas, meta, frame, about)
    margin, gap, y = 10.0, 8.0, 76.0
    stat_w = (WIDTH_PX - 2 * margin - (len(STATS) - 1) * gap) / len(STATS)
    for i, title in enumerate(STATS):
        box = Box(margin + i * (stat_w + gap), y, stat_w, 92)
        draw_stat(canvas, box, panels[title], lines(title), frame)
    y += 92 + 4
    row_h = (HEIGHT_PX - y - 6) / len(ROWS)
    for row_title, titles in ROWS:
        canvas.text(margin + 2, y + 6, f"⌄  {row_title}", fontsize=10, fontweight="bold")
        panel_w = (WIDTH_PX - 2 * margin - (len(titles) - 1) * gap) / len(titles)
        for i, title in enumerate(titles):
            box = Box(margin + i * (panel_w + gap), y + 24, panel_w, row_h - 24 - gap)
            panel = panels[title]
            draw = draw_state_timeline if panel["type"] == "state-timeline" else draw_timeseries
            draw(canvas, box, panel, lines(title), frame)
        y += row_h
    canvas.save(out)
