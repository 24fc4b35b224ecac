"""What each owned partition commits: its commands' and its review decisions' offsets, in one transaction.

The decisions topic is co-partitioned with the commands topic: partition *p* of both is owned together,
and *p*'s transactions (ownership.py) commit both streams' commit points (offsets.py) with the results
they free. A partition rewound or released forgets both.
"""

from __future__ import annotations

from worker.pipeline.offsets import OffsetTracker
from worker.pipeline.ownership import COMMANDS, DECISIONS

__all__ = ["StreamOffsets", "committable_offsets"]


def committable_offsets(commands: int | None, decisions: int | None) -> dict[str, int]:
    """The offsets a partition's next transaction commits, by stream (a stream with nothing seen: none)."""
    offsets = {COMMANDS: commands, DECISIONS: decisions}
    return {stream: offset for stream, offset in offsets.items() if offset is not None}


class StreamOffsets:
    """The commit points of both streams, per partition."""

    def __init__(self, commands_topic: str, decisions_topic: str) -> None:
        self.commands = OffsetTracker()
        self.decisions = OffsetTracker()
        self._topics = {COMMANDS: commands_topic, DECISIONS: decisions_topic}

    def of(self, stream: str) -> OffsetTracker:
        return self.decisions if stream == DECISIONS else self.commands

    def topic_of(self, stream: str) -> str:
        return self._topics[DECISIONS] if stream == DECISIONS else self._topics[COMMANDS]

    def committable(self, partition: int) -> dict[str, int]:
        return committable_offsets(
            self.commands.of(partition).committable(), self.decisions.of(partition).committable()
        )

    def forget(self, partition: int) -> None:
        self.commands.forget(partition)
        self.decisions.forget(partition)

    def rewind_points(self, partition: int) -> tuple[int | None, int | None]:
        """Forget the partition; return where each stream must be read again from (commands, decisions):
        its commit point, or None when nothing was seen (the consumer's position is right as it is)."""
        commands = self.commands.of(partition).committable()
        decisions = self.decisions.of(partition).committable()
        self.forget(partition)
        return commands, decisions
