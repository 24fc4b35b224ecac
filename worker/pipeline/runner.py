"""The Kafka loop: fetch, hand to lanes; activate partitions off the rebalance path; drain on revoke.

Ownership (docs/design.md, "Ownership"): a partition assigned by the group is paused at once and
*activated* in a task of its own, so heartbeats go on however long it takes: its transactional producer is
started (which fences the previous owner), its journal restored (``read_committed``), the consumer seeks
to its committed offset, and only then does it take commands. Offsets are committed only inside the
partition's transactions (ownership.py), together with the results they free. A partition whose writer is
fenced or dies is dropped at once and activated again if the group still assigns it.

Memory: at most ``max_buffered`` commands are held; past that, fetching pauses until lanes catch up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from worker.clock import Clock
from worker.observability.events import (
    CommandConsumed,
    EventSink,
    JournalRestored,
    PartitionFenced,
    PartitionsChanged,
    PipelineSnapshot,
)
from worker.pipeline.claims import claim_tombstone
from worker.pipeline.claims_index import ClaimsIndex
from worker.pipeline.gate import Gate
from worker.pipeline.intake import DeadLetterReason, Decision, Intake, Parsed, parse_command
from worker.pipeline.journal import Journal, JournalState
from worker.pipeline.key_rule import on_commands_topic
from worker.pipeline.lanes import Lanes
from worker.pipeline.offsets import OffsetTracker
from worker.pipeline.ownership import (
    COMMANDS,
    DECISIONS,
    PartitionWriter,
    ProducerFactory,
    WriterPolicy,
    transactional_id,
)
from worker.pipeline.processor import Job, Processor
from worker.settings import Settings

log = logging.getLogger("ecash_worker.runner")

FAILURES_BEFORE_DEAD_LETTER = 3  # an unexpected error on one message, before any money call
REACTIVATE_AFTER_S = 1.0
CLAIMS_CATCH_UP_S = 600.0  # reading the whole claims topic at start (a fresh store), before any partition


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
        consumer_factory: Callable[[], Any],
        decisions_consumer_factory: Callable[[], Any],
        producer_factory: ProducerFactory,
        clock: Clock,
        claims: ClaimsIndex | None = None,
    ) -> None:
        self._settings = settings
        self._claims = claims
        self.topic = settings.commands_topic
        self._processor = processor
        self._journal = journal
        self._gate = gate
        self._sink = sink
        self._logged_in = logged_in
        self._producer_factory = producer_factory
        self._clock = clock
        self._writer_policy = WriterPolicy(
            flush_interval_s=settings.txn_flush_interval_s,
            max_batch_records=settings.txn_max_records,
            start_timeout_s=settings.activation_timeout_s,
            commit_timeout_s=settings.activation_timeout_s,
        )
        self._offsets = OffsetTracker()
        # Review decisions: the decisions topic is co-partitioned with the commands; its partition is
        # consumed (assigned, paused unless owned) with its commands partition, its offsets committed in
        # the same transactions.
        self.decisions_topic = settings.review_decisions_topic
        self._decision_offsets = OffsetTracker()
        self._decisions: Any = None
        self._make_decisions_consumer = decisions_consumer_factory
        self._lanes: Lanes[Job] = Lanes(run=self._run_job, max_in_flight=settings.max_in_flight)
        self._owned: set[int] = set()
        self._assigned: set[int] = set()
        self._writers: dict[int, PartitionWriter] = {}
        self._activations: dict[int, asyncio.Task[None]] = {}
        self._failures: dict[tuple[int, int], tuple[int, str]] = {}
        self._stopping = asyncio.Event()
        self._last_processed_s = 0.0
        self._heartbeat_s = time.time()
        self._consuming = False
        self.fatal: str | None = None
        self._needs_reset: set[int] = set()
        self._end_offsets: dict[int, int] = {}  # refreshed even while paused, for the lag gauge
        # Built when the loop starts: a worker stopped during start-up leaves no unclosed consumer behind.
        self._consumer: Any = None
        self._make_consumer = consumer_factory

    # --- the loop --------------------------------------------------------------------------
    async def run(self) -> None:
        if self._claims is not None:
            # Every claim committed so far is known before any partition is taken (claims_index.py).
            await self._claims.start(timeout_s=CLAIMS_CATCH_UP_S)
        self._decisions = self._make_decisions_consumer()
        await self._decisions.start()
        await self._assign_decisions()
        self._consumer = self._make_consumer()
        await self._consumer.start()
        self._consumer.subscribe([self.topic], listener=_Rebalance(self))
        lag_watch = asyncio.create_task(self._end_offsets_loop(), name="end-offsets")
        decisions = asyncio.create_task(self._decisions_loop(), name="review-decisions")
        try:
            while not self._stopping.is_set():
                if self._claims is not None and self._claims.failure is not None:
                    self.fatal = self._claims.failure
                    log.error("%s; stopping (not ready)", self.fatal)
                    break
                self._apply_backpressure()
                room = self._settings.max_buffered - self._lanes.buffered
                try:
                    batch = await self._consumer.getmany(timeout_ms=200, max_records=max(1, min(room, 1000)))
                except KafkaError as exc:
                    log.warning("kafka fetch failed: %s", exc)
                    await asyncio.sleep(0.5)
                    continue
                for tp, messages in batch.items():
                    if tp.partition in self._needs_reset or tp.partition not in self._owned:
                        continue  # read again from the committed (or reset) offset once active
                    for message in messages:
                        self._dispatch(message)
        finally:
            self._consuming = False
            lag_watch.cancel()
            decisions.cancel()
            await asyncio.gather(decisions, return_exceptions=True)
            await self._shutdown()
        if self.fatal is not None:
            raise RestoreFailed(self.fatal)

    def stop(self) -> None:
        self._stopping.set()

    # --- review decisions --------------------------------------------------------------------
    async def _assign_decisions(self) -> None:
        """Assign every partition of the decisions topic, paused; an owned one is resumed when active."""
        cluster = await self._decisions._client.fetch_all_metadata()  # no public way to refresh it
        found = cluster.partitions_for_topic(self.decisions_topic) or set()
        tps = {TopicPartition(self.decisions_topic, p) for p in found}
        if tps == set(self._decisions.assignment()):
            return
        self._decisions.assign(list(tps))
        self._decisions.pause(*tps)
        for partition in self._owned:  # a new assignment forgets positions: from what is committable
            await self._seek_decisions(partition)

    async def _seek_decisions(self, partition: int) -> None:
        tp = TopicPartition(self.decisions_topic, partition)
        if tp not in self._decisions.assignment():
            await self._assign_decisions()
            if tp not in self._decisions.assignment():
                raise RuntimeError(f"the decisions topic {self.decisions_topic} has no partition {partition}")
        offset = self._decision_offsets.of(partition).committable()
        if offset is None:
            offset = await self._consumer.committed(tp)  # the group's, committed in our transactions
        if offset is None:
            await self._decisions.seek_to_beginning(tp)
        else:
            self._decisions.seek(tp, offset)

    def _hold_decisions(self, partition: int, *, hold: bool) -> None:
        tp = TopicPartition(self.decisions_topic, partition)
        if self._decisions is None or tp not in self._decisions.assignment():
            return
        if hold:
            self._decisions.pause(tp)
        else:
            self._decisions.resume(tp)

    async def _decisions_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                batch = await self._decisions.getmany(timeout_ms=200, max_records=500)
            except KafkaError as exc:
                log.warning("review decisions fetch failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            for tp, messages in batch.items():
                if tp.partition in self._needs_reset or tp.partition not in self._owned:
                    continue  # read again from the committed offset once active
                for message in messages:
                    self._dispatch_decision(message)

    def _dispatch_decision(self, message: Any) -> None:
        intake: Intake = parse_command(message.value, max_bytes=self._settings.command_max_bytes)
        if not isinstance(intake, Decision | DeadLetterReason):
            intake = DeadLetterReason(
                "not_a_review_decision",
                f"only review decisions are read from {self.decisions_topic}; commands go to {self.topic}",
            )
        self._submit(message, intake, stream=DECISIONS)

    # --- commands ----------------------------------------------------------------------------
    def _dispatch(self, message: Any) -> None:
        parsed = parse_command(message.value, max_bytes=self._settings.command_max_bytes)
        intake = on_commands_topic(parsed, message.key, decisions_topic=self.decisions_topic)
        if isinstance(parsed, Parsed) and self._journaled(message, parsed):
            intake = parsed  # accepted before the key rule existed: carry its journal record on
        failed = self._failures.get((message.partition, message.offset))
        if (
            failed is not None
            and failed[0] >= FAILURES_BEFORE_DEAD_LETTER
            and self._no_intent(message, intake)
        ):
            intake = DeadLetterReason(
                "internal_error",
                f"handling this message failed {failed[0]} times ({failed[1]}); no money call was made",
            )
        self._sink.emit(CommandConsumed(message.partition))
        self._submit(message, intake, stream=COMMANDS)

    def _submit(self, message: Any, intake: Intake, *, stream: str) -> None:
        """Hand a message to its lane; its offset stays pending in its stream until its job commits it."""
        job = Job(
            partition=message.partition,
            offset=message.offset,
            timestamp_ms=message.timestamp,
            key=message.key,
            value=message.value,
            headers=[(k, v) for k, v in (message.headers or ())],
            intake=intake,
            stream=stream,
            topic=self.decisions_topic if stream == DECISIONS else None,
        )
        self._tracker(stream).of(message.partition).add(message.offset, message.timestamp)
        self._lanes.submit(job)

    def _journaled(self, message: Any, intake: Parsed) -> bool:
        """This very message has a journal record (accepted before the key rule): carry it on."""
        record = self._journal.get(message.partition, intake.command.trace_number)
        return record is not None and (record.partition, record.offset) == (message.partition, message.offset)

    def _no_intent(self, message: Any, intake: object) -> bool:
        """True unless the journal holds a money call in doubt for this message (that one is resolved,
        never dead-lettered)."""
        if not isinstance(intake, Parsed):
            return True
        record = self._journal.get(message.partition, intake.command.trace_number)
        return record is None or record.state is JournalState.DONE

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
            key = (job.partition, job.offset)
            count = self._failures.get(key, (0, ""))[0] + 1
            self._failures[key] = (count, type(exc).__name__)
            log.exception(
                "command at %s[%d]@%d failed (%d time(s)); it will be retried from the journal",
                self.topic,
                job.partition,
                job.offset,
                count,
            )
            self._processor_failed(job)
            return
        if finished:
            self._failures.pop((job.partition, job.offset), None)
            self._last_processed_s = time.time()

    def _processor_failed(self, job: Job) -> None:
        # Cancel the rest of this partition's lanes: a later command for the same MSISDN must not overtake.
        self._lanes.cancel_partitions({job.partition})
        self._needs_reset.add(job.partition)

    def _apply_backpressure(self) -> None:
        assigned = self._consumer.assignment() if self._consumer is not None else set()
        if not assigned:
            return
        # While the API is unhealthy (breaker not closed) fetching goes on up to the memory bound: commands
        # wait at the gate, each holding an in-flight slot, while what needs no slot (review decisions,
        # rejections, dead letters: lanes.py) is applied during the outage. Only a fatal configuration
        # error stops fetching.
        hold_all = self._gate.fatal is not None or self._lanes.buffered >= self._settings.max_buffered
        paused = frozenset(
            tp
            for tp in assigned
            if hold_all or tp.partition not in self._owned or tp.partition in self._needs_reset
        )
        current = self._consumer.paused()
        to_pause, to_resume = paused - current, (assigned - paused) & current
        if to_pause:
            self._consumer.pause(*to_pause)
        if to_resume:
            self._consumer.resume(*to_resume)
        if self._needs_reset:
            self._reset_failed_partitions()

    def _reset_failed_partitions(self) -> None:
        """Rewind partitions whose command failed unexpectedly to their last committable offset."""
        for partition in list(self._needs_reset):
            tracker = self._offsets.of(partition)
            if any(job.partition == partition for job in self._lanes.running_jobs()):
                continue  # wait for in-flight jobs of the partition to end
            offset = tracker.committable()
            self._offsets.forget(partition)
            tp = TopicPartition(self.topic, partition)
            if offset is not None and tp in self._consumer.assignment():
                self._consumer.seek(tp, offset)
            decided = self._decision_offsets.of(partition).committable()
            self._decision_offsets.forget(partition)
            dtp = TopicPartition(self.decisions_topic, partition)
            if decided is not None and dtp in self._decisions.assignment():
                self._decisions.seek(dtp, decided)
            self._needs_reset.discard(partition)

    async def _end_offsets_loop(self, every_s: float = 5.0) -> None:
        """A paused consumer fetches nothing, so its high watermarks go stale: ask for the end offsets."""
        while True:
            await asyncio.sleep(every_s)
            tps = [TopicPartition(self.topic, p) for p in sorted(self._owned)]
            if not tps:
                continue
            try:
                ends = await self._consumer.end_offsets(tps)
            except (KafkaError, AssertionError) as exc:
                log.debug("end offsets unavailable: %s", exc)
                continue
            self._end_offsets = {tp.partition: offset for tp, offset in ends.items()}

    async def heartbeat_loop(self, every_s: float = 1.0) -> None:
        """Proves the event loop turns (for /healthz), whatever Kafka is doing."""
        while True:
            self._heartbeat_s = time.time()
            await asyncio.sleep(every_s)

    # --- ownership -------------------------------------------------------------------------
    def take_partitions(self, partitions: set[int]) -> None:
        """The assignment callback: pause what is new and activate it in the background (no blocking)."""
        self._assigned |= partitions
        new = sorted(partitions - self._owned - self._activations.keys())
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
            for attempt in range(1, attempts + 1):
                try:
                    await self._activate_once(partition)
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning(
                        "activating partition %d failed (attempt %d of %d): %s: %s",
                        partition,
                        attempt,
                        attempts,
                        type(exc).__name__,
                        exc,
                    )
                    await self._deactivate(partition, flush=False)
                    if attempt < attempts:
                        await self._clock.sleep_s(min(30.0, 2.0**attempt))
            self.fatal = f"partition {partition} could not be activated after {attempts} attempts"
            log.error("%s; stopping (not ready)", self.fatal)
            self.stop()
        finally:
            self._activations.pop(partition, None)

    async def _activate_once(self, partition: int) -> None:
        tp = TopicPartition(self.topic, partition)
        writer = PartitionWriter(
            partition=partition,
            txn_id=transactional_id(self._settings.group_id, self.topic, partition),
            group_id=self._settings.group_id,
            producer_factory=self._producer_factory,
            clock=self._clock,
            policy=self._writer_policy,
            mark_done=lambda stream, offset: self._tracker(stream).of(partition).done(offset),
            committable=lambda: self._committable(partition),
            offset_key=lambda stream: TopicPartition(self._stream_topic(stream), partition),
            on_lost=self._partition_lost,
        )
        self._writers[partition] = writer
        await writer.start()  # fences every earlier owner of this partition
        report = await self._journal.restore(partition)
        self._sink.emit(JournalRestored(partition, report.records, report.duration_s))
        for start in range(0, len(report.expired), 500):
            chunk = report.expired[start : start + 500]
            await writer.write([self._journal.tombstone(partition, trace) for trace in chunk])
        if self._claims is not None:
            claims = self._claims
            # The previous owner is fenced: every claim it committed is below the end offsets taken now.
            await claims.sync(timeout_s=self._settings.activation_timeout_s)
            before_ms = int(self._clock.now().timestamp() * 1000 - self._settings.dedupe_window_s * 1000)
            expired = claims.expired(self.topic, partition, before_ms)
            tombstones = [claim_tombstone(claims.topic, c, claims.partitions) for c in expired]
            for start in range(0, len(tombstones), 500):
                await writer.write(tombstones[start : start + 500])
        committed = await self._consumer.committed(tp)
        if tp not in self._consumer.assignment():
            await self._deactivate(partition, flush=False)  # revoked meanwhile
            return
        self._offsets.forget(partition)
        self._decision_offsets.forget(partition)
        if committed is None:
            await self._consumer.seek_to_beginning(tp)
        else:
            self._consumer.seek(tp, committed)
        await self._seek_decisions(partition)
        self._owned.add(partition)
        self._hold_decisions(partition, hold=False)
        log.info("partition %d active (journal: %d records restored)", partition, report.records)

    def _tracker(self, stream: str) -> OffsetTracker:
        return self._decision_offsets if stream == DECISIONS else self._offsets

    def _stream_topic(self, stream: str) -> str:
        return self.decisions_topic if stream == DECISIONS else self.topic

    def _committable(self, partition: int) -> dict[str, int]:
        """What the partition's next transaction commits: its commands' and its decisions' offsets."""
        offsets = {
            COMMANDS: self._offsets.of(partition).committable(),
            DECISIONS: self._decision_offsets.of(partition).committable(),
        }
        return {stream: offset for stream, offset in offsets.items() if offset is not None}

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
        self._decision_offsets.forget(partition)
        self._hold_decisions(partition, hold=True)

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
        if self._decisions is not None:
            try:
                await self._decisions.stop()
            except KafkaError as exc:
                log.warning("decisions consumer stop: %s", exc)
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
        now_s = time.time()
        for partition in self._owned:
            tp = TopicPartition(self.topic, partition)
            tracker = self._offsets.of(partition)
            try:
                high = self._consumer.highwater(tp)
            except (KafkaError, AssertionError, KeyError):
                high = None
            known_end = self._end_offsets.get(partition)
            if known_end is not None:
                high = known_end if high is None else max(high, known_end)
            start = tracker.committable()
            if start is None:
                start = tracker.committed
            if high is not None and start is not None:
                lag[partition] = max(0, high - start)
            oldest = tracker.oldest_pending_timestamp_ms()
            lag_s[partition] = max(0.0, now_s - oldest / 1000) if oldest else 0.0
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
            review_open_oldest_s=max(0.0, now_s - review_oldest_ms / 1000) if review_oldest_ms else 0.0,
        )
