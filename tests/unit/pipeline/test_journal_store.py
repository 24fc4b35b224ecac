"""The local journal store: upserts, tombstones, checkpoints, one owner per file, the dedupe window."""

from __future__ import annotations

from pathlib import Path

from worker.pipeline.journal_store import PartitionStore, open_store, store_path


def test_replay_is_an_idempotent_upsert_and_tombstones_delete(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0.sqlite")
    rows: list[tuple[str, bytes | None, int]] = [("T1", b"intent", 1), ("T1", b"done", 2), ("T2", b"x", 3)]
    store.apply_batch(rows)
    store.apply_batch(rows)  # the same records again, as after kill -9
    assert store.get("T1") == b"done"
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
    assert again.get("T1") == b"v"
    again.wipe()
    assert again.checkpoint() is None
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


def test_purge_drops_records_older_than_the_dedupe_window() -> None:
    store = PartitionStore(None)
    store.put("old", b"1", 100)
    store.put("new", b"2", 200)
    assert store.purge_older_than(150) == 1
    assert store.get("old") is None
    assert store.get("new") == b"2"
