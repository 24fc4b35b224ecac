"""Scrapes of /metrics, and the PromQL the dashboard uses, evaluated over them. Pure.

What Prometheus does is followed where it shows in a picture: ``rate``/``increase`` extrapolate to the
window's edges (never below zero, at most half a scrape past the data), counter resets are added back,
``histogram_quantile`` interpolates inside a bucket and answers the highest finite bound for the +Inf
bucket, ``sum`` leaves missing series out. Windows are left-open, ``(t - window, t]``, as in Prometheus 3.
Every series carries the target labels ``instance`` and ``job``, as Prometheus adds them.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

KEPT_PREFIXES = ("ecash_", "process_")  # python_gc_* and python_info are on /metrics too: not drawn

Labels = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Labels]
Values = list[float | None]  # one value per scrape; None: no data (Grafana draws a gap)
Matchers = tuple[tuple[str, str], ...]  # (label, regex): PromQL's =~, anchored; a plain value is =


@dataclass(frozen=True)
class Scrape:
    t_s: float  # seconds since the first scrape (the worker's start)
    unix_s: float  # wall clock when it was taken: PromQL's time()
    up: bool  # the target answered (Prometheus' ``up``)
    values: Mapping[SeriesKey, float]


def labels_of(mapping: Mapping[str, str]) -> Labels:
    return tuple(sorted(mapping.items()))


def parse_exposition(text: str, prefixes: tuple[str, ...] = KEPT_PREFIXES) -> dict[SeriesKey, float]:
    """Every sample of a /metrics page whose name starts with one of ``prefixes``: (name, labels) -> value."""
    values: dict[SeriesKey, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(prefixes):
                values[(sample.name, labels_of(sample.labels))] = float(sample.value)
    return values


# --- samples.jsonl: the run's description, then one line per scrape ---------------------------------------


def scrape_to_json(scrape: Scrape) -> dict[str, Any]:
    series = [[name, dict(labels), value] for (name, labels), value in scrape.values.items()]
    return {"t_s": round(scrape.t_s, 3), "unix_s": round(scrape.unix_s, 3), "up": scrape.up, "series": series}


def scrape_from_json(data: Mapping[str, Any]) -> Scrape:
    values = {(str(name), labels_of(labels)): float(value) for name, labels, value in data["series"]}
    return Scrape(float(data["t_s"]), float(data["unix_s"]), bool(data["up"]), values)


def write_samples(path: Path, meta: Mapping[str, Any], scrapes: Iterable[Scrape]) -> None:
    with path.open("wb") as out:
        out.write(orjson.dumps({"meta": dict(meta)}) + b"\n")
        for scrape in scrapes:
            out.write(orjson.dumps(scrape_to_json(scrape)) + b"\n")


def read_samples(path: Path) -> tuple[dict[str, Any], list[Scrape]]:
    with path.open("rb") as lines:
        meta: dict[str, Any] = orjson.loads(next(lines))["meta"]
        return meta, [scrape_from_json(orjson.loads(line)) for line in lines if line.strip()]


def until_last_up(scrapes: Sequence[Scrape]) -> list[Scrape]:
    """The scrapes up to the last one that answered: the worker's clean stop ends the picture."""
    last = max((i for i, scrape in enumerate(scrapes) if scrape.up), default=-1)
    return list(scrapes[: last + 1])


# --- functions ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    times: list[float]
    values: list[float]


