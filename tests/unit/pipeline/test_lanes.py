"""Per-MSISDN order, concurrency across MSISDNs, a bound on in-flight work."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from worker.pipeline.lanes import Lanes


@dataclass(eq=False)
class FakeJob:
    lane_key: str
    seq: int
    partition: int = 0
    cancelled: bool = False
    needs_slot: bool = True


async def test_one_msisdn_runs_in_order_and_many_run_side_by_side() -> None:
    seen: dict[str, list[int]] = {}
    running = 0
    peak = 0

    async def run(job: FakeJob) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001 * (job.seq % 3))
        seen.setdefault(job.lane_key, []).append(job.seq)
        running -= 1

    lanes: Lanes[FakeJob] = Lanes(run=run, max_in_flight=8)
    for seq in range(200):
        lanes.submit(FakeJob(lane_key=f"m{seq % 20}", seq=seq))
    assert lanes.buffered == 200
    await asyncio.wait_for(lanes.wait_idle(), 10)
    assert all(order == sorted(order) for order in seen.values())
    assert sum(len(v) for v in seen.values()) == 200
    assert peak == 8
    assert lanes.buffered == 0


async def test_a_waiting_lane_holds_only_itself() -> None:
    release = asyncio.Event()
    done: list[str] = []

    async def run(job: FakeJob) -> None:
        if job.lane_key == "slow":
            await release.wait()
        done.append(f"{job.lane_key}:{job.seq}")

    lanes: Lanes[FakeJob] = Lanes(run=run, max_in_flight=4)
    lanes.submit(FakeJob("slow", 1))
    lanes.submit(FakeJob("slow", 2))
    lanes.submit(FakeJob("fast", 3))
    await asyncio.sleep(0.01)
    assert done == ["fast:3"]
    assert lanes.waiting == 1
    release.set()
    await asyncio.wait_for(lanes.wait_idle(), 5)
    assert done == ["fast:3", "slow:1", "slow:2"]


async def test_cancelled_partition_jobs_are_skipped_and_running_ones_returned() -> None:
    gate = asyncio.Event()
    done: list[int] = []

    async def run(job: FakeJob) -> None:
        await gate.wait()
        done.append(job.seq)

    lanes: Lanes[FakeJob] = Lanes(run=run, max_in_flight=4)
    lanes.submit(FakeJob("a", 1, partition=1))
    lanes.submit(FakeJob("a", 2, partition=1))
    lanes.submit(FakeJob("b", 3, partition=2))
    await asyncio.sleep(0.01)
    running = lanes.cancel_partitions({1})
    assert [job.seq for job in running] == [1]
    gate.set()
    await asyncio.wait_for(lanes.wait_idle(), 5)
    assert sorted(done) == [1, 3]  # 1 was already running (the processor sees it cancelled); 2 never ran


async def test_work_that_needs_no_slot_is_not_stuck_behind_commands_holding_every_slot() -> None:
    """An outage: every in-flight slot is held by a command waiting for the API; a review decision (no
    slot) for another wallet still runs."""
    release = asyncio.Event()
    done: list[str] = []

    async def run(job: FakeJob) -> None:
        if job.needs_slot:
            await release.wait()
        done.append(job.lane_key)

    lanes: Lanes[FakeJob] = Lanes(run=run, max_in_flight=2)
    for seq in range(4):
        lanes.submit(FakeJob(lane_key=f"cmd{seq}", seq=seq))
    lanes.submit(FakeJob(lane_key="decision", seq=9, needs_slot=False))
    for _ in range(20):
        await asyncio.sleep(0)
    assert done == ["decision"]
    assert lanes.in_flight == 2  # the commands hold the two slots, the other two wait for one
    release.set()
    await lanes.wait_idle()
    assert sorted(done) == ["cmd0", "cmd1", "cmd2", "cmd3", "decision"]


async def test_waiting_for_room_returns_when_a_job_leaves_the_buffer_or_at_the_timeout() -> None:
    release = asyncio.Event()

    async def run(job: FakeJob) -> None:
        if job.seq == 0:
            await release.wait()

    lanes: Lanes[FakeJob] = Lanes(run=run, max_in_flight=8)
    lanes.submit(FakeJob(lane_key="m0", seq=0))
    lanes.submit(FakeJob(lane_key="m0", seq=1))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await lanes.wait_room(below=2, timeout_s=0.05)  # nothing drains: the timeout
    assert loop.time() - started >= 0.05
    assert lanes.buffered == 2
    waiting = asyncio.create_task(lanes.wait_room(below=2, timeout_s=10))
    await asyncio.sleep(0)
    assert not waiting.done()
    release.set()  # the first job ends and leaves the buffer: room
    await asyncio.wait_for(waiting, 1)
    assert lanes.buffered < 2
    await lanes.wait_room(below=5, timeout_s=10)  # room already: at once
    await asyncio.wait_for(lanes.wait_idle(), 1)
