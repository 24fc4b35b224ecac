"""The local copy of one journal partition: a SQLite file, restored from the compacted journal topic.

This is the Kafka Streams state-store pattern: the topic is the truth (written first, acks=all); the
local store is a cache of it, so memory stays flat however many trace numbers the dedupe window holds.
A checkpoint (the journal offset up to which the store is complete) is written after each restore (the
end offset taken after fencing the previous owner), so a restart replays only what came after it, and
replaying a record twice is harmless (an upsert). None is written at a drain (docs/design.md, "The
journal: a compacted topic and a local store").
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
from pathlib import Path

__all__ = [
    "PUTS_PER_COMMIT",
    "SCHEMA_VERSION",
    "PartitionStore",
    "StoreBusy",
    "clear_cache",
    "is_final",
    "is_open_review",
    "lock_exclusively",
    "open_cache_db",
    "open_store",
    "store_path",
]

_UPSERT = (
    "INSERT INTO records(trace, value, ts_ms, final, review) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT(trace) DO UPDATE SET value = excluded.value, ts_ms = excluded.ts_ms, "
    "final = excluded.final, review = excluded.review"
)
# 2: the ``final`` column (a record whose outcome is final may age out; others never).
# 3: the ``review`` column (an ``unresolved`` outcome: an open review item until an operator's decision).
SCHEMA_VERSION = "3"
# What a journal record's JSON holds once its outcome is final and not ``unresolved`` (compact JSON, as
# written by pydantic): such a record may be dropped after the dedupe window; any other never is.
_DONE_MARK = b'"state":"done"'
_UNRESOLVED_MARK = b'"outcome":"unresolved"'


def is_final(value: bytes) -> bool:
    """An outcome that nothing will change: done, and not waiting for an operator."""
    return _DONE_MARK in value and _UNRESOLVED_MARK not in value


def is_open_review(value: bytes) -> bool:
    """Done as ``unresolved``: an open review item until an operator's decision writes another outcome.

    The marks rule out almost every record cheaply; the few left are parsed, so that an ``outcome`` key
    elsewhere in the record (a resolution's, a result's metadata) is not taken for the result's.
    """
    if _DONE_MARK not in value or _UNRESOLVED_MARK not in value:
        return False
    try:
        record = json.loads(value)
    except ValueError:
        return False
    if not isinstance(record, dict) or record.get("state") != "done":
        return False
    result = record.get("result")
    return isinstance(result, dict) and result.get("outcome") == "unresolved"


def _row(trace: str, value: bytes, ts_ms: int) -> tuple[str, bytes, int, int, int]:
    return (trace, value, ts_ms, int(is_final(value)), int(is_open_review(value)))


# Puts are grouped into one transaction per this many (a transaction per put costs more than the put).
# A crash loses at most the uncommitted ones, which is harmless: the checkpoint only moves after a
# commit, so a restart replays them from the topic.
PUTS_PER_COMMIT = 256

log = logging.getLogger("ecash_worker")


class StoreBusy(Exception):
    """Another process holds this partition's store file."""