def extrapolated_rate(
    series: Series, at_s: float, window_s: float, *, per_second: bool = True
) -> float | None:
    """Prometheus' ``rate`` (or ``increase``) of a counter over ``(at_s - window_s, at_s]``."""
    lo = bisect.bisect_right(series.times, at_s - window_s)
    hi = bisect.bisect_right(series.times, at_s)
    if hi - lo < 2:
        return None
    times, values = series.times[lo:hi], series.values[lo:hi]
    delta = values[-1] - values[0]
    for previous, current in itertools.pairwise(values):
        if current < previous:  # a counter reset: what was counted before it still counts
            delta += previous
    sampled_s = times[-1] - times[0]
    gap_s = sampled_s / (len(times) - 1)
    to_start_s, to_end_s = times[0] - (at_s - window_s), at_s - times[-1]
    if delta > 0 and values[0] >= 0:  # a counter does not go below zero before its first sample
        to_start_s = min(to_start_s, sampled_s * values[0] / delta)
    threshold_s = gap_s * 1.1
    span_s = sampled_s
    span_s += to_start_s if to_start_s < threshold_s else gap_s / 2
    span_s += to_end_s if to_end_s < threshold_s else gap_s / 2
    result = delta * span_s / sampled_s
    return result / window_s if per_second else result


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus' ``histogram_quantile`` over (upper bound, cumulative count) pairs; None for NaN."""
    ordered = sorted(buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return None
    bounds = [le for le, _ in ordered]
    counts: list[float] = []
    for _, count in ordered:  # made monotonic, as Prometheus does
        counts.append(max(count, counts[-1]) if counts else count)
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    index = bisect.bisect_left(counts[:-1], rank)
    if index == len(counts) - 1:
        return bounds[-2]
    if index == 0 and bounds[0] <= 0:
        return bounds[0]
    start = bounds[index - 1] if index > 0 else 0.0
    below = counts[index - 1] if index > 0 else 0.0
    return start + (bounds[index] - start) * ((rank - below) / (counts[index] - below))


def matches(labels: Labels, matchers: Matchers) -> bool:
    present = dict(labels)
    return all(re.fullmatch(pattern, present.get(name, "")) for name, pattern in matchers)


def project(labels: Labels, by: Sequence[str]) -> Labels:
    return tuple((name, value) for name, value in labels if name in by)


def add_into(total: Values, values: Values) -> None:
    """PromQL's ``sum``: a missing value is left out; None only where every input is None."""
    for i, value in enumerate(values):
        if value is not None:
            current = total[i]
            total[i] = value if current is None else current + value


def _larger(a: float, b: float) -> float:
    return a if a >= b else b


def _plus(a: float, b: float) -> float:
    return a + b


def _buckets_at(per_le: Sequence[tuple[float, Values]], index: int) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for le, values in per_le:
        value = values[index]
        if value is not None:
            out.append((le, value))
    return out


# --- range queries ----------------------------------------------------------------------------------------


class Evaluator:
    """Range queries over the scrapes, evaluated at every scrape's time (Grafana's step = the scrape)."""

    def __init__(self, scrapes: Sequence[Scrape], window_s: float, target: Mapping[str, str]) -> None:
        self.scrapes = scrapes
        self.times = [scrape.t_s for scrape in scrapes]
        self.window_s = window_s
        self.target = labels_of(target)
        self._by_name: list[dict[str, list[tuple[Labels, float]]]] = []
        for scrape in scrapes:
            index: dict[str, list[tuple[Labels, float]]] = {}
            for (name, labels), value in scrape.values.items():
                index.setdefault(name, []).append((labels_of({**dict(labels), **target}), value))
            self._by_name.append(index)

    def empty(self) -> Values:
        return [None] * len(self.times)

    def series(self, name: str, where: Matchers = ()) -> dict[Labels, Series]:
        found: dict[Labels, Series] = {}
        for t_s, index in zip(self.times, self._by_name, strict=True):
            for labels, value in index.get(name, ()):
                if matches(labels, where):
                    entry = found.setdefault(labels, Series([], []))
                    entry.times.append(t_s)
                    entry.values.append(value)
        return found

    def rate(
        self,
        name: str,
        by: Sequence[str] = (),
        where: Matchers = (),
        *,
        per_second: bool = True,
        window_s: float | None = None,
    ) -> dict[Labels, Values]:
        """``sum by (by) (rate(name{where}[window]))``; ``increase`` when not ``per_second``."""
        window = self.window_s if window_s is None else window_s
        groups: dict[Labels, Values] = {}
        for labels, series in self.series(name, where).items():
            values: Values = [extrapolated_rate(series, t, window, per_second=per_second) for t in self.times]
            add_into(groups.setdefault(project(labels, by), self.empty()), values)
        return groups

    def quantile(
        self, q: float, name: str, by: Sequence[str] = (), where: Matchers = ()
    ) -> dict[Labels, Values]:
        """``histogram_quantile(q, sum by (le, by) (rate(name_bucket{where}[window])))``."""
        buckets: dict[Labels, list[tuple[float, Values]]] = {}
        for labels, values in self.rate(f"{name}_bucket", (*by, "le"), where).items():
            le = float(dict(labels)["le"])
            buckets.setdefault(project(labels, by), []).append((le, values))
        return {
            group: [histogram_quantile(q, _buckets_at(per_le, i)) for i in range(len(self.times))]
            for group, per_le in buckets.items()
        }

    def gauge(
        self, name: str, by: Sequence[str] = (), where: Matchers = (), agg: str = "sum"
    ) -> dict[Labels, Values]:
        """``sum by (by) (name{where})`` (or ``max``) at each scrape; a series missing there is left out."""
        combine: Callable[[float, float], float] = _larger if agg == "max" else _plus
        groups: dict[Labels, Values] = {}
        for i, index in enumerate(self._by_name):
            for labels, value in index.get(name, ()):
                if matches(labels, where):
                    values = groups.setdefault(project(labels, by), self.empty())
                    current = values[i]
                    values[i] = value if current is None else combine(current, value)
        return groups

    def breaker(self) -> Values:
        """``2 * breaker_state{state="open"} + ignoring(state) breaker_state{state="half_open"}``."""
        out = self.empty()
        for i, index in enumerate(self._by_name):
            states = {dict(labels)["state"]: value for labels, value in index.get("ecash_breaker_state", ())}
            if "open" in states and "half_open" in states:
                out[i] = 2 * states["open"] + states["half_open"]
        return out

    def since_last_result(self) -> Values:
        """``time() - max(ecash_last_processed_timestamp_seconds > 0)``."""
        out = self.empty()
        last = self.gauge("ecash_last_processed_timestamp_seconds", agg="max").get((), self.empty())
        for i, (scrape, value) in enumerate(zip(self.scrapes, last, strict=True)):
            if value is not None and value > 0:
                out[i] = scrape.unix_s - value
        return out

    def up(self) -> Values:
        """``count(up == 1)``: no data while the target does not answer."""
        return [1.0 if scrape.up else None for scrape in self.scrapes]
