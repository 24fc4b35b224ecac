"""Deployment-wide trace-number claims: what a claim is, and who owns a trace number. Pure.

The journal is co-partitioned with the commands, so it sees only its own partition's trace numbers. A
command that arrives on another partition (another partitioner, a keyless or misrouted message, a topic
that gained partitions) or that reuses a trace number under another MSISDN would be sent again. So before
any money call a command *claims* its trace number on the claims topic (``ecash.claims``), which every
worker reads whole (Kafka Streams' global-table pattern, claims_index.py):

- a claim's record key is the command message (``<topic>:<partition>:<offset>``), so two commands never
  overwrite each other's claim under compaction; its partition is chosen by the trace number (murmur2,
  as Kafka's default partitioner would), so every claim of one trace number is in one partition, in one
  order;
- the first claim in that order owns the trace number. A claim is written through the command partition's
  fenced transactional writer: a worker that lost its partition cannot claim;
- the owner's final outcome is written on its claim (same key, in the transaction that commits the
  outcome), so an exact duplicate anywhere gets that outcome. A final record carries where its claim was
  (``claim_offset``): compaction keeps only the final, and the order must survive it;
- a command that loses tombstones its own claim when it is answered; the owner's claim is tombstoned by
  its partition's owner once its final outcome is older than the dedupe window (like the journal).

``docs/design.md`` ("One trace number, one payment") has the reasoning and the alternatives measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from aiokafka.partitioner import murmur2
from pydantic import BaseModel, ConfigDict

from worker.contracts import Command, Result
from worker.pipeline.ownership import OutRecord

__all__ = [
    "CLAIM_VERSION",
    "Claim",
    "ClaimState",
    "Entry",
    "Standing",
    "claim_key",
    "claim_record",
    "claim_tombstone",
    "claims_partition",
    "final_claim",
    "new_claim",
    "standing",
]

CLAIM_VERSION = 1


class ClaimState(StrEnum):
    CLAIMED = "claimed"  # the command owns (or is asking for) the trace number; no outcome yet
    FINAL = "final"  # the owner's outcome is known: ``result`` (``unresolved`` included, until closed)


class Claim(BaseModel):
    """The value of a record on the claims topic."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    v: int = CLAIM_VERSION
    trace_number: str
    fingerprint: str
    command_topic: str
    command_partition: int
    command_offset: int
    state: ClaimState = ClaimState.CLAIMED
    claim_offset: int | None = None  # on a final record: the offset of the claim it finishes
    result: Result | None = None

    @property
    def key(self) -> str:
        return claim_key(self.command_topic, self.command_partition, self.command_offset)

    @property
    def where(self) -> str:
        """The owning command, as an operator finds it: ``ecash.commands[2]@1041``."""
        return f"{self.command_topic}[{self.command_partition}]@{self.command_offset}"


def claim_key(topic: str, partition: int, offset: int) -> str:
    return f"{topic}:{partition}:{offset}"


def claims_partition(trace_number: str, partitions: int) -> int:
    """Where every claim of ``trace_number`` goes: Kafka's default partitioner over its UTF-8 bytes."""
    return int(murmur2(trace_number.encode()) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class Entry:
    """A live claim as the index holds it: the claim, and its place in its partition's order."""

    claim: Claim
    claim_offset: int
    appended_ms: int = 0  # when its latest record was appended (the broker's clock)


@dataclass(frozen=True)
class Standing:
    """Where a command stands for its trace number.

    ``owner``: it owns it (send). ``duplicate``: an earlier command with the same parameters owns it (answer
    with that one's outcome). ``reused``: an earlier command with other parameters owns it (``rejected``).
    """

    kind: Literal["owner", "duplicate", "reused"]
    owner: Entry


def standing(key: str, entries: list[Entry], *, forgotten_before_ms: int = 0) -> Standing | None:
    """The first claim owns the trace number. None if ``key`` has no claim among ``entries``.

    A final claim appended before ``forgotten_before_ms`` (now minus the dedupe window) owns nothing any
    more: the trace number is free again, whether or not its tombstone has been written yet."""
    mine = next((entry for entry in entries if entry.claim.key == key), None)
    if mine is None:
        return None
    live = [
        entry
        for entry in entries
        if entry is mine
        or entry.claim.state is not ClaimState.FINAL
        or entry.appended_ms >= forgotten_before_ms
    ]
    first = min(live, key=lambda entry: entry.claim_offset)
    if first.claim.key == key:
        return Standing("owner", mine)
    if first.claim.fingerprint == mine.claim.fingerprint:
        return Standing("duplicate", first)
    return Standing("reused", first)


def new_claim(command: Command, fingerprint: str, *, topic: str, partition: int, offset: int) -> Claim:
    return Claim(
        trace_number=command.trace_number,
        fingerprint=fingerprint,
        command_topic=topic,
        command_partition=partition,
        command_offset=offset,
    )


def final_claim(claim: Claim, claim_offset: int | None, result: Result) -> Claim:
    update = {"state": ClaimState.FINAL, "claim_offset": claim_offset, "result": result}
    return claim.model_copy(update=update)


def claim_record(topic: str, claim: Claim, partitions: int) -> OutRecord:
    return OutRecord(
        topic,
        claim.key.encode(),
        claim.model_dump_json(exclude_none=True).encode(),
        claims_partition(claim.trace_number, partitions),
    )


def claim_tombstone(topic: str, claim: Claim, partitions: int) -> OutRecord:
    return OutRecord(topic, claim.key.encode(), None, claims_partition(claim.trace_number, partitions))
