"""The Kafka loop: fetch, hand to lanes, commit what is finished; drain on revoke and on SIGTERM.

Offsets: per partition, the highest offset below which every command has its result published is
committed every ``commit_interval_s`` and at every revoke. Memory: at most ``max_buffered`` commands are
held; past that, fetching pauses (pause/resume partitions) until lanes catch up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from worker.observability.events import (
    CommandConsumed,
    EventSink,
    JournalRestored,
    PartitionsChanged,
    PipelineSnapshot,
)
from worker.pipeline.gate import Gate
from worker.pipeline.intake import parse_command
from worker.pipeline.journal import Journal
from worker.pipeline.lanes import Lanes
from worker.pipeline.offsets import OffsetTracker
from worker.pipeline.processor import Job, Processor
from worker.settings import Settings

log = logging.getLogger("ecash_worker.runner")


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._runner.release_partitions(
            {tp.partition for tp in revoked if tp.topic == self._runner.topic}
        )

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._runner.take_partitions(
            {tp.partition for tp in assigned if tp.topic == self._runner.topic}
        )


class Runner:
    def __init__(
        self,
        *,
        settings: Settings,
        processor: Processor,
        journal: Journal,
        gate: Gate,
        sink: EventSink,
        client_kwargs: dict[str, Any],
        logged_in: Callable[[], bool],
    ) -> None:
        self._settings = settings
        self.topic = settings.commands_topic
        self._processor = processor
        self._journal = journal
        self._gate = gate
        self._sink = sink
        self._logged_in = logged_in
        self._offsets = OffsetTracker()
        self._lanes: Lanes[Job] = Lanes(run=self._run_job, max_in_flight=settings.max_in_flight)
        self._owned: set[int] = set()
        self._draining: set[int] = set()  # revoked, finishing in-flight work: no new work, still committed
        self._stopping = asyncio.Event()
        self._paused = False
        self._last_processed_s = 0.0
        self._heartbeat_s = time.time()
        self._consuming = False
        self._needs_reset: set[int] = set()
        self._end_offsets: dict[int, int] = {}  # refreshed even while paused, for the lag gauge
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(settings.kafka_session_timeout_s * 1000),
            heartbeat_interval_ms=max(1000, int(settings.kafka_session_timeout_s * 1000 / 3)),
            rebalance_timeout_ms=int(settings.kafka_rebalance_timeout_s * 1000),
            max_poll_interval_ms=max(300_000, int(settings.kafka_rebalance_timeout_s * 1000)),
            max_partition_fetch_bytes=1024 * 1024,
            client_id="ecash-worker",
            **client_kwargs,
        )

    # --- the loop --------------------------------------------------------------------------
    async def run(self) -> None:
        await self._consumer.start()
        self._consumer.subscribe([self.topic], listener=_Rebalance(self))
        committer = asyncio.create_task(self._commit_loop(), name="commit-loop")
        lag_watch = asyncio.create_task(self._end_offsets_loop(), name="end-offsets")
        try:
            while not self._stopping.is_set():
                self._apply_backpressure()
                room = self._settings.max_buffered - self._lanes.buffered
                try:
                    batch = await self._consumer.getmany(timeout_ms=200, max_records=max(1, min(room, 1000)))
                except KafkaError as exc:
                    log.warning("kafka fetch failed: %s", exc)
                    await asyncio.sleep(0.5)
                    continue
                for tp, messages in batch.items():
                    if tp.partition in self._needs_reset:
                        continue  # read again from the failed command's offset once the reset is done
                    if tp.partition not in self._owned:
                        self._rewind_unowned(tp, messages[0].offset)
                        continue
                    for message in messages:
                        self._dispatch(message)
        finally:
            self._consuming = False
            committer.cancel()
            lag_watch.cancel()
            await self._shutdown()

    def _rewind_unowned(self, tp: TopicPartition, offset: int) -> None:
        """Fetched before its journal was restored (the fetcher runs during the assign callback): re-read."""
        if tp in self._consumer.assignment():
            self._consumer.seek(tp, offset)

    def stop(self) -> None:
        self._stopping.set()

    def _dispatch(self, message: Any) -> None:
        intake = parse_command(message.value, max_bytes=self._settings.command_max_bytes)
        job = Job(
            partition=message.partition,
            offset=message.offset,
            timestamp_ms=message.timestamp,
            key=message.key,
            value=message.value,
            headers=[(k, v) for k, v in (message.headers or ())],
            intake=intake,
        )
        self._offsets.of(message.partition).add(message.offset, message.timestamp)
        self._sink.emit(CommandConsumed(message.partition))
        self._lanes.submit(job)

    async def _run_job(self, job: Job) -> None:
        try:
            finished = await self._processor.handle(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Unknown failure (Kafka down mid-publish, a bug): never commit past it. The job is abandoned;
            # its journal record (if any) lets the next owner finish it. Stop taking this partition's work.
            log.exception(
                "command at %s[%d]@%d failed; it will be retried from the journal",
                self.topic,
                job.partition,
                job.offset,
            )
            self._processor_failed(job)
            return
        if finished and (job.partition in self._owned or job.partition in self._draining):
            self._offsets.of(job.partition).done(job.offset)
            self._last_processed_s = time.time()

    def _processor_failed(self, job: Job) -> None:
        # Cancel the rest of this partition's lanes: a later command for the same MSISDN must not overtake.
        self._lanes.cancel_partitions({job.partition})
        self._needs_reset.add(job.partition)

    def _apply_backpressure(self) -> None:
        assigned = self._consumer.assignment()
        if not assigned:
            return
        want_pause = not self._gate.open_for_new_work or self._lanes.buffered >= self._settings.max_buffered
        if want_pause and not self._paused:
            self._consumer.pause(*assigned)
            self._paused = True
        elif not want_pause and self._paused:
            self._consumer.resume(*assigned)
            self._paused = False
        elif self._paused:
            self._consumer.pause(*assigned)  # partitions assigned since the pause
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
            if offset is not None:
                self._consumer.seek(TopicPartition(self.topic, partition), offset)
            self._needs_reset.discard(partition)

    # --- commits ---------------------------------------------------------------------------
    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.commit_interval_s)
            await self.commit()

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

    async def commit(self, partitions: set[int] | None = None) -> None:
        offsets = {
            p: o
            for p, o in self._offsets.to_commit().items()
            if (p in self._owned or p in self._draining) and (partitions is None or p in partitions)
        }
        if not offsets:
            return
        try:
            await self._consumer.commit({TopicPartition(self.topic, p): o for p, o in offsets.items()})
            self._offsets.mark_committed(offsets)
        except KafkaError as exc:
            log.warning("offset commit failed (will retry): %s", exc)

    # --- rebalance -------------------------------------------------------------------------
    async def take_partitions(self, partitions: set[int]) -> None:
        for partition in sorted(partitions - self._owned):
            report = await self._journal.restore(partition)
            self._sink.emit(JournalRestored(partition, report.records, report.duration_s))
            self._offsets.forget(partition)
            self._owned.add(partition)
        self._consuming = True  # joined the group (an empty assignment counts: a spare replica)
        self._sink.emit(PartitionsChanged(assigned=tuple(sorted(partitions)), revoked=()))

    async def release_partitions(self, partitions: set[int]) -> None:
        partitions &= self._owned
        if not partitions:
            return
        # From here no new command of these partitions starts; what runs may finish within the bound.
        self._owned -= partitions
        self._draining |= partitions
        running = self._lanes.cancel_partitions(partitions)
        tasks = self._lanes.tasks_of(running)
        clean = True
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self._settings.drain_timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            clean = not pending
        await self.commit(partitions)
        for partition in partitions:
            self._draining.discard(partition)
            self._offsets.forget(partition)
            self._journal.release(partition, clean=clean)
        self._sink.emit(PartitionsChanged(assigned=(), revoked=tuple(sorted(partitions))))

    async def _shutdown(self) -> None:
        await self.release_partitions(set(self._owned))
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
            consuming=self._consuming,
            fatal=self._gate.fatal,
            loop_heartbeat_unix_s=self._heartbeat_s,
        )