def lock_exclusively(path: Path) -> int:
    """Hold ``path``'s lock file for this process (the descriptor; closing it releases the lock).

    Raises ``StoreBusy`` when another process holds it: two processes must never write one SQLite cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_suffix(".lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StoreBusy(str(path)) from None
    return fd


def open_cache_db(path: Path | None, *, table: str, schema_version: str) -> sqlite3.Connection:
    """A SQLite cache of a topic (``path=None``: in memory), with its ``meta`` table at ``schema_version``.

    A cache of another layout is dropped (``table`` and ``meta``) and replayed from the topic in full."""
    db = sqlite3.connect(str(path) if path else ":memory:", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL" if path else "PRAGMA journal_mode=MEMORY")
    db.execute("PRAGMA synchronous=OFF")  # the topic is durable; this is a cache of it
    db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
    version = db.execute("SELECT v FROM meta WHERE k = 'schema'").fetchone()
    if version is None or version[0] != schema_version:
        db.execute(f"DROP TABLE IF EXISTS {table}")
        db.execute("DELETE FROM meta")
        db.execute("INSERT INTO meta(k, v) VALUES ('schema', ?)", (schema_version,))
    return db


def clear_cache(db: sqlite3.Connection, *, table: str) -> None:
    """Empty a cache opened by ``open_cache_db`` for a replay from the topic's start: its rows and its meta
    (checkpoint, positions), but not its schema mark, or the next open would take it for another layout
    and drop it again (every restart a full replay)."""
    db.execute(f"DELETE FROM {table}")  # noqa: S608 - a table name from this code, never input
    db.execute("DELETE FROM meta WHERE k != 'schema'")


class PartitionStore:
    def __init__(self, path: Path | None) -> None:
        """``path=None`` keeps the store in memory (tests, or a state directory that cannot be used)."""
        self.path = path
        self._lock_fd: int | None = None
        if path is not None:
            self._lock_fd = lock_exclusively(path)
        self._db = open_cache_db(path, table="records", schema_version=SCHEMA_VERSION)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS records "
            "(trace TEXT PRIMARY KEY, value BLOB NOT NULL, ts_ms INTEGER, final INTEGER NOT NULL DEFAULT 0, "
            "review INTEGER NOT NULL DEFAULT 0)"
        )
        # Few rows are open review items among many: a partial index answers ``open_reviews`` from them alone.
        self._db.execute("CREATE INDEX IF NOT EXISTS open_reviews ON records(ts_ms) WHERE review = 1")
        self._uncommitted = 0

    def get(self, trace_number: str) -> tuple[bytes, int | None] | None:
        """The record's value and its time (the broker's append time, or when this worker committed it)."""
        row = self._db.execute("SELECT value, ts_ms FROM records WHERE trace = ?", (trace_number,)).fetchone()
        return None if row is None else (bytes(row[0]), None if row[1] is None else int(row[1]))

    def put(self, trace_number: str, value: bytes, ts_ms: int) -> None:
        """Upsert; visible to ``get`` at once, committed with the next ``PUTS_PER_COMMIT`` or ``flush``."""
        if not self._db.in_transaction:
            self._db.execute("BEGIN")
        self._db.execute(_UPSERT, _row(trace_number, value, ts_ms))
        self._uncommitted += 1
        if self._uncommitted >= PUTS_PER_COMMIT:
            self.flush()

    def flush(self) -> None:
        """Commit the puts not committed yet."""
        if self._db.in_transaction:
            self._db.execute("COMMIT")
        self._uncommitted = 0

    def apply_batch(self, rows: list[tuple[str, bytes | None, int]]) -> None:
        """Replay journal records in order; ``None`` is a tombstone. The last record per key wins."""
        latest: dict[str, tuple[bytes | None, int]] = {}
        for trace, value, ts_ms in rows:
            latest[trace] = (value, ts_ms)
        upserts = [_row(trace, value, ts_ms) for trace, (value, ts_ms) in latest.items() if value is not None]
        deletes = [(trace,) for trace, (value, _) in latest.items() if value is None]
        self.flush()
        self._db.execute("BEGIN")
        try:
            self._db.executemany(_UPSERT, upserts)
            self._db.executemany("DELETE FROM records WHERE trace = ?", deletes)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def purge_older_than(self, ts_ms: int) -> list[str]:
        """Drop final records older than ``ts_ms``; return their trace numbers (to tombstone in the topic).

        A record that is not final (an intent, a resolution, an ``unresolved`` outcome waiting for an
        operator) is never dropped, however old: its command could otherwise be sent again as new.
        """
        self.flush()
        rows = self._db.execute(
            "SELECT trace FROM records WHERE final = 1 AND ts_ms < ?", (ts_ms,)
        ).fetchall()
        self._db.execute("DELETE FROM records WHERE final = 1 AND ts_ms < ?", (ts_ms,))
        return [str(row[0]) for row in rows]

    def open_reviews(self) -> tuple[int, int | None]:
        """How many records are open review items (``unresolved``), and the time of the oldest (ms)."""
        row = self._db.execute("SELECT COUNT(*), MIN(ts_ms) FROM records WHERE review = 1").fetchone()
        return int(row[0]), None if row[1] is None else int(row[1])

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def checkpoint(self) -> int | None:
        row = self._db.execute("SELECT v FROM meta WHERE k = 'checkpoint'").fetchone()
        return None if row is None else int(row[0])

    def set_checkpoint(self, offset: int | None) -> None:
        if offset is None:
            self._db.execute("DELETE FROM meta WHERE k = 'checkpoint'")
        else:
            self._db.execute(
                "INSERT INTO meta(k, v) VALUES ('checkpoint', ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
                (str(offset),),
            )
        self.flush()  # the checkpoint and every put before it, together

    def wipe(self) -> None:
        clear_cache(self._db, table="records")

    def close(self) -> None:
        self.flush()
        self._db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the lock
            self._lock_fd = None


def store_path(state_dir: Path | None, group_id: str, topic: str, partition: int) -> Path | None:
    if state_dir is None:
        return None
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in f"{group_id}__{topic}")
    return state_dir / safe / f"p{partition}.sqlite"


def open_store(state_dir: Path | None, group_id: str, topic: str, partition: int) -> PartitionStore:
    """Open the partition's store; if another process holds it, use memory (a restore from the topic).

    An unusable ``ECASH_STATE_DIR`` stops the worker at start (``worker.preflight``); if it becomes
    unusable later (disk full, removed), the partition is kept in memory and the reason is logged: the
    topic stays the truth, only the next restore is slower.
    """
    path = store_path(state_dir, group_id, topic, partition)
    if path is None:
        return PartitionStore(None)
    try:
        return PartitionStore(path)
    except StoreBusy:
        return PartitionStore(None)
    except (OSError, sqlite3.Error) as exc:
        log.warning("ECASH_STATE_DIR: cannot open %s (%s); partition %d kept in memory", path, exc, partition)
        return PartitionStore(None)
