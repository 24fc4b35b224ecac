"""Argument types for argparse (``type=``): a bad value is a one-line usage error (exit 2)."""

from __future__ import annotations

import argparse
from datetime import date
from decimal import Decimal

from pydantic_core import PydanticCustomError

from worker.amount_rules import command_amount

__all__ = ["amount", "day", "page_number", "positive_int", "seconds"]


def day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date as YYYY-MM-DD") from None


def amount(text: str) -> Decimal:
    """An amount as typed (``100000``, ``1500.50``), by the commands' rules (``worker.amount_rules``).

    Anything else is a one-line usage error (exit 2): ``'1e400' is not an amount: ...``."""
    try:
        return command_amount(text)
    except PydanticCustomError as exc:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise argparse.ArgumentTypeError(f"{shown!r} is not an amount: {exc.message()}") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def page_number(text: str) -> int:
    """A page index, counted from 0 as in the spec's example."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a page number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("pages are counted from 0")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 seconds")
    return value
