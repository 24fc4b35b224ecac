"""``ecash-worker review``: the manual-review queue, and settling an item in it.

    ecash-worker review list
    ecash-worker review show TRACE [--item KEY]
    ecash-worker review resolve TRACE --outcome succeeded|failed --by NAME --reason TEXT
                                [--item KEY] [--transaction-number N] [--wait-s 60 | --no-wait]

The queue is the compacted review topic, one item per command (key = ``TRACE:PARTITION:OFFSET``): the
latest record of an item is its state, and a ``closed`` record supersedes the ``open`` one. Two commands
that share a trace number are two items; ``--item`` picks one when a trace number has several.

``resolve`` does not write a result itself: it produces a review decision to the review decisions topic
(``ECASH_REVIEW_DECISIONS_TOPIC``, a topic of its own so that ACLs can reserve it to operators), to the
partition of the item's command, so the worker that owns that partition (the journal's only writer)
applies it in order with that wallet's other commands, then publishes the final result
(``resolved_by: manual``) and closes the item. ``resolve`` waits for that result and prints it.

Exit codes:
  0 done
  1 show: no record for the trace number; resolve: the worker refused the decision (dead-lettered:
    its journal has no unresolved command for the trace number) or published another outcome
  2 usage or configuration error; resolve: no open review record for the trace number, or several
    (name one with --item)
  3 Kafka unreachable
  5 resolve: no final result within the wait (the decision is delivered; a ``failed`` one waits for the
    API during an outage: docs/operations.md)
"""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any, TextIO

import click
from pydantic import ValidationError

from worker.commandline import Group, arguments, help_text
from worker.contracts import ResolvedBy, ReviewDecision, ReviewRecord, review_item_key
from worker.ops.arguments import SECONDS
from worker.ops.awaiting import Delivery, produce_and_await_result
from worker.ops.command import (
    EXIT_CONFIG,
    EXIT_NO_RESULT,
    EXIT_NOT_OK,
    EXIT_OK,
    OpsError,
    invalid,
    run_command,
)
from worker.ops.output import Console, Format, mask_msisdn, output_option
from worker.ops.reading import read_topic
from worker.ops.send import DEFAULT_WAIT_S, result_record
from worker.settings import Settings

__all__ = [
    "ATTEMPT_COLUMNS",
    "DECISION_OUTCOMES",
    "ITEM_HELP",
    "LIST_COLUMNS",
    "command",
    "decision_for",
    "find_item",
    "item_key",
    "key_and_value",
    "latest_records",
    "list_open",
    "list_row",
    "load_reviews",
    "no_result_note",
    "open_items",
    "report",
    "resolve",
    "run",
    "show",
    "summary",
]

LIST_COLUMNS = ("item", "trace_number", "msisdn", "amount", "type", "opened_at", "last_known_state")
ATTEMPT_COLUMNS = ("at", "operation", "outcome_class", "response_code", "detail")
DECISION_OUTCOMES = ("succeeded", "failed")
ITEM_HELP = "the item (TRACE:PARTITION:OFFSET, as `review list` shows) when the trace number has several"


@click.group(
    "review",
    cls=Group,
    short_help="the manual-review queue: list, show and resolve unresolved commands",
    help=help_text(__doc__),
    subcommand_metavar="ACTION [ARGS]...",
)
def command() -> None:
    """``list``, ``show`` and ``resolve``; ``run`` does each."""


@command.command("list", short_help=(line := "the open review items (MSISDN masked)"), help=line)
@output_option
@click.pass_context
def _list_command(ctx: click.Context, /, **_: Any) -> int:
    return run(arguments(ctx))


@command.command(
    "show", short_help=(line := "one item's full evidence: the command and every attempt"), help=line
)
@click.argument("trace_number", metavar="TRACE", help="the trace number of the item")
@click.option("--item", default=None, metavar="KEY", help=ITEM_HELP)
@output_option
@click.pass_context
def _show_command(ctx: click.Context, /, **_: Any) -> int:
    return run(arguments(ctx))


@command.command(
    "resolve",
    short_help=(line := "settle an open item as succeeded or failed (the worker publishes the result)"),
    help=line,
    exclusive=[("wait_s", "no_wait")],
)
@click.argument("trace_number", metavar="TRACE", help="the trace number of the item")
@click.option("--item", default=None, metavar="KEY", help=ITEM_HELP)
@click.option("--outcome", required=True, type=click.Choice(DECISION_OUTCOMES), help="what really happened")
@click.option("--by", "decided_by", required=True, metavar="NAME", help="who decides")
@click.option("--reason", required=True, metavar="TEXT", help="the evidence the decision rests on")
@click.option("--transaction-number", default=None, help="the E-Cash transaction number, if known")
@click.option("--wait-s", type=SECONDS, default=DEFAULT_WAIT_S, help="how long to wait for it")
@click.option("--no-wait", is_flag=True, help="produce the decision and exit (not with --wait-s)")
@output_option
@click.pass_context
def _resolve_command(ctx: click.Context, /, **_: Any) -> int:
    return run(arguments(ctx))


