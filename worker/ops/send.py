"""``ecash-worker send``: put one Charge or Credit on the commands topic and wait for its result.

    ecash-worker send charge --msisdn 08131234567 --amount 100000 [--trace-number T] [--wait-s 60]
    ecash-worker send credit --msisdn 08131234567 --amount 2500 --no-wait

The command goes where producers put theirs (the commands topic, key = MSISDN), so the worker handles it
exactly like any other: journaled, sent once, resolved if ambiguous. The result is matched by trace
number, reading the results topic (read_committed) from the end offsets taken before the command was
produced: through the package's client, ``worker.client.CommandClient``, as any Python producer can.

Exit codes: 0 succeeded (or sent, with --no-wait); 1 declined, failed, rejected or dead-lettered;
2 invalid command or configuration; 3 Kafka unreachable; 4 unresolved (handed to manual review);
5 no result within the wait.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, TextIO

import click
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from worker.client import CommandClient, TopicMissing
from worker.clock import Clock, SystemClock
from worker.commandline import Command as ClickCommand
from worker.commandline import arguments, help_text
from worker.contracts import Command, CommandType, Outcome, Result
from worker.ops.arguments import SECONDS
from worker.ops.awaiting import Delivery
from worker.ops.command import (
    EXIT_CONFIG,
    EXIT_NO_RESULT,
    EXIT_NOT_OK,
    EXIT_OK,
    EXIT_UNRESOLVED,
    OpsError,
    invalid,
    run_command,
)
from worker.ops.output import Console, output_option
from worker.ops.reading import CLIENT_ID, topic_partitions, unreachable
from worker.settings import Settings

__all__ = [
    "DEFAULT_WAIT_S",
    "OUTCOME_EXIT_CODES",
    "build_command",
    "command",
    "deliver",
    "new_trace_number",
    "report",
    "result_record",
    "run",
    "send",
    "sent_record",
]

DEFAULT_WAIT_S = 60.0

OUTCOME_EXIT_CODES: dict[Outcome, int] = {
    Outcome.SUCCEEDED: EXIT_OK,
    Outcome.DECLINED: EXIT_NOT_OK,
    Outcome.FAILED: EXIT_NOT_OK,
    Outcome.REJECTED: EXIT_NOT_OK,
    Outcome.UNRESOLVED: EXIT_UNRESOLVED,
}


@click.command(
    "send",
    cls=ClickCommand,
    exclusive=[("wait_s", "no_wait")],
    short_help="produce one charge or credit command and wait for its result",
    help=help_text(__doc__),
)
@click.argument("type", type=click.Choice([kind.value for kind in CommandType]), help="charge or credit")
@click.option("--msisdn", required=True, help="the wallet's mobile number")
# Checked by the command's own rules in build_command, so a bad amount is one line naming the rule.
@click.option("--amount", required=True, help="a decimal amount: 100000, 1500.50")
@click.option("--trace-number", default=None, help="the idempotency key, [0-9A-Za-z] (default: a new one)")
@click.option(
    "--transfer-type-id", default=None, help="transferTypeID (default: the worker's, from its settings)"
)
@click.option(
    "--account-type-id", default=None, help="accountTypeID (default: the worker's, from its settings)"
)
@click.option("--description", default=None, help="free text sent with it (default: none)")
@click.option("--expires-in-s", type=float, default=None, help="the worker must not start it after this long")
@click.option("--wait-s", type=SECONDS, default=DEFAULT_WAIT_S, help="how long to wait for it")
@click.option("--no-wait", is_flag=True, help="produce the command and exit (not with --wait-s)")
@output_option
@click.pass_context
def command(ctx: click.Context, /, **_: Any) -> int:
    return run(arguments(ctx))


def run(args: SimpleNamespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    async def body(settings: Settings, console: Console) -> int:
        return await send(settings, args, console)

    return run_command("send", args, body, out, err, needs_api=False)  # Kafka only


def new_trace_number(clock: Clock) -> str:
    """``20260101120000`` + 8 random hex digits: sortable by time, unique, in [0-9A-Za-z]."""
    return f"{clock.now():%Y%m%d%H%M%S}{secrets.token_hex(4)}"


def build_command(args: SimpleNamespace, clock: Clock) -> Command:
    """The command the arguments describe; an invalid one is a usage error (exit 2) naming the field."""
    expires_at = None
    if args.expires_in_s is not None:
        expires_at = clock.now() + timedelta(seconds=args.expires_in_s)
    try:
        return Command(
            type=args.type,
            trace_number=args.trace_number or new_trace_number(clock),
            msisdn=args.msisdn,
            amount=args.amount,
            transfer_type_id=args.transfer_type_id,
            account_type_id=args.account_type_id,
            description=args.description,
            expires_at=expires_at,
        )
    except ValidationError as exc:
        raise invalid("command", exc) from None


async def send(
    settings: Settings, args: SimpleNamespace, console: Console, clock: Clock | None = None
) -> int:
    clock = clock or SystemClock()
    command = build_command(args, clock)
    wait_s = None if args.no_wait else args.wait_s
    # the topics first: a missing one is a configuration error that names its setting (exit 2)
    await topic_partitions(settings, settings.commands_topic, "ECASH_COMMANDS_TOPIC")
    if wait_s is not None:
        await topic_partitions(settings, settings.results_topic, "ECASH_RESULTS_TOPIC")
        await topic_partitions(settings, settings.dlq_topic, "ECASH_DLQ_TOPIC")
    progress = console.progress(
        f"waiting for the result of {command.trace_number}",
        unit="s",
        total=None if wait_s is None else int(wait_s),
    )
    try:
        delivery = await deliver(settings, command, wait_s, lambda waited_s: progress.update(int(waited_s)))
    finally:
        progress.done()
    return report(command, delivery, wait_s, console)


async def deliver(
    settings: Settings, command: Command, wait_s: float | None, on_wait: Callable[[float], None]
) -> Delivery:
    """Through the package's client (worker/client.py): the command, and its result within ``wait_s``."""
    try:
        async with CommandClient.from_settings(settings, client_id=CLIENT_ID) as client:
            if wait_s is None:
                sent = await client.send(command)
                return Delivery(sent.topic, sent.partition, sent.offset)
            answer = await client.send_and_wait(command, wait_s, on_wait=on_wait)
    except KafkaError as exc:
        raise unreachable(settings, exc) from None
    except TopicMissing as exc:
        raise OpsError(f"{exc}: is this the worker's configuration?", EXIT_CONFIG) from None
    sent = answer.sent
    return Delivery(sent.topic, sent.partition, sent.offset, answer.result, answer.dead_letter)


def report(command: Command, delivery: Delivery, wait_s: float | None, console: Console) -> int:
    if wait_s is None:
        console.record(sent_record(command, delivery))
        return EXIT_OK
    if delivery.dead_letter is not None:
        console.note(f"the worker dead-lettered the command: {delivery.dead_letter.reason}")
        return EXIT_NOT_OK
    if delivery.result is None:
        console.note(
            f"no result for trace number {command.trace_number} within {wait_s:g} s; the command is on "
            f"{delivery.topic} partition {delivery.partition} offset {delivery.offset}. Is a worker running? "
            "Its result will still be published: do not send it again under a new trace number."
        )
        return EXIT_NO_RESULT
    console.record(result_record(delivery.result))
    return OUTCOME_EXIT_CODES[delivery.result.outcome]


def sent_record(command: Command, delivery: Delivery) -> dict[str, Any]:
    return {
        "trace_number": command.trace_number,
        "type": command.type,
        "msisdn": command.msisdn,
        "amount": command.amount,
        "topic": delivery.topic,
        "partition": delivery.partition,
        "offset": delivery.offset,
    }


def result_record(result: Result) -> dict[str, Any]:
    """A result as printed: every field of the contract, in its order."""
    return dict(result.model_dump())
