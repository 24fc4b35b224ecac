"""``ecash-worker api``: one question to the E-Cash API, with the worker's own settings and session.

    ecash-worker api balance 08131234567 [--account-id 6]
    ecash-worker api validate 08131234567
    ecash-worker api history 08131234567 --from 2026-01-01 --to 2026-01-31 [--page-size 50] [--page N | --all]
    ecash-worker api status 2016041312050101 --amount 100000 [--account-type-id ID]
    ecash-worker api ticket 08787779080444 [--show-secret]

Exit codes: 0 the API answered PROCESSED; 1 it answered another code (printed with its description);
2 configuration error; 3 the API did not answer. Nothing here moves money.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, TextIO

import click
from pydantic import ValidationError

from worker.commandline import Group, arguments, help_text
from worker.ecash.client import EcashClient
from worker.ecash.codes import CallClass, describe, lookup
from worker.ecash.errors import ApiError, ApiUnavailable, FatalConfigError
from worker.ecash.models import HistoryEntry
from worker.ops.arguments import AMOUNT, DAY, PAGE_NUMBER, POSITIVE_INT
from worker.ops.command import (
    EXIT_CONFIG,
    EXIT_NOT_OK,
    EXIT_OK,
    EXIT_UNREACHABLE,
    OpsError,
    invalid,
    run_command,
)
from worker.ops.output import Console, Format, output_option, secret_text
from worker.settings import Settings

__all__ = [
    "HANDLERS",
    "HISTORY_COLUMNS",
    "HISTORY_TABLE_COLUMNS",
    "Handler",
    "answered",
    "api_failure",
    "ask",
    "command",
    "history_row",
    "run",
]

Handler = Callable[[EcashClient, SimpleNamespace, Console], Awaitable[int]]

# A table shows these; JSON and CSV carry every field of ``history_row``.
HISTORY_TABLE_COLUMNS = (
    "trx_datetime",
    "trace_number",
    "amount",
    "transfer_type",
    "description",
    "transaction_number",
    "status",
)


# --- the command line ------------------------------------------------------------------------------


@click.group(
    "api",
    cls=Group,
    short_help="ask the E-Cash API one question (balance, validate, history, status, ticket)",
    help=help_text(__doc__),
    subcommand_metavar="OPERATION [ARGS]...",
)
def command() -> None:
    """The operations below; each one's handler is in ``HANDLERS``."""


@command.command("balance", short_help=(line := "Balance Inquiry for a member's wallet"), help=line)
@output_option
@click.argument("msisdn", help="the wallet's mobile number")
@click.option("--account-id", default=None, help="accountID (default: ECASH_API_ACCOUNT_ID)")
@click.pass_context
def _balance_command(ctx: click.Context, /, **_: Any) -> int:
    return run(arguments(ctx))


@command.command(
    "validate", short_help=(line := "Validate Account: is this MSISDN a registered member?"), help=line
)
@output_option
@click.argument("msisdn", help="the member's mobile number")
@click.pass_context
def _validate_command(ctx: click.Context, /, **_: Any) -> int:
    return run(arguments(ctx))


@command.command(
    "history",
    short_help=(line := "Transaction History of a wallet over a range of days"),
    help=line,
    exclusive=[("page", "all")],
)
@output_option
@click.argument("msisdn", help="the wallet's mobile number")
@click.option("--from", "start", type=DAY, required=True, metavar="YYYY-MM-DD", help="first day (WIB)")
@click.option("--to", "end", type=DAY, required=True, metavar="YYYY-MM-DD", help="last day (WIB), included")
@click.option("--page-size", type=POSITIVE_INT, default=50, help="entries per page")
@click.option("--account-id", default=None, help="accountID (default: ECASH_API_ACCOUNT_ID)")
@click.option("--page", type=PAGE_NUMBER, default=0, help="one page, counted from 0 (not with --all)")
@click.option("--all", "all", is_flag=True, help="every page, until a short one")
@click.pass_context
def _history_command(ctx: click.Context, /, **_: Any) -> int:
    return run(arguments(ctx))


@command.command(
    "status",
    short_help=(line := "Status Inquiry: did the Charge/Credit with this trace number happen?"),
    help=line,
)
@output_option
@click.argument("trace_number", metavar="TRACE", help="the trace number of the Charge/Credit")
@click.option("--amount", type=AMOUNT, required=True, help="the amount of the Charge/Credit")
@click.option(
    "--account-type-id", default=None, help="accountTypeID (default: the worker's, from its settings)"
)
@click.pass_context
def _status_command(ctx: click.Context, /, **_: Any) -> int:
    return run(arguments(ctx))


@command.command(
    "ticket",
    short_help=(line := "Get Register Ticket for a mobile number (the ticket is a secret)"),
    help=line,
)
@output_option
@click.argument("mobileno", metavar="MSISDN", help="the mobile number to register")
@click.option("--show-secret", is_flag=True, help="print the ticket itself, not a mask")
@click.pass_context
def _ticket_command(ctx: click.Context, /, **_: Any) -> int:
    return run(arguments(ctx))


# --- running ----------------------------------------------------------------------------------------


