"""Who owns a trace number across the deployment: the claim rule and the index that holds it. No I/O."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from worker.contracts import Command, CommandType, Outcome, ResolvedBy, Result
from worker.core.fingerprint import fingerprint
from worker.pipeline.claims import (
    Entry,
    claim_record,
    claim_tombstone,
    claims_partition,
    final_claim,
    new_claim,
    standing,
)
from worker.pipeline.claims_index import WAIT_STEP_S, ClaimsIndex, ClaimsStore, open_claims_store

TOPIC = "ecash.claims"
COMMANDS = "ecash.commands"


def command(trace: str = "T1", msisdn: str = "628111111111", amount: str = "1000") -> Command:
    return Command(type=CommandType.CHARGE, trace_number=trace, msisdn=msisdn, amount=Decimal(amount))


def claim_of(cmd: Command, partition: int, offset: int) -> Entry:
    return Entry(new_claim(cmd, fingerprint(cmd), topic=COMMANDS, partition=partition, offset=offset), 0)


def result_for(cmd: Command) -> Result:
    return Result(
        event_id="e1",
        trace_number=cmd.trace_number,
        type=cmd.type,
        msisdn=cmd.msisdn,
        amount=cmd.amount,
        outcome=Outcome.SUCCEEDED,
        resolved_by=ResolvedBy.RESPONSE,
        detail="ok",
        completed_at=datetime(2026, 12, 6, tzinfo=UTC),
    )


# --- the rule ----------------------------------------------------------------------------------------


def entries(*placed: tuple[Command, int, int, int]) -> list[Entry]:
    """(command, command partition, command offset, claim offset)."""
    return [Entry(claim_of(cmd, p, o).claim, claim_offset) for cmd, p, o, claim_offset in placed]


def test_the_first_claim_owns_the_trace_number_whatever_partition_it_came_from() -> None:
    first, again = command(), command()
    found = entries((again, 2, 9, 11), (first, 0, 5, 10))
    owner = standing(f"{COMMANDS}:0:5", found)
    assert owner is not None
    assert owner.kind == "owner"
    later = standing(f"{COMMANDS}:2:9", found)
    assert later is not None
    assert later.kind == "duplicate"
    assert later.owner.claim.where == f"{COMMANDS}[0]@5"


def test_a_later_claim_with_other_parameters_is_a_reuse() -> None:
    found = entries((command(msisdn="628111111111"), 0, 5, 10), (command(msisdn="628222222222"), 3, 1, 12))
    later = standing(f"{COMMANDS}:3:1", found)
    assert later is not None
    assert later.kind == "reused"
    assert later.owner.claim.command_partition == 0


def test_a_message_with_no_claim_has_no_standing() -> None:
    assert standing(f"{COMMANDS}:0:1", entries((command(), 0, 5, 10))) is None


@given(st.permutations(range(5)))
def test_the_owner_is_the_same_whatever_order_the_index_lists_claims_in(order: list[int]) -> None:
    cmds = [command(msisdn=f"62811111111{i}") for i in range(5)]
    found = entries(*[(cmds[i], i, 100 + i, 50 - i) for i in order])
    kinds = {k: standing(f"{COMMANDS}:{k}:{100 + k}", found) for k in range(5)}
    owners = {k for k, found_k in kinds.items() if found_k is not None and found_k.kind == "owner"}
    assert owners == {4}  # the lowest claim offset: 50 - 4


@given(st.text(alphabet=st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=32))
def test_claims_are_partitioned_as_kafkas_default_partitioner_would(trace: str) -> None:
    partitions = list(range(12))
    expected = DefaultPartitioner()(trace.encode(), partitions, partitions)
    assert claims_partition(trace, 12) == expected


def test_a_claim_record_is_keyed_by_its_command_message_and_placed_by_its_trace_number() -> None:
    claim = claim_of(command("ABC"), 4, 77).claim
    record = claim_record(TOPIC, claim, 12)
    assert record.key == f"{COMMANDS}:4:77".encode()
    assert record.partition == claims_partition("ABC", 12)
    tombstone = claim_tombstone(TOPIC, claim, 12)
    assert (tombstone.key, tombstone.value, tombstone.partition) == (record.key, None, record.partition)


# --- the index ---------------------------------------------------------------------------------------


def feed(index: ClaimsIndex, offset: int, claim_bytes: bytes | None, key: bytes, ts_ms: int = 1_000) -> None:
    index.apply(0, [(offset, key, claim_bytes, ts_ms)])


def test_a_final_record_keeps_its_claims_place_after_compaction() -> None:
    """Compaction leaves only an owner's final record: the order must come from ``claim_offset``."""
    index = ClaimsIndex.in_memory(TOPIC, 1)
    owner, dup = command(), command()
    owner_claim = claim_of(owner, 0, 5).claim
    dup_claim = claim_of(dup, 2, 9).claim
    # The compacted log: the duplicate's claim at 11, the owner's final at 20 (its claim at 10 is gone).
    feed(index, 11, claim_record(TOPIC, dup_claim, 1).value, dup_claim.key.encode())
    final = final_claim(owner_claim, 10, result_for(owner))
    feed(index, 20, claim_record(TOPIC, final, 1).value, owner_claim.key.encode())
    found = standing(dup_claim.key, index.entries("T1"))
    assert found is not None
    assert found.kind == "duplicate"
    assert found.owner.claim.result is not None
    assert found.owner.claim.result.outcome is Outcome.SUCCEEDED


