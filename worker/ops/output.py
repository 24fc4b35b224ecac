"""How the operator's commands print: a table for a person, JSON or CSV for a program.

``--output table|json|csv``; without it, a table when stdout is a terminal and JSON otherwise (so a pipe
into ``jq`` just works). A table on a terminal is drawn by rich (imported only then); elsewhere it is
plain aligned text. Progress of long operations goes to stderr, and only when stderr is a terminal.
Secrets never reach the output by accident: a ``SecretStr`` prints as a mask wherever it appears; a
command shows one only when the operator asked (``--show-secret``) by handing over the plain text.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any, TextIO, TypeVar

import click
import orjson
from pydantic import BaseModel, SecretStr

from worker.contracts import format_amount

__all__ = [
    "MAX_CELL_CHARS",
    "PROGRESS_BAR_CHARS",
    "SECRET_MASK",
    "Console",
    "Format",
    "Progress",
    "cell",
    "choose_format",
    "jsonable",
    "mask_msisdn",
    "output_option",
    "render_table",
    "secret_text",
    "write_json",
    "write_record",
    "write_rows",
]

SECRET_MASK = "**********"  # noqa: S105 - the mask shown instead of a secret
MAX_CELL_CHARS = 60  # a table cell longer than this is cut, but for the last column (JSON, CSV: never)


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


F = TypeVar("F", bound=Callable[..., Any])


def output_option(function: F) -> F:
    """The ``--output``/``-o`` option of a command that prints records (a decorator, as click's own)."""
    return click.option(
        "--output",
        "-o",
        type=click.Choice([f.value for f in Format]),
        default=None,
        help="table (default on a terminal), json (default otherwise) or csv",
    )(function)


def choose_format(requested: str | None, out: TextIO) -> Format:
    if requested is not None:
        return Format(requested)
    return Format.TABLE if _isatty(out) else Format.JSON


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


def mask_msisdn(msisdn: str | None) -> str | None:
    """``08131234567`` -> ``*******4567``: enough to tell wallets apart, not enough to call one."""
    if msisdn is None:
        return None
    return "*" * max(0, len(msisdn) - 4) + msisdn[-4:]


def secret_text(value: SecretStr | None, *, show: bool) -> str | None:
    if value is None:
        return None
    return value.get_secret_value() if show else SECRET_MASK


# --- values -----------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """``value`` made of JSON types only: Decimal as a plain string, times in ISO 8601, secrets masked."""
    if isinstance(value, SecretStr):
        return SECRET_MASK
    if isinstance(value, BaseModel):
        return jsonable(value.model_dump())
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def _decimal_text(value: Decimal) -> str:
    """``100000``, ``-14500``, ``1500.50``: never an exponent."""
    if value.is_finite() and value == value.quantize(Decimal("0.01")):
        return format_amount(value)
    return f"{value:f}"


def cell(value: Any) -> str:
    """One value as text for a table or CSV cell: ``None`` is empty, lists are joined with spaces."""
    shown = jsonable(value)
    if shown is None:
        return ""
    if isinstance(shown, bool):
        return "true" if shown else "false"
    if isinstance(shown, list):
        return " ".join(cell(item) for item in shown)
    if isinstance(shown, dict):
        return orjson.dumps(shown).decode()
    return str(shown)


def _clip(text: str, *, cut: bool = True) -> str:
    text = " ".join(text.split())  # a newline would break the table's lines
    return text if len(text) <= MAX_CELL_CHARS or not cut else text[: MAX_CELL_CHARS - 1] + "…"


# --- writers ------------------------------------------------------------------------------------


def write_json(value: Any, out: TextIO) -> None:
    out.write(orjson.dumps(jsonable(value), option=orjson.OPT_INDENT_2).decode() + "\n")


def render_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Aligned columns under a header; numbers right-aligned; long cells cut, except in the last column."""
    last = len(columns) - 1  # the last column can be long without pushing any other out of line
    texts = [[_clip(cell(row.get(c)), cut=i < last) for i, c in enumerate(columns)] for row in rows]
    widths = [max([len(column), *(len(line[i]) for line in texts)]) for i, column in enumerate(columns)]
    numeric = [bool(rows) and all(_is_number(row.get(column)) for row in rows) for column in columns]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    header = line([column.upper() for column in columns])
    return "\n".join([header, *(line(values) for values in texts)]) + "\n"


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, int | Decimal) and not isinstance(value, bool))


def write_rows(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    fmt: Format,
    out: TextIO,
    *,
    empty: str = "(none)",
) -> None:
    """A list of records: a table (``empty`` when there are none), a JSON array, or CSV with a header."""
    if fmt is Format.JSON:
        write_json([{column: row.get(column) for column in columns} for row in rows], out)
    elif fmt is Format.CSV:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([cell(row.get(column)) for column in columns] for row in rows)
    elif rows and _isatty(out):
        _write_rich_table(rows, columns, out)
    elif rows:
        out.write(render_table(rows, columns))
    else:
        out.write(empty + "\n")


def _write_rich_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], out: TextIO) -> None:
    """The table ``render_table`` draws, by rich for a terminal: the same cells (cut the same way, never
    read as markup), numbers right-aligned, the last column folded rather than cut."""
    from rich import box
    from rich.console import Console as RichConsole
    from rich.table import Table
    from rich.text import Text

    last = len(columns) - 1
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", show_edge=False, pad_edge=False)
    for i, column in enumerate(columns):
        right = all(_is_number(row.get(column)) for row in rows)
        table.add_column(
            column.upper(), justify="right" if right else "left", no_wrap=i < last, overflow="fold"
        )
    for row in rows:
        table.add_row(*(Text(_clip(cell(row.get(c)), cut=i < last)) for i, c in enumerate(columns)))
    RichConsole(file=out, highlight=False, markup=False, emoji=False).print(table)


def write_record(record: Mapping[str, Any], fmt: Format, out: TextIO) -> None:
    """One record: ``key  value`` lines, a JSON object, or CSV (header and one row)."""
    if fmt is Format.JSON:
        write_json(record, out)
    elif fmt is Format.CSV:
        write_rows([record], list(record), fmt, out)
    else:
        width = max((len(key) for key in record), default=0)
        for key, value in record.items():
            out.write(f"{key.ljust(width)}  {cell(value)}".rstrip() + "\n")


PROGRESS_BAR_CHARS = 24  # the width of a progress bar, in characters


class Progress:
    """A counter line on stderr (``label: 42``), or with a known ``total`` a bar (``label [####    ]
    12/60 s``), rewritten in place; silent unless stderr is a terminal."""

    def __init__(self, label: str, stream: TextIO, *, unit: str = "", total: int | None = None) -> None:
        self._label = label
        self._stream = stream
        self._unit = unit
        self._total = total
        self.enabled = _isatty(stream)
        self._shown = False

    def update(self, count: int, detail: str = "") -> None:
        if not self.enabled:
            return
        unit = f" {self._unit}" if self._unit else ""
        extra = f" ({detail})" if detail else ""
        if self._total:
            filled = PROGRESS_BAR_CHARS * min(count, self._total) // self._total
            bar = "#" * filled + " " * (PROGRESS_BAR_CHARS - filled)
            shown = f"{self._label} [{bar}] {count}/{self._total}{unit}{extra}"
        else:
            shown = f"{self._label}: {count}{unit}{extra}"
        self._stream.write(f"\r\x1b[K{shown}")
        self._stream.flush()
        self._shown = True

    def done(self) -> None:
        """End the counter line (before anything else is printed)."""
        if self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._shown = False


@dataclass(frozen=True)
class Console:
    """Where a command writes: its output (in the chosen format) and its notes and progress (stderr)."""

    fmt: Format
    out: TextIO
    err: TextIO

    def note(self, text: str) -> None:
        """A line for the person at the terminal (stderr, so that it never mixes with JSON or CSV)."""
        self.err.write(text + "\n")
        self.err.flush()

    def progress(self, label: str, *, unit: str = "", total: int | None = None) -> Progress:
        return Progress(label, self.err, unit=unit, total=total)

    def record(self, record: Mapping[str, Any]) -> None:
        write_record(record, self.fmt, self.out)

    def rows(
        self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, empty: str = "(none)"
    ) -> None:
        write_rows(rows, columns, self.fmt, self.out, empty=empty)
