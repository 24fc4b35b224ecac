"""Claiming a trace number for the whole deployment before any money call (claims.py has the rule, and
docs/design.md, "One trace number, one payment", the why): the claim is written through the partition's
fenced writer, read back from the claims index, and the first claim in log order owns the trace number.
A loser is answered here: a reuse with other parameters is ``rejected``, an exact duplicate gets the
owner's outcome once it has one; either way its own claim is tombstoned with its answer.
"""

from __future__ import annotations

from typing import Literal

from worker.contracts import Command, Result
from worker.events import ClaimReadBack, CommandRejected
from worker.pipeline.claims import claim_key, claim_record, claim_tombstone, new_claim, standing
from worker.pipeline.claims_index import ClaimsIndex
from worker.pipeline.effects import Effects
from worker.pipeline.job import Job
from worker.pipeline.results import claimed_elsewhere_result, duplicate_result

__all__ = ["Claimant"]


class Claimant:
    def __init__(self, *, effects: Effects, claims: ClaimsIndex, dedupe_window_s: float) -> None:
        self._fx = effects
        self._claims = claims
        self._dedupe_window_s = dedupe_window_s

    async def claim(self, job: Job, command: Command, print_: str) -> bool | None:
        """Claim the trace number for the whole deployment (claims.py). None: this command owns it, go on;
        True: answered without a money call (a duplicate, or a trace number another command owns); False:
        the job was abandoned while it waited."""
        key = claim_key(self._fx.topic, job.partition, job.offset)
        if not await self._claimed(job, command, print_, key):
            return False
        while True:
            forgotten_ms = int((self._fx.clock.now().timestamp() - self._dedupe_window_s) * 1000)
            found = standing(
                key, self._claims.entries(command.trace_number), forgotten_before_ms=forgotten_ms
            )
            if found is None:
                raise RuntimeError(f"the claim {key} left the index before it was decided")
            if found.kind == "owner":
                job.owned_claim = found.owner
                return None
            # This command lost: its own claim goes (tombstoned with its answer), the owner's stays.
            mine = new_claim(
                command, print_, topic=self._fx.topic, partition=job.partition, offset=job.offset
            )
            release = claim_tombstone(self._claims.topic, mine, self._claims.partitions)
            owner = found.owner.claim
            if found.kind == "reused":
                result = claimed_elsewhere_result(
                    command, owner, partition=job.partition, offset=job.offset, now=self._fx.clock.now()
                )
                await self._fx.answer(job, [release, self._fx.outbox.result(result, job.headers)])
                self._fx.sink.emit(CommandRejected(command.trace_number, command.msisdn, "trace_reused"))
                self._fx.emit_result(job, result.outcome, result.resolved_by, None, 0, kind=command.type)
                return True
            owners = await self._owners_result(job, owner.key)
            if owners is False:
                return False
            if owners is None:
                continue  # the owner's claim aged out meanwhile: decide again
            result = duplicate_result(
                owners,
                partition=job.partition,
                offset=job.offset,
                now=self._fx.clock.now(),
                owner=owner.where,
            )
            await self._fx.answer(job, [release, self._fx.outbox.result(result, job.headers)])
            self._fx.emit_result(
                job, result.outcome, result.resolved_by, result.response_code, 0, kind=command.type
            )
            return True

    async def _claimed(self, job: Job, command: Command, print_: str, key: str) -> bool:
        """This message's claim is in the index (written now unless an earlier life wrote it); False if
        the job was abandoned while it waited to read its own claim back."""
        claims = self._claims
        if claims.has(key):
            return True
        claim = new_claim(command, print_, topic=self._fx.topic, partition=job.partition, offset=job.offset)
        written_at_s = self._fx.clock.monotonic_s()
        await self._fx.writer(job).write([claim_record(claims.topic, claim, claims.partitions)])
        while not claims.has(key):  # read-your-write: the index has read up to this claim
            if not await claims.wait_for_key(key, lambda: job.abandoned):
                return False
        self._fx.sink.emit(ClaimReadBack(self._fx.clock.monotonic_s() - written_at_s))
        return True

    async def _owners_result(self, job: Job, owner_key: str) -> Result | Literal[False] | None:
        """An exact duplicate waits for the owner's outcome (its claim's final record). None: the owner's
        claim aged out meanwhile; False: the job was abandoned."""
        entry = self._claims.entry(owner_key)
        while entry is not None and entry.claim.result is None:
            if not await self._claims.wait_for_key(owner_key, lambda: job.abandoned):
                return False
            entry = self._claims.entry(owner_key)
        return None if entry is None else entry.claim.result