def test_a_claim_seen_again_keeps_its_first_place_and_a_tombstone_removes_it() -> None:
    index = ClaimsIndex.in_memory(TOPIC, 1)
    claim = claim_of(command(), 0, 5).claim
    value = claim_record(TOPIC, claim, 1).value
    feed(index, 3, value, claim.key.encode())
    feed(index, 8, value, claim.key.encode())  # the same claim written again (a replay)
    assert [e.claim_offset for e in index.entries("T1")] == [3]
    feed(index, 9, None, claim.key.encode())
    assert index.entries("T1") == []


def test_records_of_one_fetch_are_applied_in_their_order_tombstones_included() -> None:
    index = ClaimsIndex.in_memory(TOPIC, 1)
    gone, back = claim_of(command("T1"), 0, 5).claim, claim_of(command("T2"), 0, 6).claim
    gone_value, back_value = claim_record(TOPIC, gone, 1).value, claim_record(TOPIC, back, 1).value
    assert gone_value is not None
    assert back_value is not None
    index.apply(
        0,
        [
            (0, gone.key.encode(), gone_value, 1),
            (1, gone.key.encode(), None, 2),  # claimed, then tombstoned, in one fetch: gone
            (2, back.key.encode(), None, 3),
            (3, back.key.encode(), back_value, 4),  # tombstoned, then claimed again: there
        ],
    )
    assert index.entries("T1") == []
    assert [e.claim_offset for e in index.entries("T2")] == [3]


async def test_a_waiter_s_step_ends_after_its_time_when_nothing_arrives() -> None:
    index = ClaimsIndex.in_memory(TOPIC, 1)
    started = asyncio.get_running_loop().time()
    assert await index.wait_for_key("nobody-writes-this", lambda: False) is True
    assert asyncio.get_running_loop().time() - started >= WAIT_STEP_S * 0.9
    assert index._key_waiters == {}  # nothing left behind


def test_an_unreadable_claims_record_is_skipped_not_fatal() -> None:
    index = ClaimsIndex.in_memory(TOPIC, 1)
    feed(index, 0, b"not json", b"k")
    feed(index, 1, b'{"trace_number": "T1"}', b"k2")  # not a claim
    assert index.count() == 0


def test_expired_final_claims_are_found_for_their_command_partitions_owner() -> None:
    index = ClaimsIndex.in_memory(TOPIC, 1)
    old = final_claim(claim_of(command("OLD"), 3, 1).claim, 0, result_for(command("OLD")))
    fresh = final_claim(claim_of(command("NEW"), 3, 2).claim, 1, result_for(command("NEW")))
    pending = claim_of(command("OPEN"), 3, 3).claim  # never final: never expires
    other = final_claim(claim_of(command("ELSE"), 4, 1).claim, 3, result_for(command("ELSE")))
    for offset, (claim, ts) in enumerate([(old, 1_000), (fresh, 9_000), (pending, 1_000), (other, 1_000)]):
        feed(index, offset, claim_record(TOPIC, claim, 1).value, claim.key.encode(), ts_ms=ts)
    assert [c.trace_number for c in index.expired(COMMANDS, 3, before_ms=5_000)] == ["OLD"]


