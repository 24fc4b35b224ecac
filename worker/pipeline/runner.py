"""The Kafka loop: fetch, hand to lanes; activate partitions off the rebalance path; drain on revoke.

Ownership (docs/design.md, "Ownership"): a partition assigned by the group is paused at once and
*activated* in a task of its own (activation.py), so heartbeats go on however long it takes. Offsets are
committed only inside the partition's transactions (ownership.py, commits.py), together with the results
they free. A partition whose writer is fenced or dies is dropped at once and activated again if the group
still assigns it.

The runner builds no Kafka client: its consumers come from factories (worker/kafka/clients.py, wired by
worker/service.py), called when the loop starts. The parts, by concern: dispatch.py (message -> job),
backpressure.py (what to fetch), commits.py (what each partition commits), lag.py (the lag gauges),
decisions.py (the review decisions feed), activation.py (taking a partition).

Memory: at most ``max_buffered`` commands are held; past that, fetching pauses until lanes catch up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from worker.clock import Clock
from worker.events import EventSink, PartitionFenced, PartitionsChanged, PipelineSnapshot
from worker.kafka.reading import seek_to_log_start
from worker.pipeline import activation, backpressure
from worker.pipeline.claims_index import ClaimsIndex
from worker.pipeline.commits import StreamOffsets
from worker.pipeline.decisions import DecisionsFeed
from worker.pipeline.dispatch import FAILURES_BEFORE_DEAD_LETTER, Dispatcher, Failures
from worker.pipeline.gate import Gate
from worker.pipeline.journal import Journal
from worker.pipeline.lag import EndOffsets, age_s, highwater, lag_messages
from worker.pipeline.lanes import Lanes
from worker.pipeline.ownership import PartitionWriter, ProducerFactory, WriterPolicy, transactional_id
from worker.pipeline.processor import Job, Processor
from worker.settings import Settings

__all__ = ["FAILURES_BEFORE_DEAD_LETTER", "RestoreFailed", "Runner"]

log = logging.getLogger("ecash_worker.runner")

REACTIVATE_AFTER_S = 1.0
CLAIMS_CATCH_UP_S = 600.0  # reading the whole claims topic at start (a fresh store), before any partition
ConsumerFactory = Callable[[], Any]


class RestoreFailed(Exception):
    """A partition could not be activated after ``restore_attempts``: the worker stops (not ready)."""


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._runner.release_partitions(
            {tp.partition for tp in revoked if tp.topic == self._runner.topic}
        )

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._runner.take_partitions({tp.partition for tp in assigned if tp.topic == self._runner.topic})


class Runner:
    def __init__(
        self,
        *,
        settings: Settings,
        processor: Processor,
        journal: Journal,
        gate: Gate,
        sink: EventSink,
        logged_in: Callable[[], bool],
        consumer_factory: ConsumerFactory,
        decisions_consumer_factory: ConsumerFactory,
        producer_factory: ProducerFactory,
        clock: Clock,
        claims: ClaimsIndex | None = None,
    ) -> None:
        self._settings = settings
        self._claims = claims
        self.topic = settings.commands_topic
        self.decisions_topic = settings.review_decisions_topic
        self._processor = processor
        self._journal = journal
        self._gate = gate
        self._sink = sink
        self._logged_in = logged_in
        self._make_consumer = consumer_factory
        self._make_decisions_consumer = decisions_consumer_factory
        self._producer_factory = producer_factory
        self._clock = clock
        self._writer_policy = WriterPolicy(
            flush_interval_s=settings.txn_flush_interval_s,
            max_batch_records=settings.txn_max_records,
            start_timeout_s=settings.activation_timeout_s,
            commit_timeout_s=settings.activation_timeout_s,
            offset_interval_s=settings.commit_interval_s,
        )
        self._offsets = StreamOffsets(self.topic, self.decisions_topic)
        self._lanes: Lanes[Job] = Lanes(run=self._run_job, max_in_flight=settings.max_in_flight)
        self._failures = Failures()
        self._dispatch = Dispatcher(
            commands_topic=self.topic,
            decisions_topic=self.decisions_topic,
            max_bytes=settings.command_max_bytes,
            framing=settings.commands_framing,
            journal=journal,
            offsets=self._offsets,
            lanes=self._lanes,
            failures=self._failures,
            sink=sink,
        )
        # Review decisions: consumed (assigned, paused unless owned) with their commands partition, their
        # offsets committed in the same transactions.
        self._decisions = DecisionsFeed(self.decisions_topic, self._offsets.decisions, lambda: self._owned)
        self._end_offsets = EndOffsets(self.topic, clock)
        self._owned: set[int] = set()
        self._assigned: set[int] = set()
        self._writers: dict[int, PartitionWriter] = {}
        self._activations: dict[int, asyncio.Task[None]] = {}
        self._needs_reset: set[int] = set()
        self._full_since_s: float | None = None  # when the buffer reached ECASH_MAX_BUFFERED (monotonic)
        self._stopping = asyncio.Event()
        self._last_processed_s = 0.0
        self._heartbeat_s = clock.now().timestamp()
        self._consuming = False
        self.fatal: str | None = None
        self._consumer: Any = None  # built when the loop starts: a stop during start-up leaves none behind

    # --- the loop --------------------------------------------------------------------------
    async def run(self) -> None:
        if self._claims is not None:
            # Every claim committed so far is known before any partition is taken (claims_index.py).
            await self._claims.start(timeout_s=CLAIMS_CATCH_UP_S)
        await self._decisions.start(self._make_decisions_consumer())
        await self._decisions.assign()
        self._consumer = self._make_consumer()
        await self._consumer.start()
        self._decisions.use_group_offsets(self._consumer.committed)
        self._consumer.subscribe([self.topic], listener=_Rebalance(self))
        lag_watch = asyncio.create_task(
            self._end_offsets.run(lambda: self._consumer, lambda: self._owned), name="end-offsets"
        )
        decisions = asyncio.create_task(
            self._decisions.run(self._stopping, self._accepts, self._dispatch.decision),
            name="review-decisions",
        )
        try:
            await self._fetch_loop()
        finally:
            self._consuming = False
            lag_watch.cancel()
            decisions.cancel()
            await asyncio.gather(decisions, return_exceptions=True)
            await self._shutdown()
        if self.fatal is not None:
            raise RestoreFailed(self.fatal)

    async def _fetch_loop(self) -> None:
        while not self._stopping.is_set():
            if self._claims is not None and self._claims.failure is not None:
                self.fatal = self._claims.failure
                log.error("%s; stopping (not ready)", self.fatal)
                return
            full_for_s = self._full_for_s()
            if await self._waited_for_room(full_for_s):
                continue
            self._apply_backpressure(full_for_s)
            room = backpressure.fetch_max_records(
                buffered=self._lanes.buffered, max_buffered=self._settings.max_buffered
            )
            try:
                batch = await self._consumer.getmany(timeout_ms=200, max_records=room)
            except KafkaError as exc:
                log.warning("kafka fetch failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            for tp, messages in batch.items():
                if not self._accepts(tp.partition):
                    continue  # read again from the committed (or reset) offset once active
                for message in messages:
                    self._dispatch.command(message)

    def _accepts(self, partition: int) -> bool:
        """Messages of an owned partition are taken, unless it waits to be rewound after a failure."""
        return partition not in self._needs_reset and partition in self._owned

    def stop(self) -> None:
        self._stopping.set()

    async def _run_job(self, job: Job) -> None:
        job.writer = self._writers.get(job.partition)
        try:
            finished = await self._processor.handle(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Unknown failure (a bug, an unexpected value): never commit past it. The job is abandoned and
            # its partition rewound; its journal record (if any) lets the retry carry on. After
            # FAILURES_BEFORE_DEAD_LETTER failures before any intent, the message is dead-lettered.
            count = self._failures.record(job.partition, job.offset, type(exc).__name__)
            log.exception(
                "command at %s[%d]@%d failed (%d time(s)); it will be retried from the journal",
                self.topic,
                job.partition,
                job.offset,
                count,
            )
            # Cancel the rest of this partition's lanes: a later command for the same MSISDN must not
            # overtake.
            self._lanes.cancel_partitions({job.partition})
            self._needs_reset.add(job.partition)
            return
        if finished:
            self._failures.clear(job.partition, job.offset)
            self._last_processed_s = self._clock.now().timestamp()

    # --- backpressure and rewinds -------------------------------------------------------------
    def _full_for_s(self) -> float:
        """How long the buffer has been at its bound (0 when it is not)."""
        if self._lanes.buffered < self._settings.max_buffered:
            self._full_since_s = None
            return 0.0
        now_s = self._clock.monotonic_s()
        if self._full_since_s is None:
            self._full_since_s = now_s
        return now_s - self._full_since_s

    async def _waited_for_room(self, full_for_s: float) -> bool:
        """At the bound (briefly): wait for a lane to drain without fetching or pausing; True if it waited."""
        if not backpressure.wait_for_room(
            fatal=self._gate.fatal,
            buffered=self._lanes.buffered,
            max_buffered=self._settings.max_buffered,
            full_for_s=full_for_s,
        ):
            return False
        await self._lanes.wait_room(self._settings.max_buffered, backpressure.FULL_PATIENCE_S - full_for_s)
        return True

    def _apply_backpressure(self, full_for_s: float) -> None:
        assigned = self._consumer.assignment() if self._consumer is not None else set()
        if not assigned:
            return
        hold = backpressure.hold_all(
            fatal=self._gate.fatal,
            buffered=self._lanes.buffered,
            max_buffered=self._settings.max_buffered,
            full_for_s=full_for_s,
        )
        changes = backpressure.pause_changes(
            assigned, self._consumer.paused(), owned=self._owned, needs_reset=self._needs_reset, hold=hold
        )
        if changes.pause:
            self._consumer.pause(*changes.pause)
        if changes.resume:
            self._consumer.resume(*changes.resume)
        if self._needs_reset:
            self._reset_failed_partitions()

    def _reset_failed_partitions(self) -> None:
        """Rewind partitions whose command failed unexpectedly to their last committable offset."""
        running = {job.partition for job in self._lanes.running_jobs()}
        for partition in backpressure.resettable(list(self._needs_reset), running):
            offset, decided = self._offsets.rewind_points(partition)
            tp = TopicPartition(self.topic, partition)
            if offset is not None and tp in self._consumer.assignment():
                self._consumer.seek(tp, offset)
            self._decisions.rewind(partition, decided)
            self._needs_reset.discard(partition)

    async def heartbeat_loop(self, every_s: float = 1.0) -> None:
        """Proves the event loop turns (for /healthz), whatever Kafka is doing."""
        while True:
            self._heartbeat_s = self._clock.now().timestamp()
            await asyncio.sleep(every_s)

    # --- ownership -------------------------------------------------------------------------
    def take_partitions(self, partitions: set[int]) -> None:
        """The assignment callback: pause what is new and activate it in the background (no blocking)."""
        self._assigned |= partitions
        new = activation.to_activate(partitions, self._owned, set(self._activations))
        if new:
            self._consumer.pause(*[TopicPartition(self.topic, p) for p in new])
        for partition in new:
            self._activations[partition] = asyncio.create_task(
                self._activate(partition), name=f"activate-{partition}"
            )
        self._consuming = True  # joined the group (an empty assignment counts: a spare replica)
        self._sink.emit(PartitionsChanged(assigned=tuple(sorted(partitions)), revoked=()))

    async def _activate(self, partition: int) -> None:
        """Fence the previous owner, restore the journal, seek to the committed offset; then take work."""
        attempts = self._settings.restore_attempts
        try:
            activated = await activation.activate_with_retries(
                partition,
                attempts,
                once=lambda: self._activate_once(partition),
                undo=lambda: self._deactivate(partition, flush=False),
                clock=self._clock,
            )
            if not activated:
                self.fatal = f"partition {partition} could not be activated after {attempts} attempts"
                log.error("%s; stopping (not ready)", self.fatal)
                self.stop()
        finally:
            self._activations.pop(partition, None)

    def _writer(self, partition: int) -> PartitionWriter:
        return PartitionWriter(
            partition=partition,
            txn_id=transactional_id(self._settings.group_id, self.topic, partition),
            group_id=self._settings.group_id,
            producer_factory=self._producer_factory,
            clock=self._clock,
            policy=self._writer_policy,
            mark_done=lambda stream, offset: self._offsets.of(stream).of(partition).done(offset),
            committable=lambda: self._offsets.committable(partition),
            offset_key=lambda stream: TopicPartition(self._offsets.topic_of(stream), partition),
            on_lost=self._partition_lost,
            sink=self._sink,
        )

    async def _activate_once(self, partition: int) -> None:
        tp = TopicPartition(self.topic, partition)
        writer = self._writers[partition] = self._writer(partition)
        records = await activation.restore(
            partition,
            writer,
            self._journal,
            self._claims,
            commands_topic=self.topic,
            claims_timeout_s=self._settings.activation_timeout_s,
            dedupe_window_s=self._settings.dedupe_window_s,
            sink=self._sink,
            clock=self._clock,
        )
        committed = await self._consumer.committed(tp)
        if tp not in self._consumer.assignment():
            await self._deactivate(partition, flush=False)  # revoked meanwhile
            return
        self._offsets.forget(partition)
        if committed is None:
            seek_to_log_start(self._consumer, tp)
        else:
            self._consumer.seek(tp, committed)
        await self._decisions.seek(partition)
        self._owned.add(partition)
        self._decisions.hold(partition, hold=False)
        log.info("partition %d active (journal: %d records restored)", partition, records)

    def _partition_lost(self, partition: int, reason: str) -> None:
        """The writer was fenced or died: drop the partition now; activate it again if still assigned."""
        self._sink.emit(PartitionFenced(partition, reason))
        if partition in self._activations:
            return  # the activation itself failed: it retries
        self._owned.discard(partition)
        self._lanes.cancel_partitions({partition})
        self._activations[partition] = asyncio.create_task(
            self._reactivate(partition), name=f"reactivate-{partition}"
        )

    async def _reactivate(self, partition: int) -> None:
        await self._deactivate(partition, flush=False)
        await self._clock.sleep_s(REACTIVATE_AFTER_S)
        self._activations.pop(partition, None)
        if partition in self._assigned and not self._stopping.is_set():
            self.take_partitions({partition})

    async def _deactivate(self, partition: int, *, flush: bool) -> None:
        writer = self._writers.pop(partition, None)
        if writer is not None:
            await writer.close(flush=flush, timeout_s=self._settings.drain_timeout_s)
        self._journal.release(partition)
        self._offsets.forget(partition)
        self._decisions.hold(partition, hold=True)

    async def release_partitions(self, partitions: set[int]) -> None:
        """Revocation, bounded: stop activations, drain what runs (``drain_timeout_s``), flush, let go."""
        self._assigned -= partitions
        for partition in partitions:
            task = self._activations.pop(partition, None)
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        partitions = partitions & (self._owned | self._writers.keys())
        if not partitions:
            return
        # From here no new command of these partitions starts; what runs may finish within the bound.
        self._owned -= partitions
        running = self._lanes.cancel_partitions(partitions)
        tasks = self._lanes.tasks_of(running)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self._settings.drain_timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for partition in partitions:
            await self._deactivate(partition, flush=True)
        self._sink.emit(PartitionsChanged(assigned=(), revoked=tuple(sorted(partitions))))

    async def _shutdown(self) -> None:
        await self.release_partitions(set(self._assigned) | set(self._owned) | set(self._writers))
        if self._claims is not None:
            await self._claims.stop()
        await self._decisions.stop()
        if self._consumer is None:
            return
        try:
            await self._consumer.stop()
        except KafkaError as exc:
            log.warning("consumer stop: %s", exc)

    # --- what the health endpoints and metrics read --------------------------------------------
    def snapshot(self) -> PipelineSnapshot:
        lag: dict[int, int] = {}
        lag_s: dict[int, float] = {}
        now_s = self._clock.now().timestamp()
        for partition in self._owned:
            tracker = self._offsets.commands.of(partition)
            high = highwater(self._consumer, TopicPartition(self.topic, partition))
            behind = lag_messages(
                high, self._end_offsets.ends.get(partition), tracker.committable(), tracker.committed
            )
            if behind is not None:
                lag[partition] = behind
            lag_s[partition] = age_s(now_s, tracker.oldest_pending_timestamp_ms())
        review_open, review_oldest_ms = self._journal.open_reviews()
        return PipelineSnapshot(
            in_flight=self._lanes.in_flight,
            waiting=self._lanes.waiting,
            resolving=self._processor.resolving,
            assigned_partitions=tuple(sorted(self._owned)),
            lag_messages=lag,
            lag_seconds=lag_s,
            last_processed_unix_s=self._last_processed_s,
            breaker_state=str(self._gate.breaker.state),
            logged_in=self._logged_in(),
            consuming=self._consuming and self.fatal is None,
            fatal=self._gate.fatal or self.fatal,
            loop_heartbeat_unix_s=self._heartbeat_s,
            review_open=review_open,
            review_open_oldest_s=age_s(now_s, review_oldest_ms),
        )
