"""The record key rule: a command's Kafka key is its MSISDN, as UTF-8 bytes. Pure and total.

Why: one wallet's commands run strictly in order only if they all reach one partition, and Kafka's Java
default partitioner (murmur2 over the key bytes, ``toPositive(hash) % partitions``) sends equal keys to one
partition. A command keyed by anything else (no key, an order id, the MSISDN in UTF-16...) lands beside
other wallets' commands and out of order with its own wallet's (docs/contracts.md, "Record key and
partitioner").

``key_problem(key, msisdn)`` says what is wrong with a record's key, or ``None`` when it is right. It never
raises, whatever the bytes, and it never echoes a key as it came: a shown key is cut to
``SHOWN_KEY_CHARS`` characters and escaped when it is not plain printable ASCII (as ``intake._shown`` does
for field names). The MSISDN may be shown: the command's own result carries it.

The processor turns a problem into a ``rejected`` result (reason ``KEY_REASON``, field ``key``) before the
trace number is claimed, so a producer can send the same command again with the right key.
"""

from __future__ import annotations

from typing import Final

from aiokafka.partitioner import murmur2

from worker.contracts import Command
from worker.pipeline.intake import DeadLetterReason, Decision, Intake, Parsed, Rejection

__all__ = [
    "KEY_MISMATCH",
    "KEY_MISSING",
    "KEY_REASON",
    "RULES",
    "SHOWN_KEY_CHARS",
    "java_partition",
    "key_problem",
    "key_rejection",
    "on_commands_topic",
    "shown_bytes",
    "shown_text",
]

KEY_REASON: Final = "key_not_msisdn"
KEY_MISSING: Final = "key_missing"
KEY_MISMATCH: Final = "key_mismatch"
RULES: Final = (KEY_MISSING, KEY_MISMATCH)
SHOWN_KEY_CHARS: Final = 32
_EXPECTED = (
    "the record key must be the command's MSISDN {msisdn} as UTF-8 bytes, partitioned with Kafka's "
    "default murmur2 partitioner (docs/contracts.md, Record key and partitioner), so that one wallet's "
    "commands stay in order"
)


def key_problem(key: bytes | None, msisdn: str) -> tuple[str, str] | None:
    """``(rule, detail)`` when ``key`` is not exactly ``msisdn`` encoded as UTF-8, else ``None``.

    ``rule`` is ``key_missing`` (no key, or an empty one) or ``key_mismatch`` (not UTF-8, or another
    text); ``detail`` is one sentence for the producer, ``key: ... [rule]`` like intake's rejections.
    """
    try:
        return _problem(key, msisdn)
    except Exception as exc:  # noqa: BLE001 - no input is known to get here; a bug must cost one message, not the loop
        return KEY_MISMATCH, _detail(
            msisdn, f"the key could not be checked ({type(exc).__name__})", KEY_MISMATCH
        )


def key_rejection(command: Command, key: bytes | None) -> Rejection | None:
    """The ``rejected`` outcome for a valid command whose record key breaks the rule, else ``None``."""
    problem = key_problem(key, command.msisdn)
    if problem is None:
        return None
    rule, detail = problem
    return Rejection(
        trace_number=command.trace_number,
        msisdn=command.msisdn,
        raw=command.model_dump(mode="json"),
        reason=KEY_REASON,
        detail=detail,
        field="key",
        rule=rule,
    )


def _problem(key: bytes | None, msisdn: str) -> tuple[str, str] | None:
    if key is None:
        return KEY_MISSING, _detail(msisdn, "the record has no key", KEY_MISSING)
    if not key:
        return KEY_MISSING, _detail(msisdn, "the record's key is empty", KEY_MISSING)
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        found = f"the record's key is not UTF-8 ({len(key)} bytes: {shown_bytes(key)})"
        return KEY_MISMATCH, _detail(msisdn, found, KEY_MISMATCH)
    if text == msisdn:
        return None
    return KEY_MISMATCH, _detail(msisdn, f"the record's key is {shown_text(text)}", KEY_MISMATCH)


def _detail(msisdn: str, found: str, rule: str) -> str:
    return f"key: {_EXPECTED.format(msisdn=shown_text(msisdn))}; {found} [{rule}]"


def shown_text(text: str) -> str:
    """Text as it can be quoted back: bounded, quoted, escaped when not plain printable ASCII."""
    clipped = text[:SHOWN_KEY_CHARS]
    if clipped.isascii() and clipped.isprintable() and '"' not in clipped and "\\" not in clipped:
        shown = f'"{clipped}"'
    else:
        shown = ascii(clipped)
    return shown + (f"... ({len(text)} characters)" if len(text) > SHOWN_KEY_CHARS else "")


def shown_bytes(data: bytes) -> str:
    """Bytes as they can be quoted back: bounded and escaped (``b'\\xff...'``)."""
    clipped = data[:SHOWN_KEY_CHARS]
    return repr(clipped) + ("..." if len(data) > SHOWN_KEY_CHARS else "")


def java_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's Java default partitioner gives ``key``: ``toPositive(murmur2(key)) % n``."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def on_commands_topic(intake: Intake, key: bytes | None, *, decisions_topic: str) -> Intake:
    """What a message read from the commands topic becomes, beyond parsing. Pure.

    A valid command whose key is not its MSISDN is rejected (before the journal and any claim: it claims
    nothing); a review decision is dead-lettered (decisions are read from their own topic only, so that
    ACLs can keep producers of commands from closing reviews)."""
    if isinstance(intake, Parsed):
        return key_rejection(intake.command, key) or intake
    if isinstance(intake, Decision):
        return DeadLetterReason(
            "review_decision_wrong_topic",
            f"review decisions are read from {decisions_topic} only (its own topic, so that ACLs can keep "
            "producers of commands from closing reviews); use `ecash-worker review resolve`",
        )
    return intake