def run(args: SimpleNamespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    async def body(settings: Settings, console: Console) -> int:
        records = await load_reviews(settings, console)
        if args.review_command == "list":
            return list_open(records, console)
        if args.review_command == "show":
            return show(records, args.trace_number, console, item=args.item)
        return await resolve(settings, records, args, console)

    return run_command("review", args, body, out, err, needs_api=False)  # Kafka only


# --- reading the queue ------------------------------------------------------------------------------


def latest_records(
    messages: Iterable[tuple[bytes | None, bytes | None]],
) -> tuple[dict[str, ReviewRecord], int]:
    """Fold the topic's (key, value) pairs in offset order: the last record per item key wins, a
    tombstone removes it. Returns the records by item key and how many values were not review records."""
    latest: dict[str, ReviewRecord] = {}
    unreadable = 0
    for key, value in messages:
        trace = key.decode(errors="replace") if key is not None else None
        if value is None:
            if trace is not None:
                latest.pop(trace, None)
            continue
        try:
            record = ReviewRecord.model_validate_json(value)
        except ValidationError:
            unreadable += 1
            continue
        latest[trace or record.trace_number] = record
    return latest, unreadable


def key_and_value(message: Any) -> tuple[bytes | None, bytes | None]:
    return message.key, message.value


async def load_reviews(settings: Settings, console: Console) -> dict[str, ReviewRecord]:
    progress = console.progress(f"reading {settings.review_topic}", unit="records")
    try:
        messages = await read_topic(
            settings, settings.review_topic, "ECASH_REVIEW_TOPIC", key_and_value, progress=progress
        )
    finally:
        progress.done()
    latest, unreadable = latest_records(messages)
    if unreadable:
        console.note(
            f"skipped {unreadable} message(s) on {settings.review_topic} that are not review records"
        )
    return latest


def open_items(records: dict[str, ReviewRecord]) -> list[ReviewRecord]:
    """The open items, oldest first."""
    return sorted(
        (r for r in records.values() if r.state == "open"), key=lambda r: (r.opened_at, r.trace_number)
    )


def list_row(record: ReviewRecord) -> dict[str, Any]:
    command = record.command
    return {
        "item": item_key(record),
        "trace_number": record.trace_number,
        "msisdn": mask_msisdn(command.msisdn),
        "amount": command.amount,
        "type": command.type,
        "opened_at": record.opened_at,
        "last_known_state": record.last_known_state,
    }


def list_open(records: dict[str, ReviewRecord], console: Console) -> int:
    console.rows([list_row(r) for r in open_items(records)], LIST_COLUMNS, empty="(no open review items)")
    return EXIT_OK


# --- one item ---------------------------------------------------------------------------------------


def summary(record: ReviewRecord) -> dict[str, Any]:
    """Everything about an item but its attempts, for an operator about to decide (MSISDN in full)."""
    command = record.command
    return {
        "trace_number": record.trace_number,
        "state": record.state,
        "type": command.type,
        "msisdn": command.msisdn,
        "amount": command.amount,
        "transfer_type_id": command.transfer_type_id,
        "account_type_id": command.account_type_id,
        "description": command.description,
        "expires_at": command.expires_at,
        "metadata": command.metadata or None,
        "source": f"partition {record.source_partition} offset {record.source_offset}",
        "opened_at": record.opened_at,
        "last_known_state": record.last_known_state,
        "attempts": len(record.attempts),
        "closed_at": record.closed_at,
        "closed_outcome": record.closed_outcome,
        "closed_by": record.closed_by,
        "close_reason": record.close_reason,
    }


def item_key(record: ReviewRecord) -> str:
    return review_item_key(record.trace_number, record.source_partition, record.source_offset)


def find_item(records: dict[str, ReviewRecord], trace: str, item: str | None) -> ReviewRecord | None:
    """The trace number's item: the one named by ``item``, else its only one, else its only open one.

    Raises ``OpsError`` (exit 2) when the trace number has several open items and none is named."""
    if item is not None:
        found = next((r for r in records.values() if item_key(r) == item), None)
        return found if found is not None and found.trace_number == trace else None
    mine = [r for r in records.values() if r.trace_number == trace]
    if len(mine) <= 1:
        return mine[0] if mine else None
    still_open = [r for r in mine if r.state == "open"]
    if len(still_open) == 1:
        return still_open[0]
    keys = ", ".join(sorted(item_key(r) for r in (still_open or mine)))
    raise OpsError(
        f"trace number {trace} has several review items ({keys}): name one with --item", EXIT_CONFIG
    )


def show(records: dict[str, ReviewRecord], trace: str, console: Console, *, item: str | None = None) -> int:
    try:
        record = find_item(records, trace, item)
    except OpsError as exc:
        console.note(str(exc))
        return EXIT_CONFIG
    if record is None:
        console.note(f"no review record for trace number {trace}" + (f" (item {item})" if item else ""))
        return EXIT_NOT_OK
    attempts = [attempt.model_dump() for attempt in record.attempts]
    if console.fmt is Format.JSON:
        console.record(record.model_dump())
    elif console.fmt is Format.CSV:
        console.rows([{"trace_number": trace, **a} for a in attempts], ("trace_number", *ATTEMPT_COLUMNS))
    else:
        console.record({k: v for k, v in summary(record).items() if v is not None})
        console.out.write("\nattempts:\n")
        console.rows(attempts, ATTEMPT_COLUMNS, empty="(no attempts recorded)")
    return EXIT_OK


# --- resolving --------------------------------------------------------------------------------------


def decision_for(records: dict[str, ReviewRecord], args: SimpleNamespace) -> ReviewDecision:
    """The decision the arguments describe, refused (exit 2) unless the trace number is open for review."""
    record = find_item(records, args.trace_number, getattr(args, "item", None))
    if record is None:
        raise OpsError(
            f"no review record for trace number {args.trace_number}: only a command the worker handed to "
            "manual review (outcome unresolved) can be resolved",
            EXIT_CONFIG,
        )
    if record.state != "open":
        raise OpsError(
            f"the review of {args.trace_number} is already closed ({record.closed_outcome}, by "
            f"{record.closed_by} at {record.closed_at}): nothing to resolve",
            EXIT_CONFIG,
        )
    if args.outcome not in DECISION_OUTCOMES:
        raise OpsError(f"--outcome must be one of {', '.join(DECISION_OUTCOMES)}", EXIT_CONFIG)
    try:
        return ReviewDecision(
            type="review_decision",
            trace_number=record.trace_number,
            msisdn=record.command.msisdn,
            outcome=args.outcome,
            decided_by=args.decided_by.strip(),
            reason=args.reason.strip(),
            transaction_number=args.transaction_number,
            source_partition=record.source_partition,
            source_offset=record.source_offset,
        )
    except ValidationError as exc:
        raise invalid("decision", exc) from None


async def resolve(
    settings: Settings, records: dict[str, ReviewRecord], args: SimpleNamespace, console: Console
) -> int:
    decision = decision_for(records, args)
    wait_s = None if args.no_wait else args.wait_s
    progress = console.progress(
        f"waiting for the worker to settle {decision.trace_number}",
        unit="s",
        total=None if wait_s is None else int(wait_s),
    )
    try:
        delivery = await produce_and_await_result(
            settings,
            key=decision.msisdn.encode(),
            value=decision.model_dump_json().encode(),
            topic=(settings.review_decisions_topic, "ECASH_REVIEW_DECISIONS_TOPIC"),
            partition=decision.source_partition,
            matches=lambda r: (
                r.trace_number == decision.trace_number
                and r.msisdn == decision.msisdn
                and r.resolved_by is ResolvedBy.MANUAL
            ),
            wait_s=wait_s,
            progress=progress,
        )
    finally:
        progress.done()
    return report(decision, delivery, wait_s, console)


def no_result_note(decision: ReviewDecision, where: str, wait_s: float) -> str:
    """Why ``resolve`` gave up waiting, and what happens next: the decision is delivered either way."""
    note = (
        f"the decision is on {where}, but no final result for {decision.trace_number} arrived within "
        f"{wait_s:g} s. It is delivered: do not send it again; the worker applies it when it reaches it. "
    )
    if decision.outcome == "failed":
        return note + (
            "A failed decision is applied only once a fresh Status Inquiry agrees, so during an E-Cash API "
            "outage it waits for the API (`ecash-worker check` on the workers shows breaker_state)."
        )
    return (
        note + "A succeeded decision needs no API call: is a worker running and ready (`ecash-worker check`)?"
    )


def report(decision: ReviewDecision, delivery: Delivery, wait_s: float | None, console: Console) -> int:
    where = f"{delivery.topic} partition {delivery.partition} offset {delivery.offset}"
    if wait_s is None:
        console.record(
            {
                **decision.model_dump(),
                "topic": delivery.topic,
                "partition": delivery.partition,
                "offset": delivery.offset,
            }
        )
        return EXIT_OK
    if delivery.dead_letter is not None:
        console.note(f"the worker refused the decision: {delivery.dead_letter.reason}")
        return EXIT_NOT_OK
    if delivery.result is None:
        console.note(no_result_note(decision, where, wait_s))
        return EXIT_NO_RESULT
    console.record(result_record(delivery.result))
    if delivery.result.outcome.value != decision.outcome:
        console.note(f"the worker published {delivery.result.outcome.value}, not {decision.outcome}")
        return EXIT_NOT_OK
    return EXIT_OK