def run(args: SimpleNamespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    async def body(settings: Settings, console: Console) -> int:
        return await ask(settings, args, console)

    return run_command("api", args, body, out, err)


async def ask(settings: Settings, args: SimpleNamespace, console: Console) -> int:
    handler = HANDLERS[args.api_command]
    try:
        async with EcashClient(settings) as client:
            return await handler(client, args, console)
    except (FatalConfigError, ValidationError, ApiUnavailable) as exc:
        raise api_failure(settings, exc) from None
    except ApiError as exc:
        console.record(answered(str(exc.operation), exc.code, exc.detail))
        console.note(f"{exc.operation} answered {describe(exc.code)}")
        return EXIT_NOT_OK


def api_failure(settings: Settings, exc: FatalConfigError | ValidationError | ApiUnavailable) -> OpsError:
    """A failure that stops an API command, with its exit code: configuration (2) or unreachable (3)."""
    if isinstance(exc, FatalConfigError):
        return OpsError(f"{exc.reason} (check the ECASH_API_* settings)", EXIT_CONFIG)
    if isinstance(exc, ValidationError):
        return invalid("argument", exc)
    return OpsError(f"the E-Cash API at {settings.api_base_url} did not answer: {exc}", EXIT_UNREACHABLE)


def answered(operation: str, code: str | None, detail: str = "") -> dict[str, Any]:
    """What to print when the API answered something other than PROCESSED."""
    info = lookup(code)
    record: dict[str, Any] = {
        "operation": operation,
        "status": info.code if info is not None else code,
        "description": info.description if info is not None else describe(code),
    }
    if detail:
        record["detail"] = detail
    return record


async def _balance(client: EcashClient, args: SimpleNamespace, console: Console) -> int:
    answer = await client.balance(args.msisdn, args.account_id)
    console.record(
        {
            "msisdn": args.msisdn,
            "status": answer.status,
            "account_balance": answer.account_balance,
            "upper_credit_limit": answer.upper_credit_limit,
            "reserved_amount": answer.reserved_amount,
        }
    )
    return EXIT_OK


async def _validate(client: EcashClient, args: SimpleNamespace, console: Console) -> int:
    answer = await client.validate_account(args.msisdn)
    console.record(
        {
            "msisdn": answer.msisdn or args.msisdn,
            "status": answer.status,
            "name": answer.name,
            "group_id": answer.group_id,
            "registration_id": answer.registration_id,
            "kyc": answer.kyc,
        }
    )
    return EXIT_OK


async def _ticket(client: EcashClient, args: SimpleNamespace, console: Console) -> int:
    answer = await client.register_ticket(args.mobileno)
    console.record(
        {
            "mobileno": answer.mobileno or args.mobileno,
            "status": answer.status,
            "ticket": secret_text(answer.ticket, show=args.show_secret),
        }
    )
    return EXIT_OK


async def _status(client: EcashClient, args: SimpleNamespace, console: Console) -> int:
    answer = await client.status(
        trace_number=args.trace_number, amount=args.amount, account_type_id=args.account_type_id
    )
    if answer.call_class in (CallClass.NOT_SENT, CallClass.AMBIGUOUS):
        raise OpsError(f"Status Inquiry got no usable answer: {answer.evidence}", EXIT_UNREACHABLE)
    info = lookup(answer.code)
    console.record(
        {
            "trace_number": args.trace_number,
            "amount": args.amount,
            "status": answer.code,
            "description": info.description if info is not None else describe(answer.code),
            "echoed_trace_number": answer.trace_number,
        }
    )
    return EXIT_OK if answer.call_class is CallClass.SUCCEEDED else EXIT_NOT_OK


async def _history(client: EcashClient, args: SimpleNamespace, console: Console) -> int:
    if args.all:
        entries = await _all_pages(client, args, console)
    else:
        page = await client.history_page(
            args.msisdn, args.start, args.end, args.page, args.page_size, args.account_id
        )
        entries = list(page.entries)
        if not page.is_last:
            console.note(f"page {args.page} is full: more may follow (--page {args.page + 1}, or --all)")
    rows = [history_row(entry) for entry in entries]
    columns = HISTORY_TABLE_COLUMNS if console.fmt is Format.TABLE else HISTORY_COLUMNS
    console.rows(rows, columns, empty="(no transactions)")
    return EXIT_OK


async def _all_pages(client: EcashClient, args: SimpleNamespace, console: Console) -> list[HistoryEntry]:
    progress = console.progress("history", unit="entries")
    entries: list[HistoryEntry] = []
    try:
        async for entry in client.history(
            args.msisdn, args.start, args.end, page_size=args.page_size, account_id=args.account_id
        ):
            entries.append(entry)
            progress.update(len(entries), f"page {(len(entries) - 1) // args.page_size}")  # from 0
    finally:
        progress.done()
    return entries


HISTORY_COLUMNS = (
    "trx_datetime",
    "trace_number",
    "trace_suffix",
    "amount",
    "transfer_type",
    "transfer_type_id",
    "description",
    "transaction_number",
    "name",
    "status",
)


def history_row(entry: HistoryEntry) -> dict[str, Any]:
    """One history line: the signed amount (a Charge is negative), the trace number as the API wrote it."""
    return {
        "trx_datetime": entry.trx_datetime_raw or entry.transaction_date,
        "trace_number": entry.trace_number,
        "trace_suffix": entry.trace_suffix,
        "amount": entry.amount if entry.amount is not None else entry.amount_raw,
        "transfer_type": entry.transfer_type,
        "transfer_type_id": entry.transfer_type_id,
        "description": entry.description,
        "transaction_number": entry.transaction_number,
        "name": entry.name,
        "status": entry.status,
    }


HANDLERS: dict[str, Handler] = {
    "balance": _balance,
    "validate": _validate,
    "history": _history,
    "status": _status,
    "ticket": _ticket,
}
