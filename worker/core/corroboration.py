"""Is a Status Inquiry ``PROCESSED`` about *this* command's money? Ask the MSISDN's Transaction History.

Status Inquiry is asked by trace number and amount only (spec 2.7: no MSISDN, no type). A ``PROCESSED``
for a trace number that another wallet, or another system on the same agent, used with the same amount
says nothing about our command. So a ``PROCESSED`` is believed only when

1. the answer echoes our trace number (``echo_mismatch``: a missing or different echo is not believed), and
2. the command's MSISDN's Transaction History shows the transaction (``corroborate``): an entry whose trace
   number is ours (History writes it ``<agent>-<trace>``), whose status, if given, is ``PROCESSED``, and
   whose amount, if given, is the command's amount with the command's direction. History amounts are from
   the member's side (``Rp -14.500,00``): a Charge shows negative, a Credit positive, as
   ``worker.ops.reconcile`` reads them too.

Anything else, including a History that could not be read, is not a corroboration: the resolution goes on
(History may lag) and, past the deadline, a person decides. Pure functions over plain values; the reasons
are in ``docs/resolution.md`` ("Corroboration").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol

from worker.contracts import Command, CommandType

__all__ = [
    "PROCESSED",
    "Corroborated",
    "Direction",
    "Expected",
    "HistoryLine",
    "NotCorroborated",
    "Verdict",
    "corroborate",
    "echo_mismatch",
    "expected_for",
    "history_unreadable",
    "matches",
    "mismatch",
    "trace_matches",
]

PROCESSED = "PROCESSED"
Direction = Literal["charge", "credit"]


class HistoryLine(Protocol):
    """What corroboration reads of one Transaction History entry (``worker.ecash.models.HistoryEntry``)."""

    @property
    def trace_number(self) -> str | None: ...
    @property
    def amount(self) -> Decimal | None: ...
    @property
    def amount_raw(self) -> str | None: ...
    @property
    def status(self) -> str | None: ...
    @property
    def transaction_number(self) -> str | None: ...
    @property
    def trx_datetime_raw(self) -> str | None: ...


@dataclass(frozen=True)
class Expected:
    """The command whose money a ``PROCESSED`` would prove moved."""

    trace_number: str
    amount: Decimal  # positive, as commanded
    direction: Direction
    msisdn: str

    @property
    def signed_amount(self) -> Decimal:
        """As History shows it, from the member's side: a Charge takes money away."""
        return -self.amount if self.direction == "charge" else self.amount


def expected_for(command: Command) -> Expected:
    direction: Direction = "charge" if command.type is CommandType.CHARGE else "credit"
    return Expected(command.trace_number, command.amount, direction, command.msisdn)


@dataclass(frozen=True)
class Corroborated:
    """History shows the transaction: the ``PROCESSED`` is ours."""

    transaction_number: str | None
    trx_datetime: str | None  # as History wrote it
    evidence: str


@dataclass(frozen=True)
class NotCorroborated:
    """The ``PROCESSED`` is not believed; ``evidence`` says why, for the attempts and the review."""

    evidence: str


Verdict = Corroborated | NotCorroborated


def echo_mismatch(expected: Expected, echoed: str | None) -> NotCorroborated | None:
    """``None`` when the answer echoes our trace number exactly (blanks around it aside); else why not."""
    if echoed is None or not echoed.strip():
        return NotCorroborated(
            "Status Inquiry answered PROCESSED without echoing a trace number "
            f"(asked {expected.trace_number})"
        )
    if echoed.strip() != expected.trace_number:
        return NotCorroborated(
            f"Status Inquiry answered PROCESSED for trace number {echoed.strip()!r}, "
            f"not {expected.trace_number!r}"
        )
    return None


def trace_matches(entry_trace: str | None, trace_number: str) -> bool:
    """History's ``traceNumber`` is ours: ``<agent>-<trace>`` (the prefix is not checked: the spec's
    example prefix ``001`` is not its login username ``agent01``), or the bare trace number."""
    if entry_trace is None:
        return False
    shown = entry_trace.strip()
    if shown == trace_number:
        return True
    _, sep, rest = shown.partition("-")
    return bool(sep) and rest == trace_number


def mismatch(expected: Expected, entry: HistoryLine) -> str | None:
    """For an entry with our trace number: ``None`` if it is our transaction, else what differs."""
    problems = []
    status = (entry.status or "").strip().upper()
    if status and status != PROCESSED:
        problems.append(f"status {status}")
    if entry.amount is None:
        if entry.amount_raw is not None and entry.amount_raw.strip():
            problems.append(f"an amount that cannot be read ({entry.amount_raw.strip()!r})")
    elif entry.amount != expected.signed_amount:
        shown = entry.amount_raw.strip() if entry.amount_raw else str(entry.amount)
        problems.append(
            f"amount {shown} (a {expected.direction} of {expected.amount} would show as "
            f"{expected.signed_amount})"
        )
    return "; ".join(problems) or None


def matches(expected: Expected, entry: HistoryLine) -> bool:
    """This entry corroborates the command (to stop paging History early)."""
    return trace_matches(entry.trace_number, expected.trace_number) and mismatch(expected, entry) is None


def corroborate(expected: Expected, entries: Iterable[HistoryLine]) -> Verdict:
    """The first entry that is our transaction corroborates; without one, say what History did show."""
    read = 0
    near: list[str] = []
    for entry in entries:
        read += 1
        if not trace_matches(entry.trace_number, expected.trace_number):
            continue
        problem = mismatch(expected, entry)
        if problem is None:
            number = entry.transaction_number
            at = entry.trx_datetime_raw
            return Corroborated(
                number,
                at,
                f"the Transaction History of MSISDN {expected.msisdn} shows trace number "
                f"{expected.trace_number} (transaction {number or '?'} at {at or '?'})",
            )
        near.append(f"transaction {entry.transaction_number or '?'} with {problem}")
    prefix = f"Status Inquiry answered PROCESSED but the Transaction History of MSISDN {expected.msisdn} "
    if near:
        return NotCorroborated(
            f"{prefix}shows trace number {expected.trace_number} only as {', '.join(near[:3])}"
        )
    return NotCorroborated(
        f"{prefix}does not show trace number {expected.trace_number} "
        f"({read} entr{'y' if read == 1 else 'ies'} read)"
    )


def history_unreadable(expected: Expected, error: str) -> NotCorroborated:
    """History could not be read (an API error, no answer): that is not a corroboration either."""
    return NotCorroborated(
        f"Status Inquiry answered PROCESSED but the Transaction History of MSISDN {expected.msisdn} "
        f"could not be read: {error}"
    )
