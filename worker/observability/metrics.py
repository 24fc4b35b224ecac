"""Prometheus metrics: domain events in, counters and histograms out; levels read from a snapshot at scrape.

``Metrics.hook`` is handed to ``FanOut`` with the other hooks; ``set_snapshot_source`` gives the pipeline's
gauges (in flight, lag, breaker state, ...) which are read when Prometheus scrapes, never pushed.

Every label is bounded: values outside a known set become ``other`` and nothing per-command (MSISDN,
trace number) is ever a label. Known label values are exported at zero from the start, so that
``increase()`` sees the first event and dashboards show a flat line rather than "no data".
The catalogue of every name is ``docs/metrics.md``; a test checks dashboards and alerts use real names.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Callable, Iterable, Iterator
from functools import singledispatchmethod
from typing import Literal, get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    disable_created_metrics,
    gc_collector,
    platform_collector,
    process_collector,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from worker import __version__
from worker.contracts import CommandType, Outcome, ResolvedBy
from worker.core.breaker import BreakerState
from worker.core.resolution import AnswerKind, ConcludeOutcome, TransportClass
from worker.ecash.codes import canonical
from worker.ecash.wire import Operation
from worker.events import (
    ApiCallFinished,
    BreakerProbed,
    BreakerStateChanged,
    ClaimReadBack,
    CommandConsumed,
    CommandRejected,
    DeadLettered,
    DeadLetterLabel,
    Event,
    FatalConfiguration,
    JournalRestored,
    LoginFinished,
    LoginKind,
    LoopLagged,
    NoCommandType,
    PartitionFenced,
    PartitionsChanged,
    PipelineSnapshot,
    ProbeResult,
    RejectReason,
    ResolutionFinished,
    ResolutionStarted,
    ResultPublished,
    RetryReason,
    RetryScheduled,
    StatusInquiryAnswered,
    TransactionCommitted,
)

__all__ = [
    "API_BUCKETS_S",
    "BREAKER_STATES",
    "COMMAND_TYPES",
    "COMMON_CODES",
    "DEAD_LETTER_REASONS",
    "END_TO_END_BUCKETS_S",
    "INQUIRY_ANSWERS",
    "LOGIN_KINDS",
    "LOGIN_RESULTS",
    "OPERATIONS",
    "OTHER",
    "OUTCOMES",
    "PARTITION_CHANGES",
    "PROBE_RESULTS",
    "REJECT_REASONS",
    "RESOLUTION_BUCKETS_S",
    "RESOLUTION_OUTCOMES",
    "RESOLUTION_REASONS",
    "RESOLVED_BY",
    "RESTORE_BUCKETS_S",
    "RETRY_REASONS",
    "TRANSPORT_CLASSES",
    "LoginResult",
    "Metrics",
    "PartitionChange",
    "code_label",
    "one_of",
    "word_label",
]

OTHER = "other"
# Every fixed label set is derived from the type its event field carries (worker/events.py and what it
# names), so a value mypy accepts in an event is a value pre-created here.
PartitionChange = Literal["assigned", "revoked", "lost"]  # lost: fenced by a new owner, or the producer died
LoginResult = Literal["ok", "failed"]
TRANSPORT_CLASSES: tuple[TransportClass, ...] = get_args(TransportClass)
COMMON_CODES = ("PROCESSED", "TOKEN_EXPIRED", *TRANSPORT_CLASSES)
OPERATIONS = tuple(op.value for op in Operation)
COMMAND_TYPES = (*(t.value for t in CommandType), *get_args(NoCommandType))
OUTCOMES = tuple(o.value for o in Outcome)
RESOLVED_BY = tuple(r.value for r in ResolvedBy)
BREAKER_STATES = tuple(s.value for s in BreakerState)
LOGIN_KINDS: tuple[LoginKind, ...] = get_args(LoginKind)
LOGIN_RESULTS: tuple[LoginResult, ...] = get_args(LoginResult)
INQUIRY_ANSWERS: tuple[AnswerKind, ...] = get_args(AnswerKind)
RESOLUTION_OUTCOMES: tuple[ConcludeOutcome, ...] = get_args(ConcludeOutcome)
RETRY_REASONS: tuple[RetryReason, ...] = get_args(RetryReason)
REJECT_REASONS: tuple[RejectReason, ...] = get_args(RejectReason)
DEAD_LETTER_REASONS: tuple[DeadLetterLabel, ...] = get_args(DeadLetterLabel)
RESOLUTION_REASONS = ("read_timeout", "http_5xx", OTHER)  # an open vocabulary: these are pre-created only
PARTITION_CHANGES: tuple[PartitionChange, ...] = get_args(PartitionChange)
PROBE_RESULTS = tuple(r.value for r in ProbeResult)

API_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
END_TO_END_BUCKETS_S = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    900.0,
)
RESOLUTION_BUCKETS_S = (1.0, 5.0, 10.0, 20.0, 40.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0)
# a transaction, a claim's read-back: milliseconds on a healthy cluster, seconds when it is not
WRITE_BUCKETS_S = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
LAG_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
RESTORE_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

_WORD_SHAPE = re.compile(r"[a-z][a-z0-9_]{0,31}")


def code_label(code: str) -> str:
    """A response code (as the catalogue spells it) or transport class; anything else becomes ``other``.

    Only the 51 codes of the spec's catalogue (plus the transport classes) can become label values, so an
    API that starts answering garbage cannot blow up the series count.
    """
    if code in TRANSPORT_CLASSES:
        return code
    return canonical(code) or OTHER


def one_of(value: str, allowed: Iterable[str]) -> str:
    """``value`` when it is one of ``allowed``, else ``other``: for closed vocabularies."""
    return value if value in allowed else OTHER


def word_label(value: str) -> str:
    """A short lower-case reason word (``not_json``, ``read_timeout``), else ``other``: open vocabularies."""
    return value if _WORD_SHAPE.fullmatch(value) else OTHER


class Metrics:
    """Owns a registry with the worker's metrics plus the process, platform and GC collectors."""

    def __init__(self) -> None:
        # No *_created series: they double the series count and no dashboard reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self._snapshot_source: Callable[[], PipelineSnapshot] | None = None
        self._fatal_reason: str | None = None
        self._define_counters()
        self._define_histograms()
        self._preexport()
        build = Info("ecash_build", "Version of the worker and of Python", registry=self.registry)
        build.info({"version": __version__, "python_version": platform.python_version()})
        process_collector.ProcessCollector(registry=self.registry)
        platform_collector.PlatformCollector(registry=self.registry)
        gc_collector.GCCollector(registry=self.registry)
        self.registry.register(_SnapshotCollector(self))

    def _counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(name, doc, labels, registry=self.registry)

    def _histogram(
        self, name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]
    ) -> Histogram:
        return Histogram(name, doc, labels, buckets=buckets, registry=self.registry)

    def _define_counters(self) -> None:
        c = self._counter
        self.commands_consumed = c(
            "ecash_commands_consumed", "Command messages taken from the commands topic"
        )
        self.results = c("ecash_results", "Results published", ("type", "outcome", "resolved_by"))
        self.api_calls = c("ecash_api_calls", "HTTP exchanges with the E-Cash API", ("operation", "code"))
        self.retries = c("ecash_retries", "Retries scheduled", ("operation", "reason"))
        self.logins = c("ecash_logins", "Logins to the API", ("kind", "result"))
        self.dead_letters = c("ecash_dead_letters", "Messages sent to the dead-letter topic", ("reason",))
        self.rejected = c("ecash_commands_rejected", "Commands rejected without calling the API", ("reason",))
        self.resolutions_started = c(
            "ecash_resolutions_started", "Ambiguous outcomes sent to resolution", ("reason",)
        )
        self.resolutions_finished = c("ecash_resolutions_finished", "Resolutions ended", ("outcome",))
        self.status_inquiries = c("ecash_status_inquiries", "Status Inquiry answers", ("answer",))
        self.journal_records = c("ecash_journal_records_restored", "Journal records read back on assignment")
        self.transaction_records = c(
            "ecash_transaction_records", "Records written in the partition writers' transactions"
        )
        self.breaker_transitions = c("ecash_breaker_transitions", "Circuit breaker state changes", ("state",))
        self.partition_changes = c(
            "ecash_partition_changes", "Partitions assigned, revoked, or lost (fenced)", ("change",)
        )
        self.breaker_probes = c("ecash_breaker_probes", "Background breaker probes, by result", ("result",))

    def _define_histograms(self) -> None:
        h = self._histogram
        self.api_latency = h(
            "ecash_api_call_duration_seconds", "Duration of one API exchange", ("operation",), API_BUCKETS_S
        )
        self.end_to_end = h(
            "ecash_end_to_end_duration_seconds",
            "From the command's Kafka timestamp to its result's publication",
            ("outcome",),
            END_TO_END_BUCKETS_S,
        )
        self.resolution_duration = h(
            "ecash_resolution_duration_seconds",
            "Time spent resolving one ambiguous outcome",
            ("outcome",),
            RESOLUTION_BUCKETS_S,
        )
        self.transaction_wait = h(
            "ecash_transaction_wait_seconds",
            "From a transaction's first write to its beginning (the linger, or the transaction before it)",
            (),
            WRITE_BUCKETS_S,
        )
        self.transaction_duration = h(
            "ecash_transaction_duration_seconds",
            "One transaction of a partition's writer, from its beginning to its commit",
            (),
            WRITE_BUCKETS_S,
        )
        self.loop_lag = h(
            "ecash_event_loop_lag_seconds",
            "How much later than asked the event loop ran a timer (every 0.25 s): CPU starvation",
            (),
            LAG_BUCKETS_S,
        )
        self.claim_read_back = h(
            "ecash_claim_read_back_seconds",
            "From writing a command's claim to reading it back from the claims index",
            (),
            WRITE_BUCKETS_S,
        )
        self.restore_duration = h(
            "ecash_journal_restore_duration_seconds",
            "Time to restore one partition's journal",
            (),
            RESTORE_BUCKETS_S,
        )

    def _preexport(self) -> None:
        for t in COMMAND_TYPES:
            for o in OUTCOMES:
                for r in RESOLVED_BY:
                    self.results.labels(t, o, r)
        for op in OPERATIONS:
            self.api_latency.labels(op)
            for code in COMMON_CODES:
                self.api_calls.labels(op, code)
            for reason in RETRY_REASONS:
                self.retries.labels(op, reason)
        _zero(self.logins, [(k, r) for k in LOGIN_KINDS for r in LOGIN_RESULTS])
        _zero(self.dead_letters, [(r,) for r in DEAD_LETTER_REASONS])
        _zero(self.rejected, [(r,) for r in REJECT_REASONS])
        _zero(self.resolutions_started, [(r,) for r in RESOLUTION_REASONS])
        _zero(self.resolutions_finished, [(o,) for o in RESOLUTION_OUTCOMES])
        _zero(self.status_inquiries, [(a,) for a in INQUIRY_ANSWERS])
        _zero(self.breaker_transitions, [(s,) for s in BREAKER_STATES])
        _zero(self.partition_changes, [(c,) for c in PARTITION_CHANGES])
        _zero(self.breaker_probes, [(r,) for r in PROBE_RESULTS])
        for o in OUTCOMES:
            self.end_to_end.labels(o)
        for o in RESOLUTION_OUTCOMES:
            self.resolution_duration.labels(o)

    def set_snapshot_source(self, source: Callable[[], PipelineSnapshot]) -> None:
        """Where scrape-time gauges come from; called on every scrape, so it must be cheap and not block.

        Once set, the snapshot's ``fatal`` is the truth (a fatal error can be cleared when credentials
        are fixed; no event says so). Without a source, a ``FatalConfiguration`` event sets the gauge.
        """
        self._snapshot_source = source

    def snapshot(self) -> PipelineSnapshot | None:
        """The pipeline's levels now; None when no source is set."""
        return None if self._snapshot_source is None else self._snapshot_source()

    @property
    def fatal_reason(self) -> str | None:
        """The last ``FatalConfiguration`` reason seen as an event (never cleared: see the snapshot)."""
        return self._fatal_reason

    @singledispatchmethod
    def hook(self, event: Event) -> None:
        """Turn one domain event into metrics (one registered handler per event type below; an event
        without one leaves no metric). Never raises on an unknown label value."""

    @hook.register
    def _(self, event: ApiCallFinished) -> None:
        op = one_of(event.operation, OPERATIONS)
        self.api_calls.labels(op, code_label(event.code)).inc()
        self.api_latency.labels(op).observe(max(0.0, event.duration_s))

    @hook.register
    def _(self, event: LoginFinished) -> None:
        result: LoginResult = "ok" if event.ok else "failed"
        self.logins.labels(one_of(event.kind, LOGIN_KINDS), result).inc()

    @hook.register
    def _(self, event: RetryScheduled) -> None:
        self.retries.labels(one_of(event.operation, OPERATIONS), word_label(event.reason)).inc()

    @hook.register
    def _(self, event: CommandConsumed) -> None:
        self.commands_consumed.inc()

    @hook.register
    def _(self, event: CommandRejected) -> None:
        self.rejected.labels(word_label(event.reason)).inc()

    @hook.register
    def _(self, event: DeadLettered) -> None:
        self.dead_letters.labels(word_label(event.reason)).inc()

    @hook.register
    def _(self, event: ResultPublished) -> None:
        self._on_result(event)

    @hook.register
    def _(self, event: ResolutionStarted) -> None:
        self.resolutions_started.labels(word_label(event.reason)).inc()

    @hook.register
    def _(self, event: StatusInquiryAnswered) -> None:
        self.status_inquiries.labels(one_of(event.answer, INQUIRY_ANSWERS)).inc()

    @hook.register
    def _(self, event: ResolutionFinished) -> None:
        outcome = one_of(event.outcome, RESOLUTION_OUTCOMES)
        self.resolutions_finished.labels(outcome).inc()
        self.resolution_duration.labels(outcome).observe(max(0.0, event.duration_s))

    @hook.register
    def _(self, event: TransactionCommitted) -> None:
        self.transaction_records.inc(max(0, event.records))
        self.transaction_wait.observe(max(0.0, event.waited_s))
        self.transaction_duration.observe(max(0.0, event.commit_s))

    @hook.register
    def _(self, event: LoopLagged) -> None:
        self.loop_lag.observe(max(0.0, event.seconds))

    @hook.register
    def _(self, event: ClaimReadBack) -> None:
        self.claim_read_back.observe(max(0.0, event.seconds))

    @hook.register
    def _(self, event: JournalRestored) -> None:
        self.journal_records.inc(max(0, event.records))
        self.restore_duration.observe(max(0.0, event.duration_s))

    @hook.register
    def _(self, event: BreakerStateChanged) -> None:
        self.breaker_transitions.labels(one_of(event.state, BREAKER_STATES)).inc()

    @hook.register
    def _(self, event: BreakerProbed) -> None:
        self.breaker_probes.labels(one_of(event.result, PROBE_RESULTS)).inc()

    @hook.register
    def _(self, event: FatalConfiguration) -> None:
        self._fatal_reason = event.reason

    @hook.register
    def _(self, event: PartitionsChanged) -> None:
        self._partitions("assigned", len(event.assigned))
        self._partitions("revoked", len(event.revoked))

    @hook.register
    def _(self, event: PartitionFenced) -> None:
        self._partitions("lost", 1)

    def _partitions(self, change: PartitionChange, count: int) -> None:
        self.partition_changes.labels(change).inc(count)

    def _on_result(self, event: ResultPublished) -> None:
        outcome = one_of(event.outcome, OUTCOMES)
        labels = (one_of(event.command_type, COMMAND_TYPES), outcome, one_of(event.resolved_by, RESOLVED_BY))
        self.results.labels(*labels).inc()
        if event.end_to_end_s is not None:
            self.end_to_end.labels(outcome).observe(max(0.0, event.end_to_end_s))


