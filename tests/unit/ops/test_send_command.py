"""``send`` builds the command a producer would, and turns the result into the exit code a script needs."""

from __future__ import annotations

import dataclasses
import io
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import click
import pytest

from worker.clock import FakeClock
from worker.commandline import parse as parse_command_line
from worker.contracts import TRACE_NUMBER_PATTERN, DeadLetter, Outcome, ResolvedBy, Result
from worker.ops.awaiting import Delivery
from worker.ops.command import EXIT_CONFIG, OpsError
from worker.ops.output import Console, Format
from worker.ops.send import build_command, command, report

CLOCK_START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def parse(*argv: str) -> SimpleNamespace:
    return parse_command_line(command, argv)


def test_a_generated_trace_number_is_valid_and_new_each_time() -> None:
    clock = FakeClock(CLOCK_START)
    args = parse("charge", "--msisdn", "08131234567", "--amount", "100000")
    first, second = build_command(args, clock), build_command(args, clock)
    assert re.match(TRACE_NUMBER_PATTERN, first.trace_number)
    assert first.trace_number.startswith("20260102030405")
    assert first.trace_number != second.trace_number


def test_every_option_reaches_the_command() -> None:
    clock = FakeClock(CLOCK_START)
    args = parse(
        *("credit", "--msisdn", "08131234567", "--amount", "1500.50", "--trace-number", "T1"),
        *("--transfer-type-id", "362", "--description", "refund", "--expires-in-s", "30"),
    )
    command = build_command(args, clock)
    assert command.type == "credit"
    assert command.amount == Decimal("1500.50")
    assert (command.trace_number, command.transfer_type_id, command.description) == ("T1", "362", "refund")
    assert command.expires_at == CLOCK_START + timedelta(seconds=30)


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (("--msisdn", "not-a-number", "--amount", "1000"), "msisdn"),
        (("--msisdn", "08131234567", "--amount", "1000", "--trace-number", "has-dash"), "trace_number"),
        (("--msisdn", "08131234567", "--amount", "0.001"), "amount: amount has more than 2 decimal places"),
        (("--msisdn", "08131234567", "--amount", "-5"), "amount: amount must be greater than zero"),
        (("--msisdn", "08131234567", "--amount", "NaN"), "amount: amount must be a finite number"),
        (("--msisdn", "08131234567", "--amount", "12,5"), "amount: amount must be ASCII digits"),
        (("--msisdn", "08131234567", "--amount", "1e400"), "amount: amount must be written in digits"),
        (("--msisdn", "08131234567", "--amount", "1" * 30), "amount: amount is longer than 12 characters"),
    ],
)
def test_an_invalid_command_is_refused_before_anything_is_produced(argv: tuple[str, ...], field: str) -> None:
    with pytest.raises(OpsError) as info:
        build_command(parse("charge", *argv), FakeClock())
    assert info.value.exit_code == EXIT_CONFIG
    assert field in str(info.value)


def test_a_float_looking_amount_is_kept_exact() -> None:
    assert build_command(
        parse("charge", "--msisdn", "08131234567", "--amount", "0.10"), FakeClock()
    ).amount == Decimal("0.10")


def delivered(outcome: Outcome | None) -> Delivery:
    result = None
    if outcome is not None:
        result = Result(
            event_id="e1",
            trace_number="T1",
            type="charge",
            msisdn="08131234567",
            amount=Decimal("1000"),
            outcome=outcome,
            resolved_by=ResolvedBy.RESPONSE,
            detail="d",
            completed_at=CLOCK_START,
        )
    return Delivery("ecash.commands", 2, 17, result)


@pytest.mark.parametrize(
    ("outcome", "code"),
    [
        (Outcome.SUCCEEDED, 0),
        (Outcome.DECLINED, 1),
        (Outcome.FAILED, 1),
        (Outcome.REJECTED, 1),
        (Outcome.UNRESOLVED, 4),
        (None, 5),
    ],
)
def test_the_exit_code_follows_the_outcome(outcome: Outcome | None, code: int) -> None:
    command = build_command(
        parse("charge", "--msisdn", "08131234567", "--amount", "1000", "--trace-number", "T1"), FakeClock()
    )
    out, err = io.StringIO(), io.StringIO()
    assert report(command, delivered(outcome), 60.0, Console(Format.JSON, out, err)) == code
    if outcome is None:
        assert "no result for trace number T1 within 60 s" in err.getvalue()
        assert "partition 2 offset 17" in err.getvalue()
    else:
        assert f'"outcome": "{outcome.value}"' in out.getvalue()


def test_a_dead_lettered_command_is_reported_with_the_worker_reason() -> None:
    command = build_command(
        parse("charge", "--msisdn", "08131234567", "--amount", "1000", "--trace-number", "T1"), FakeClock()
    )
    letter = DeadLetter(
        reason="oversize: the message is 20000 bytes",
        topic="ecash.commands",
        partition=2,
        offset=17,
        key_b64=None,
        value_b64=None,
        dead_lettered_at=CLOCK_START,
    )
    err = io.StringIO()
    delivery = dataclasses.replace(delivered(None), dead_letter=letter)
    assert delivery.is_for_this(letter)
    assert report(command, delivery, 60.0, Console(Format.JSON, io.StringIO(), err)) == 1
    assert "dead-lettered the command: oversize" in err.getvalue()


def test_no_wait_prints_where_the_command_went() -> None:
    command = build_command(
        parse("charge", "--msisdn", "08131234567", "--amount", "1000", "--trace-number", "T1"), FakeClock()
    )
    out = io.StringIO()
    assert report(command, delivered(None), None, Console(Format.TABLE, out, io.StringIO())) == 0
    assert out.getvalue().splitlines()[-2:] == ["partition     2", "offset        17"]
    assert "trace_number  T1" in out.getvalue()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--amount", "1", "--wait-s", "0"), "must be more than 0 seconds"),
        (("--amount", "1", "--wait-s", "5", "--no-wait"), "--wait-s and --no-wait cannot be used together"),
    ],
)
def test_bad_arguments_are_usage_errors(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(click.UsageError) as info:
        parse("charge", "--msisdn", "08131234567", *argv)
    assert info.value.exit_code == 2
    assert message in info.value.format_message()


@pytest.mark.parametrize("bad", ["123456789012345678901234567890", "1e400", "1e30", "NaN", "-5", "1.001"])
def test_the_real_cli_refuses_a_bad_amount_in_one_line_with_exit_2(bad: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECASH_")}
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "send", "charge", "--msisdn", "08131234567", "--amount", bad],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == EXIT_CONFIG
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("ecash-worker send: invalid command: amount: amount ")
