"""Every worker's copy of the whole claims topic (claims.py): a SQLite cache kept current by a follower.

The topic is the truth; the local store is a cache of it (like the journal's), so memory stays flat
however many trace numbers the dedupe window holds, and a restart replays only what came after its
checkpoint. A store whose checkpoint is older than the topic's ``delete.retention.ms`` may have missed a
tombstone, so it is replayed from the beginning instead.

Reading is ``read_committed``: a claim is seen only once its transaction committed, and a claim seen at
offset *o* means every committed claim before *o* in that partition was seen too (the last stable offset
holds back what is still open). So after writing a claim, waiting until the index has it is enough to know
whether an earlier claim exists (``wait_for``). ``sync`` reads up to the end offsets taken now: an
activation calls it after fencing the previous owner, so that owner's claims are all known.

The follower's fetch is held by the broker while there is nothing new (``CLAIMS_FETCH_WAIT_MS``), and a
``read_committed`` fetch is answered as soon as a claim's transaction commits, so a claim is read back at
once however long the hold. The broker answers one request of a connection at a time, so the offsets
(``start``, ``sync``) are asked through a consumer of their own, which never fetches: asked through the
follower they would wait out its held fetch, and with it every partition's activation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from worker.pipeline.claims import Claim, ClaimState, Entry
from worker.pipeline.journal_store import StoreBusy, clear_cache, lock_exclusively, open_cache_db

__all__ = ["SCHEMA_VERSION", "SLOTS", "WAIT_STEP_S", "ClaimsIndex", "ClaimsStore", "open_claims_store"]

log = logging.getLogger("ecash_worker.claims")

SCHEMA_VERSION = "1"
SLOTS = 8  # processes on one host sharing ECASH_STATE_DIR each take a store file of their own
WAIT_STEP_S = 0.25

_UPSERT = (
    "INSERT INTO claims(key, trace, cpart, claim_offset, command_topic, command_partition, final, ts_ms, "
    "value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET final = excluded.final, "
    "ts_ms = excluded.ts_ms, value = excluded.value"
)


Row = tuple[int, bytes, bytes | None, int]  # a claims record: offset, key, value (None: tombstone), append ms


def _settle(waiter: asyncio.Future[None]) -> None:
    """A key waiter's step is over (nothing arrived): its holder looks again."""
    if not waiter.done():
        waiter.set_result(None)


class ClaimsStore:
    """The claims, by key, with the trace number indexed. ``path=None`` keeps it in memory."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock_fd: int | None = None
        if path is not None:
            self._lock_fd = lock_exclusively(path)
        self._db = open_cache_db(path, table="claims", schema_version=SCHEMA_VERSION)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, trace TEXT NOT NULL, cpart INTEGER NOT "
            "NULL, claim_offset INTEGER NOT NULL, command_topic TEXT NOT NULL, command_partition INTEGER NOT "
            "NULL, final INTEGER NOT NULL, ts_ms INTEGER NOT NULL, value BLOB NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS claims_trace ON claims(trace)")
        self._db.execute(
            "CREATE INDEX IF NOT EXISTS claims_owner "
            "ON claims(command_topic, command_partition, final, ts_ms)"
        )

    # --- reading -----------------------------------------------------------------------------
    def entries(self, trace_number: str) -> list[Entry]:
        rows = self._db.execute(
            "SELECT value, claim_offset, ts_ms FROM claims WHERE trace = ?", (trace_number,)
        ).fetchall()
        return [Entry(Claim.model_validate_json(bytes(row[0])), int(row[1]), int(row[2])) for row in rows]

    def entry(self, key: str) -> Entry | None:
        row = self._db.execute(
            "SELECT value, claim_offset, ts_ms FROM claims WHERE key = ?", (key,)
        ).fetchone()
        return (
            None if row is None else Entry(Claim.model_validate_json(bytes(row[0])), int(row[1]), int(row[2]))
        )

    def has(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM claims WHERE key = ?", (key,)).fetchone() is not None

    def expired(self, command_topic: str, command_partition: int, before_ms: int) -> list[Claim]:
        """Final claims of one command partition older than ``before_ms``: its owner tombstones them."""
        rows = self._db.execute(
            "SELECT value FROM claims WHERE command_topic = ? AND command_partition = ? AND final = 1 "
            "AND ts_ms < ?",
            (command_topic, command_partition, before_ms),
        ).fetchall()
        return [Claim.model_validate_json(bytes(row[0])) for row in rows]

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM claims").fetchone()[0])

    # --- writing (only the follower writes: the store mirrors the topic) -------------------------
    def apply(self, cpart: int, rows: list[Row], next_offset: int) -> None:
        """Records of claims partition ``cpart`` in order (offset, key, value or None, append time ms),
        and the position after them, in one transaction."""
        self.apply_many({cpart: (rows, next_offset)})

    def apply_many(self, batches: dict[int, tuple[list[Row], int]]) -> None:
        """``apply`` for several partitions in one SQLite transaction: one commit per fetch, not two per
        partition (the records, then the position past their transaction's commit marker)."""
        self._db.execute("BEGIN")
        try:
            for cpart, (rows, next_offset) in batches.items():
                self._upsert(cpart, rows)
                self._set_meta(f"position:{cpart}", str(next_offset))
            self._set_meta("checkpoint_ms", str(int(time.time() * 1000)))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _upsert(self, cpart: int, rows: list[Row]) -> None:
        upserts: list[tuple[object, ...]] = []  # in order; flushed before a delete, which may follow one
        for offset, raw_key, value, ts_ms in rows:
            key = raw_key.decode(errors="replace")
            if value is None:
                self._db.executemany(_UPSERT, upserts)
                upserts.clear()
                self._db.execute("DELETE FROM claims WHERE key = ?", (key,))
                continue
            try:
                data = orjson.loads(value)
                trace, topic = str(data["trace_number"]), str(data["command_topic"])
                command_partition = int(data["command_partition"])
                final = int(data.get("state") == ClaimState.FINAL)
                claimed_at = data.get("claim_offset")
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                log.warning("claims record at %d@%d is unreadable; ignored", cpart, offset)
                continue
            at = int(claimed_at) if isinstance(claimed_at, int) else offset
            upserts.append((key, trace, cpart, at, topic, command_partition, final, ts_ms, value))
        self._db.executemany(_UPSERT, upserts)

    def position(self, cpart: int) -> int | None:
        row = self._db.execute("SELECT v FROM meta WHERE k = ?", (f"position:{cpart}",)).fetchone()
        return None if row is None else int(row[0])

    def checkpoint_ms(self) -> int | None:
        row = self._db.execute("SELECT v FROM meta WHERE k = 'checkpoint_ms'").fetchone()
        return None if row is None else int(row[0])

    def wipe(self) -> None:
        clear_cache(self._db, table="claims")

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta(k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v", (key, value)
        )

    def close(self) -> None:
        self._db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def open_claims_store(state_dir: Path | None, group_id: str, topic: str) -> ClaimsStore:
    """The first free slot's store file; memory when none is free or the directory cannot be used."""
    if state_dir is None:
        return ClaimsStore(None)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in f"{group_id}__{topic}")
    for slot in range(SLOTS):
        try:
            return ClaimsStore(state_dir / safe / f"index-{slot}.sqlite")
        except StoreBusy:
            continue
        except (OSError, sqlite3.Error) as exc:
            log.warning("ECASH_STATE_DIR: cannot open the claims store (%s); kept in memory", exc)
            break
    return ClaimsStore(None)


