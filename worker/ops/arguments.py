"""Argument types for the commands' options (click ``ParamType``): a bad value is a one-line usage error
(exit 2): ``Invalid value for '--amount': '1e400' is not an amount: ...``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar, cast

import click
from pydantic_core import PydanticCustomError

from worker.amount_rules import command_amount

__all__ = ["AMOUNT", "DAY", "PAGE_NUMBER", "POSITIVE_INT", "SECONDS", "ArgumentType"]

T = TypeVar("T")


class ArgumentType(click.ParamType[T, Any]):
    """A click type from a function that turns the text into the value or raises ``ValueError`` saying why."""

    def __init__(self, name: str, convert: Callable[[str], T]) -> None:
        self.name = name
        self._convert = convert

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> T:
        if not isinstance(value, str):  # a default, already a value
            return cast(T, value)
        try:
            return self._convert(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date as YYYY-MM-DD") from None


def _amount(text: str) -> Decimal:
    """An amount as typed (``100000``, ``1500.50``), by the commands' rules (``worker.amount_rules``)."""
    try:
        return command_amount(text)
    except PydanticCustomError as exc:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise ValueError(f"{shown!r} is not an amount: {exc.message()}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise ValueError(f"{text!r} must be at least 1")
    return value


def _page_number(text: str) -> int:
    """A page index, counted from 0 as in the spec's example."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a page number") from None
    if value < 0:
        raise ValueError("pages are counted from 0")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise ValueError(f"{text!r} must be more than 0 seconds")
    return value


DAY = ArgumentType("YYYY-MM-DD", _day)
AMOUNT = ArgumentType("amount", _amount)
POSITIVE_INT = ArgumentType("integer", _positive_int)
PAGE_NUMBER = ArgumentType("page", _page_number)
SECONDS = ArgumentType("seconds", _seconds)
