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

import argparse
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from pydantic import ValidationError

from worker.ecash.client import EcashClient
from worker.ecash.codes import CallClass, describe, lookup
from worker.ecash.errors import ApiError, ApiUnavailable, FatalConfigError
from worker.ecash.models import HistoryEntry
from worker.ops.arguments import amount, day, page_number, positive_int
from worker.ops.command import (
    EXIT_CONFIG,
    EXIT_NOT_OK,
    EXIT_OK,
    EXIT_UNREACHABLE,
    OpsError,
    invalid,
    run_command,
)
from worker.ops.output import Console, Format, add_output_option, help_text, secret_text
from worker.settings import Settings

__all__ = [
    "HANDLERS",
    "HISTORY_COLUMNS",
    "HISTORY_TABLE_COLUMNS",
    "Handler",
    "answered",
    "api_failure",
    "ask",
    "configure_parser",
    "history_row",
    "run",
]

Handler = Callable[[EcashClient, argparse.Namespace, Console], Awaitable[int]]

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


# --- the parser -------------------------------------------------------------------------------------


def configure_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``api`` and its operations to the CLI's subparsers; the handler is ``run``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "api",
        help="ask the E-Cash API one question (balance, validate, history, status, ticket)",
        description=help_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    operations = parser.add_subparsers(dest="api_command", metavar="OPERATION", required=True)
    _balance_parser(operations)
    _leaf(operations, "validate", "Validate Account: is this MSISDN a registered member?").add_argument(
        "msisdn", help="the member's mobile number"
    )
    _history_parser(operations)
    _status_parser(operations)
    ticket = _leaf(operations, "ticket", "Get Register Ticket for a mobile number (the ticket is a secret)")
    ticket.add_argument("mobileno", metavar="MSISDN", help="the mobile number to register")
    ticket.add_argument("--show-secret", action="store_true", help="print the ticket itself, not a mask")
    parser.set_defaults(func=run)
    return parser


def _leaf(operations: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    leaf: argparse.ArgumentParser = operations.add_parser(name, help=help_text, description=help_text)
    add_output_option(leaf)
    return leaf


def _balance_parser(operations: Any) -> None:
    balance = _leaf(operations, "balance", "Balance Inquiry for a member's wallet")
    balance.add_argument("msisdn", help="the wallet's mobile number")
    balance.add_argument("--account-id", default=None, help="accountID (default: ECASH_API_ACCOUNT_ID)")


def _history_parser(operations: Any) -> None:
    history = _leaf(operations, "history", "Transaction History of a wallet over a range of days")
    history.add_argument("msisdn", help="the wallet's mobile number")
    history.add_argument(
        "--from", dest="start", type=day, required=True, metavar="YYYY-MM-DD", help="first day (WIB)"
    )
    history.add_argument(
        "--to", dest="end", type=day, required=True, metavar="YYYY-MM-DD", help="last day (WIB), included"
    )
    history.add_argument("--page-size", type=positive_int, default=50, help="entries per page")
    history.add_argument("--account-id", default=None, help="accountID (default: ECASH_API_ACCOUNT_ID)")
    which = history.add_mutually_exclusive_group()
    which.add_argument("--page", type=page_number, default=0, help="one page, counted from 0 (default 0)")
    which.add_argument("--all", action="store_true", help="every page, until a short one")


def _status_parser(operations: Any) -> None:
    status = _leaf(
        operations, "status", "Status Inquiry: did the Charge/Credit with this trace number happen?"
    )
    status.add_argument("trace_number", metavar="TRACE", help="the trace number of the Charge/Credit")
    status.add_argument("--amount", type=amount, required=True, help="the amount of the Charge/Credit")
    status.add_argument(
        "--account-type-id", default=None, help="accountTypeID (default: the worker's, from its settings)"
    )


# --- running ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    async def body(settings: Settings, console: Console) -> int:
        return await ask(settings, args, console)

    return run_command("api", args, body, out, err)


async def ask(settings: Settings, args: argparse.Namespace, console: Console) -> int:
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


async def _balance(client: EcashClient, args: argparse.Namespace, console: Console) -> int:
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


async def _validate(client: EcashClient, args: argparse.Namespace, console: Console) -> int:
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


async def _ticket(client: EcashClient, args: argparse.Namespace, console: Console) -> int:
    answer = await client.register_ticket(args.mobileno)
    console.record(
        {
            "mobileno": answer.mobileno or args.mobileno,
            "status": answer.status,
            "ticket": secret_text(answer.ticket, show=args.show_secret),
        }
    )
    return EXIT_OK


async def _status(client: EcashClient, args: argparse.Namespace, console: Console) -> int:
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


async def _history(client: EcashClient, args: argparse.Namespace, console: Console) -> int:
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


async def _all_pages(client: EcashClient, args: argparse.Namespace, console: Console) -> list[HistoryEntry]:
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