class ClaimsIndex:
    """The claims topic, followed. ``start`` catches up before the worker takes any partition."""

    def __init__(
        self,
        *,
        topic: str,
        open_store: Callable[[], ClaimsStore],
        consumer_factory: Callable[[], AIOKafkaConsumer] | None,
        offsets_consumer_factory: Callable[[], AIOKafkaConsumer] | None,
        delete_retention_ms: int,
        partitions: int | None = None,
    ) -> None:
        self.topic = topic
        self._open_store = open_store
        self._store = ClaimsStore(None)  # until ``start`` opens the real one
        self._consumer_factory = consumer_factory
        self._offsets_consumer_factory = offsets_consumer_factory
        self._delete_retention_ms = delete_retention_ms
        self._consumer: Any = None
        self._offsets: Any = None  # asks the end offsets; never fetches (module docstring)
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        # key -> futures of the commands waiting for a record of that key (their own claim, or the owner's
        # final): only they are woken when it arrives, not every waiter at every batch.
        self._key_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._positions: dict[int, int] = {}
        self.partitions = partitions or 0
        self.failure: str | None = None

    # --- life -------------------------------------------------------------------------------
    async def start(self, *, timeout_s: float) -> None:
        """Assign every partition, from the store's positions (or the beginning), and read to the end."""
        if self._consumer_factory is None or self._offsets_consumer_factory is None:
            raise RuntimeError("an in-memory index has no consumer to start")
        self._store.close()
        self._store = self._open_store()
        checkpoint_ms = self._store.checkpoint_ms()
        if checkpoint_ms is not None and time.time() * 1000 - checkpoint_ms > self._delete_retention_ms:
            log.info("claims store older than the topic's delete.retention.ms: replayed from the start")
            self._store.wipe()
        try:
            offsets = self._offsets_consumer_factory()
            await offsets.start()
            self._offsets = offsets
            consumer = self._consumer_factory()
            await consumer.start()
            self._consumer = consumer
            cluster = await offsets._client.fetch_all_metadata()  # no public way to refresh it
            found = cluster.partitions_for_topic(self.topic)
            if not found:
                raise RuntimeError(f"the claims topic {self.topic} has no partitions")
            self.partitions = len(found)
            tps = [TopicPartition(self.topic, p) for p in sorted(found)]
            begins = await offsets.beginning_offsets(tps)
            consumer.assign(tps)
            for tp in tps:  # no await from the assignment to the last seek: no position is reset meanwhile
                stored = self._store.position(tp.partition)
                start = begins[tp] if stored is None or stored < begins[tp] else stored
                consumer.seek(tp, start)
                self._positions[tp.partition] = start
            self._task = asyncio.create_task(self._follow(), name="claims-follower")
            await self.sync(timeout_s=timeout_s)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for consumer in (self._consumer, self._offsets):
            if consumer is not None:
                with contextlib.suppress(KafkaError):
                    await consumer.stop()
        self._consumer = self._offsets = None
        self._store.close()

    async def sync(self, *, timeout_s: float) -> None:
        """Wait until every claim committed before now is in the index (TimeoutError past ``timeout_s``)."""
        tps = [TopicPartition(self.topic, p) for p in sorted(self._positions)]
        ends = await asyncio.wait_for(self._offsets.end_offsets(tps), timeout_s)
        deadline = time.monotonic() + timeout_s
        while any(self._positions[tp.partition] < end for tp, end in ends.items()):
            if self.failure is not None:
                raise RuntimeError(self.failure)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                behind = {tp.partition: end - self._positions[tp.partition] for tp, end in ends.items()}
                raise TimeoutError(f"the claims index did not catch up within {timeout_s:.0f} s: {behind}")
            await self._wait_change(min(WAIT_STEP_S, remaining))

    async def _follow(self) -> None:
        consumer = self._consumer
        while True:
            try:
                batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                fetched: dict[int, tuple[list[Row], int]] = {}
                for tp, messages in batch.items():
                    rows = [
                        (m.offset, m.key, m.value, int(m.timestamp)) for m in messages if m.key is not None
                    ]
                    next_offset = messages[-1].offset + 1 if messages else self._positions[tp.partition]
                    fetched[tp.partition] = (rows, next_offset)
                # Aborted transactions and commit markers move the position past the last record.
                for tp in consumer.assignment():
                    position = await consumer.position(tp)
                    rows, known = fetched.get(tp.partition, ([], self._positions.get(tp.partition, 0)))
                    if position > known:
                        fetched[tp.partition] = (rows, position)
                if fetched:
                    self._apply(fetched)
            except asyncio.CancelledError:
                raise
            except KafkaError as exc:
                log.warning("claims follower: %s", exc)
                await asyncio.sleep(0.5)
            except Exception as exc:  # noqa: BLE001 - a store that cannot be written: stop deciding, say why
                self.failure = f"claims index failed: {type(exc).__name__}: {exc}"
                log.error("%s", self.failure)
                self._notify()
                return

    def _apply(self, fetched: dict[int, tuple[list[Row], int]]) -> None:
        self._store.apply_many(fetched)
        for cpart, (rows, next_offset) in fetched.items():
            self._positions[cpart] = next_offset
            if self._key_waiters:
                for _, raw_key, _, _ in rows:
                    for waiter in self._key_waiters.pop(raw_key.decode(errors="replace"), ()):
                        if not waiter.done():
                            waiter.set_result(None)
        self._notify()

    @classmethod
    def in_memory(cls, topic: str, partitions: int) -> ClaimsIndex:
        """An index fed by ``apply`` (in-memory fakes): no consumer, no file."""
        return cls(
            topic=topic,
            open_store=lambda: ClaimsStore(None),
            consumer_factory=None,
            offsets_consumer_factory=None,
            delete_retention_ms=86_400_000,
            partitions=partitions,
        )

    def apply(self, cpart: int, rows: list[Row]) -> None:
        """Records as the follower would apply them: for in-memory fakes (no consumer)."""
        next_offset = rows[-1][0] + 1 if rows else self._positions.get(cpart, 0)
        self._apply({cpart: (rows, next_offset)})

    async def wait_for_key(self, key: str, abandoned: Callable[[], bool]) -> bool:
        """Wait up to one step for a record of ``key``; False if the job is abandoned, else True.

        One step only: the caller checks its own condition again after every return (a record that
        arrives as the step times out must not be missed), and waits again if it still does not hold."""
        if self.failure is not None:
            raise RuntimeError(self.failure)
        if abandoned():
            return False
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._key_waiters.setdefault(key, []).append(waiter)
        step = loop.call_later(WAIT_STEP_S, _settle, waiter)  # a plain timer: no task per wait
        try:
            await waiter
        finally:
            step.cancel()
            waiters = self._key_waiters.get(key)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._key_waiters[key]
        return not abandoned()

    def has(self, key: str) -> bool:
        return self._store.has(key)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout_s)

    # --- reading ----------------------------------------------------------------------------
    def entries(self, trace_number: str) -> list[Entry]:
        return self._store.entries(trace_number)

    def entry(self, key: str) -> Entry | None:
        return self._store.entry(key)

    def expired(self, command_topic: str, command_partition: int, before_ms: int) -> list[Claim]:
        return self._store.expired(command_topic, command_partition, before_ms)

    def count(self) -> int:
        return self._store.count()