async def test_a_waiter_wakes_when_its_claim_arrives_and_stops_when_abandoned() -> None:
    index = ClaimsIndex.in_memory(TOPIC, 1)
    claim = claim_of(command(), 0, 5).claim
    other = claim_of(command("T2"), 0, 6).claim
    waiting = asyncio.create_task(index.wait_for_key(claim.key, lambda: False))
    await asyncio.sleep(0.01)
    feed(index, 0, claim_record(TOPIC, other, 1).value, other.key.encode())  # another key: still waiting
    await asyncio.sleep(0.01)
    assert not waiting.done()
    feed(index, 1, claim_record(TOPIC, claim, 1).value, claim.key.encode())
    assert await asyncio.wait_for(waiting, 1.0) is True
    assert index.has(claim.key)
    abandoned = await index.wait_for_key("nobody", lambda: True)
    assert abandoned is False


def test_the_store_survives_a_restart_from_its_position(tmp_path: Path) -> None:
    store = ClaimsStore(tmp_path / "index-0.sqlite")
    claim = claim_of(command(), 0, 5).claim
    store.apply(2, [(7, claim.key.encode(), claim_record(TOPIC, claim, 1).value, 1_000)], 8)
    store.close()
    again = ClaimsStore(tmp_path / "index-0.sqlite")
    assert again.position(2) == 8
    assert [e.claim.key for e in again.entries("T1")] == [claim.key]
    again.close()


def test_a_fetch_of_several_claims_partitions_is_stored_in_one_sqlite_commit(tmp_path: Path) -> None:
    # The follower applies a whole fetch at once: records of two partitions and a third partition whose
    # position moved past a commit marker alone. One commit, not one or two per partition.
    store = ClaimsStore(tmp_path / "index-0.sqlite")
    first, second = claim_of(command("A"), 0, 5).claim, claim_of(command("B"), 1, 6).claim
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    store.apply_many(
        {
            0: ([(7, first.key.encode(), claim_record(TOPIC, first, 1).value, 1_000)], 9),
            1: ([(3, second.key.encode(), claim_record(TOPIC, second, 1).value, 1_000)], 4),
            2: ([], 12),
        }
    )
    store._db.set_trace_callback(None)
    assert statements.count("COMMIT") == 1
    store.close()
    again = ClaimsStore(tmp_path / "index-0.sqlite")
    assert [again.position(p) for p in (0, 1, 2)] == [9, 4, 12]
    assert [e.claim.key for e in again.entries("A") + again.entries("B")] == [first.key, second.key]
    again.close()


def test_two_processes_on_one_state_directory_take_two_store_files(tmp_path: Path) -> None:
    first = open_claims_store(tmp_path, "g", TOPIC)
    second = open_claims_store(tmp_path, "g", TOPIC)
    assert first.path is not None
    assert second.path is not None
    assert first.path != second.path
    first.close()
    second.close()


def test_no_state_directory_keeps_the_index_in_memory() -> None:
    store = open_claims_store(None, "g", TOPIC)
    assert store.path is None
    store.close()


def test_a_final_claim_older_than_the_dedupe_window_owns_nothing_even_before_its_tombstone() -> None:
    old, new = command(), command()
    final = final_claim(claim_of(old, 0, 5).claim, 10, result_for(old))
    found = [Entry(final, 10, appended_ms=1_000), Entry(claim_of(new, 3, 9).claim, 40, appended_ms=9_000)]
    within = standing(f"{COMMANDS}:3:9", found, forgotten_before_ms=500)
    after = standing(f"{COMMANDS}:3:9", found, forgotten_before_ms=2_000)
    assert within is not None
    assert within.kind == "duplicate"
    assert after is not None
    assert after.kind == "owner"
    # a claim still in progress is never forgotten, however old
    pending = [Entry(claim_of(old, 0, 5).claim, 10, appended_ms=1), found[1]]
    still = standing(f"{COMMANDS}:3:9", pending, forgotten_before_ms=2_000)
    assert still is not None
    assert still.kind == "duplicate"