def _zero(counter: Counter, label_sets: list[tuple[str, ...]]) -> None:
    for values in label_sets:
        counter.labels(*values)


def _flag(name: str, doc: str, value: bool) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=1.0 if value else 0.0)


class _SnapshotCollector(Collector):
    """Gauges read from the pipeline at scrape time. A failing source drops these gauges, never the scrape."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return list(self._families(PipelineSnapshot(), False))

    def collect(self) -> Iterable[Metric]:
        event_fatal = self._metrics.fatal_reason is not None
        try:
            snap = self._metrics.snapshot()
        except Exception:  # noqa: BLE001 - a scrape must not fail because the pipeline is mid-change
            yield _flag("ecash_fatal_configuration", _FATAL_DOC, event_fatal)
            return
        if snap is None:
            yield from self._families(PipelineSnapshot(), event_fatal)
        else:
            yield from self._families(snap, snap.fatal is not None)

    def _families(self, snap: PipelineSnapshot, fatal: bool) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "ecash_commands_in_flight", "Commands being sent to the API", value=snap.in_flight
        )
        yield GaugeMetricFamily(
            "ecash_commands_waiting", "Commands buffered behind their MSISDN", value=snap.waiting
        )
        yield GaugeMetricFamily(
            "ecash_commands_resolving", "Ambiguous commands in resolution", value=snap.resolving
        )
        yield GaugeMetricFamily(
            "ecash_assigned_partitions",
            "Partitions of the commands topic this worker owns",
            value=len(snap.assigned_partitions),
        )
        yield _per_partition("ecash_consumer_lag_messages", "Messages not yet processed", snap.lag_messages)
        yield _per_partition(
            "ecash_consumer_lag_seconds", "Age of the oldest unprocessed message", snap.lag_seconds
        )
        yield GaugeMetricFamily(
            "ecash_last_processed_timestamp_seconds",
            "Unix time of the last published result (0: none yet)",
            value=snap.last_processed_unix_s,
        )
        breaker = GaugeMetricFamily(
            "ecash_breaker_state", "1 for the breaker's current state", labels=["state"]
        )
        for state in BREAKER_STATES:
            breaker.add_metric([state], 1.0 if snap.breaker_state == state else 0.0)
        yield breaker
        yield _flag("ecash_logged_in", "1 while the worker holds an API session token", snap.logged_in)
        yield _flag("ecash_consuming", "1 while the consumer runs and has joined its group", snap.consuming)
        yield _flag("ecash_fatal_configuration", _FATAL_DOC, fatal)
        yield GaugeMetricFamily(
            "ecash_review_open",
            "Open review items (unresolved outcomes no decision has closed) in this worker's partitions",
            value=snap.review_open,
        )
        yield GaugeMetricFamily(
            "ecash_review_open_oldest_seconds",
            "Age of the oldest open review item in this worker's partitions (0: none)",
            value=snap.review_open_oldest_s,
        )


_FATAL_DOC = "1 when the worker stopped moving money on a configuration error (e.g. credentials refused)"


def _per_partition(name: str, doc: str, values: dict[int, int] | dict[int, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=["partition"])
    for partition, value in sorted(values.items()):
        family.add_metric([str(partition)], float(value))
    return family
