"""A message of an owned partition on its way through the processor: where it came from, what intake made
of it, the lane it runs in, and whether it was abandoned (its partition revoked, the worker stopping)."""

from __future__ import annotations

from dataclasses import dataclass, field

from worker.pipeline.claims import Entry
from worker.pipeline.intake import Decision, Intake, Parsed, Rejection
from worker.pipeline.ownership import COMMANDS, PartitionWriter

__all__ = ["Job"]


@dataclass(eq=False)
class Job:
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    intake: Intake
    cancelled: bool = False
    parent: Job | None = None  # set when a job works on behalf of another (an earlier message's record)
    # The writer of the partition as it was when the job started: if that ownership ends (fenced, lost,
    # released), the job can write nothing more, even if the partition is owned again later.
    writer: PartitionWriter | None = None
    stream: str = COMMANDS  # or DECISIONS: a review decision from the partition's decisions topic
    topic: str | None = None  # the topic it was read from, when not the commands topic
    # Its own claim as the index held it when the job learnt it owns the trace number (claiming.py): the
    # final claim is built from it without reading the index again.
    owned_claim: Entry | None = None
    lane: str = field(init=False)

    def __post_init__(self) -> None:
        # One lane per (partition, MSISDN): a wallet's commands are in order within the partition they
        # arrive on. A command misrouted to another partition (another partitioner) gets a lane of its
        # own there, so an exact duplicate waiting for the first command's outcome (claims.py) never waits
        # in the very lane that command must pass through (which would deadlock after a failover).
        intake = self.intake
        if isinstance(intake, Parsed):
            wallet = intake.command.msisdn
        elif isinstance(intake, Decision):
            wallet = intake.decision.msisdn
        elif isinstance(intake, Rejection):
            wallet = intake.msisdn or f"trace:{intake.trace_number}"
        else:
            wallet = "dlq"
        self.lane = f"{self.partition}:{wallet}"

    @property
    def lane_key(self) -> str:
        return self.lane

    @property
    def needs_slot(self) -> bool:
        """Commands take an in-flight slot; decisions, rejections and dead letters do not (lanes.py)."""
        return isinstance(self.intake, Parsed)

    @property
    def abandoned(self) -> bool:
        """Its partition was revoked or the worker is stopping: stop at the next safe point."""
        return self.cancelled or (self.parent is not None and self.parent.abandoned)
