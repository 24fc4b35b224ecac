"""The local journal store: upserts, tombstones, checkpoints, one owner per file, the dedupe window."""

from __future__ import annotations

from pathlib import Path

from worker.pipeline.journal_store import PartitionStore, open_store, store_path


def test_replay_is_an_idempotent_upsert_and_tombstones_delete(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0.sqlite")
    rows: list[tuple[str, bytes | None, int]] = [("T1", b"intent", 1), ("T1", b"done", 2), ("T2", b"x", 3)]
    store.apply_batch(rows)
    store.apply_batch(rows)  # the same records again, as after kill -9
    assert store.get("T1") == (b"done", 2)
    store.apply_batch([("T2", None, 4)])
    assert store.get("T2") is None
    assert store.count() == 1
    store.close()


def test_checkpoint_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "p1.sqlite"
    store = PartitionStore(path)
    store.put("T1", b"v", 1)
    store.set_checkpoint(42)
    store.close()
    again = PartitionStore(path)
    assert again.checkpoint() == 42
    assert again.get("T1") == (b"v", 1)
    again.wipe()
    assert again.checkpoint() is None
    again.close()


def test_a_store_wiped_by_a_cold_restore_is_still_this_layout_when_reopened(tmp_path: Path) -> None:
    path = tmp_path / "p2.sqlite"
    store = PartitionStore(path)
    store.wipe()  # a cold restore: no checkpoint yet
    store.apply_batch([("T1", b"v", 1)])
    store.set_checkpoint(7)
    store.close()
    again = PartitionStore(path)
    assert again.checkpoint() == 7
    assert again.get("T1") == (b"v", 1)
    again.close()


def test_a_second_process_cannot_share_the_file_and_falls_back_to_memory(tmp_path: Path) -> None:
    first = open_store(tmp_path, "g", "ecash.journal", 3)
    assert first.path == store_path(tmp_path, "g", "ecash.journal", 3)
    second = open_store(tmp_path, "g", "ecash.journal", 3)
    assert second.path is None
    first.close()
    third = open_store(tmp_path, "g", "ecash.journal", 3)
    assert third.path is not None
    third.close()
    second.close()


DONE = b'{"state":"done","result":{"outcome":"succeeded"}}'
UNRESOLVED = b'{"state":"done","result":{"outcome":"unresolved"}}'


def test_purge_drops_only_final_records_older_than_the_dedupe_window() -> None:
    store = PartitionStore(None)
    store.put("old", DONE, 100)
    store.put("new", DONE, 200)
    store.put("old-intent", b'{"state":"intent"}', 50)
    store.put("old-resolving", b'{"state":"resolving"}', 50)
    store.put("old-unresolved", UNRESOLVED, 50)
    assert store.purge_older_than(150) == ["old"]
    assert store.get("old") is None
    assert store.get("new") == (DONE, 200)
    # Never dropped, however old: an intent in doubt or a command waiting for an operator
    for trace in ("old-intent", "old-resolving", "old-unresolved"):
        assert store.get(trace) is not None, trace


def test_a_replayed_final_record_ages_out_but_a_replayed_intent_does_not() -> None:
    store = PartitionStore(None)
    store.apply_batch([("T1", DONE, 10), ("T2", b'{"state":"intent"}', 10)])
    assert store.purge_older_than(100) == ["T1"]
    assert store.get("T2") is not None


def test_a_store_of_an_older_layout_is_dropped_and_replayed_in_full(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "p0.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE records (trace TEXT PRIMARY KEY, value BLOB NOT NULL, ts_ms INTEGER)")
    old.execute("CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
    old.execute("INSERT INTO records VALUES ('T1', x'00', 1)")
    old.execute("INSERT INTO meta VALUES ('checkpoint', '99')")
    old.commit()
    old.close()
    store = PartitionStore(path)
    assert store.checkpoint() is None  # replay from the start of the topic
    assert store.count() == 0
    store.close()


def test_open_reviews_count_unresolved_records_and_the_oldest_time() -> None:
    store = PartitionStore(None)
    assert store.open_reviews() == (0, None)
    store.put("T1", UNRESOLVED, 300)
    store.put("T2", DONE, 100)
    store.put("T3", b'{"state":"intent"}', 50)
    store.apply_batch([("T4", UNRESOLVED, 200), ("T5", b'{"state":"resolving"}', 10)])
    assert store.open_reviews() == (2, 200)
    # An operator's decision writes the command's final outcome: the item is closed.
    store.put("T4", b'{"state":"done","result":{"outcome":"failed"}}', 400)
    assert store.open_reviews() == (1, 300)
    store.apply_batch([("T1", None, 500)])  # a tombstone
    assert store.open_reviews() == (0, None)


def test_an_outcome_key_elsewhere_in_a_closed_record_is_not_an_open_item() -> None:
    store = PartitionStore(None)
    closed = (
        b'{"state":"done","resolution":{"outcome":"unresolved"},'
        b'"result":{"outcome":"succeeded","metadata":{"outcome":"unresolved"}}}'
    )
    store.put("T1", closed, 100)
    store.put("T2", b'{"state":"resolving","resolution":{"outcome":"unresolved"}}', 100)
    assert store.open_reviews() == (0, None)


def test_open_reviews_survive_reopening_and_a_schema_2_store_is_replayed(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "p0.sqlite"
    store = PartitionStore(path)
    store.put("T1", UNRESOLVED, 100)
    store.set_checkpoint(7)
    store.close()
    again = PartitionStore(path)
    assert again.open_reviews() == (1, 100)
    again.close()
    old = sqlite3.connect(path)  # as schema 2 left it: no review column, so unresolved rows unknown
    old.execute("UPDATE meta SET v = '2' WHERE k = 'schema'")
    old.commit()
    old.close()
    replayed = PartitionStore(path)
    assert replayed.checkpoint() is None
    assert replayed.open_reviews() == (0, None)
    replayed.close()
