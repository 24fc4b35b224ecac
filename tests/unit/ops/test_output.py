"""What the operator sees: a table on a terminal, JSON or CSV for programs, no secret by accident."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import SecretStr

from worker.contracts import CommandType
from worker.ecash.models import RegisterTicketResponse
from worker.ops.output import (
    MAX_CELL_CHARS,
    PROGRESS_BAR_CHARS,
    SECRET_MASK,
    Format,
    Progress,
    choose_format,
    mask_msisdn,
    render_table,
    secret_text,
    write_record,
    write_rows,
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


ROWS = [
    {"trace_number": "T1", "amount": Decimal("100000"), "type": CommandType.CHARGE, "note": None},
    {"trace_number": "T22", "amount": Decimal("1500.50"), "type": CommandType.CREDIT, "note": "a, b"},
]
COLUMNS = ("trace_number", "amount", "type", "note")


def test_format_is_a_table_on_a_terminal_and_json_in_a_pipe_unless_asked() -> None:
    assert choose_format(None, Terminal()) is Format.TABLE
    assert choose_format(None, io.StringIO()) is Format.JSON
    assert choose_format("csv", Terminal()) is Format.CSV
    assert choose_format("table", io.StringIO()) is Format.TABLE


def test_table_aligns_columns_under_a_header_and_right_aligns_amounts() -> None:
    lines = render_table(ROWS, COLUMNS).splitlines()
    assert lines[0].split() == ["TRACE_NUMBER", "AMOUNT", "TYPE", "NOTE"]
    assert lines[1].split() == ["T1", "100000", "charge"]
    assert lines[2].split() == ["T22", "1500.50", "credit", "a,", "b"]
    amount_end = lines[0].index("AMOUNT") + len("AMOUNT")
    assert lines[1][:amount_end].endswith("100000")
    assert lines[2][:amount_end].endswith("1500.50")
    assert lines[1].index("charge") == lines[2].index("credit") == lines[0].index("TYPE")


def test_table_cuts_long_cells_but_the_last_and_keeps_one_line_per_row() -> None:
    rows = [{"detail": "x" * 200 + "\nsecond line", "last": "y" * 200}]
    lines = render_table(rows, ["detail", "last"]).splitlines()
    assert len(lines) == 2
    detail, last = lines[1].split("  ")
    assert len(detail) == MAX_CELL_CHARS
    assert detail.endswith("…")
    assert last == "y" * 200


def test_on_a_terminal_the_table_is_drawn_by_rich_with_the_same_cells() -> None:
    out = Terminal()
    markup: dict[str, object] = {"trace_number": "[bold]T3[/bold]", "amount": Decimal("-14500")}
    rows = [*ROWS, markup]
    write_rows(rows, COLUMNS, Format.TABLE, out)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())  # the header's bold
    lines = text.splitlines()
    assert lines[0].split() == ["TRACE_NUMBER", "AMOUNT", "TYPE", "NOTE"]
    assert lines[2].split() == ["T1", "100000", "charge"]
    assert lines[3].split() == ["T22", "1500.50", "credit", "a,", "b"]
    assert "[bold]T3[/bold]" in text  # a value is never read as markup
    assert SECRET_MASK not in text


def test_table_format_into_a_pipe_stays_plain_text() -> None:
    out = io.StringIO()
    write_rows(ROWS, COLUMNS, Format.TABLE, out)
    assert out.getvalue() == render_table(ROWS, COLUMNS)


def test_json_keeps_money_exact_and_times_in_iso_8601() -> None:
    out = io.StringIO()
    rows = [{**ROWS[0], "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "signed": Decimal("-14500.00")}]
    write_rows(rows, [*COLUMNS, "at", "signed"], Format.JSON, out)
    assert json.loads(out.getvalue()) == [
        {
            "trace_number": "T1",
            "amount": "100000",
            "type": "charge",
            "note": None,
            "at": "2026-01-02T03:04:05+00:00",
            "signed": "-14500",
        }
    ]


def test_csv_has_a_header_and_quotes_what_needs_it() -> None:
    out = io.StringIO()
    write_rows(ROWS, COLUMNS, Format.CSV, out)
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [
        list(COLUMNS),
        ["T1", "100000", "charge", ""],
        ["T22", "1500.50", "credit", "a, b"],
    ]


def test_an_empty_table_says_so_and_empty_json_is_an_empty_list() -> None:
    table, data = io.StringIO(), io.StringIO()
    write_rows([], COLUMNS, Format.TABLE, table, empty="(no open review items)")
    write_rows([], COLUMNS, Format.JSON, data)
    assert table.getvalue() == "(no open review items)\n"
    assert json.loads(data.getvalue()) == []


def test_a_record_is_key_value_lines_in_a_table() -> None:
    out = io.StringIO()
    write_record(
        {"msisdn": "08131234567", "account_balance": Decimal("2300000.00"), "kyc": True}, Format.TABLE, out
    )
    assert out.getvalue().splitlines() == [
        "msisdn           08131234567",
        "account_balance  2300000",
        "kyc              true",
    ]


@pytest.mark.parametrize("fmt", list(Format))
def test_a_secret_is_masked_in_every_format_even_inside_a_model(fmt: Format) -> None:
    ticket = "k5grvj9j9ptsuvg5ysumf75sfpkd78uc31ts5yrpuywnmoxhc"
    answer = RegisterTicketResponse.model_validate({"ticket": ticket, "status": "PROCESSED"})
    out = io.StringIO()
    write_record({"answer": answer, "ticket": SecretStr(ticket)}, fmt, out)
    assert ticket not in out.getvalue()
    assert SECRET_MASK in out.getvalue()


def test_a_secret_is_shown_only_when_asked() -> None:
    assert secret_text(SecretStr("s3cret"), show=False) == SECRET_MASK
    assert secret_text(SecretStr("s3cret"), show=True) == "s3cret"
    assert secret_text(None, show=True) is None


def test_msisdn_is_masked_to_its_last_four_digits() -> None:
    assert mask_msisdn("08131234567") == "*******4567"
    assert mask_msisdn("123") == "123"
    assert mask_msisdn(None) is None


def test_progress_counts_on_a_terminal_and_clears_its_line() -> None:
    err = Terminal()
    progress = Progress("reading ecash.review", err, unit="records")
    progress.update(10)
    progress.update(250, "page 5")
    progress.done()
    text = err.getvalue()
    assert "reading ecash.review: 10 records" in text
    assert "reading ecash.review: 250 records (page 5)" in text
    assert text.endswith("\r\x1b[K")
    assert "\n" not in text


def test_progress_with_a_total_draws_a_bar() -> None:
    err = Terminal()
    progress = Progress("waiting for the result of T1", err, unit="s", total=60)
    progress.update(15)
    progress.done()
    bar = "[" + "#" * (PROGRESS_BAR_CHARS // 4) + " " * (PROGRESS_BAR_CHARS * 3 // 4) + "]"
    assert f"waiting for the result of T1 {bar} 15/60 s" in err.getvalue()


def test_progress_is_silent_when_stderr_is_not_a_terminal() -> None:
    err = io.StringIO()
    progress = Progress("reading", err)
    progress.update(1)
    progress.done()
    assert err.getvalue() == ""
