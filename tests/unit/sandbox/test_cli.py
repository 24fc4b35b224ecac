"""The ``sandbox`` subcommand's arguments become the configuration an operator expects."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

from ecash_dev.sandbox import cli
from ecash_dev.sandbox.faults import FaultKind
from ecash_dev.sandbox.state import DuplicateTracePolicy
from worker import commandline
from worker.ecash.wire import Operation


def parse(*argv: str) -> SimpleNamespace:
    return commandline.parse(cli.command, argv)


def test_defaults() -> None:
    args = parse()
    assert (args.host, args.port) == ("127.0.0.1", 18080)
    config = cli.config_from_args(args)
    assert config.duplicate_trace is DuplicateTracePolicy.EXECUTE
    assert config.unknown_status_code == "PAYMENT_NOT_FOUND"
    assert config.auto_create_wallets is False
    assert config.faults == []


def test_every_option_reaches_the_configuration() -> None:
    args = parse(
        *("--port", "0", "--token-lifetime-s", "30", "--duplicate-trace", "replay"),
        *("--unknown-status-code", "NO_TRANSACTION", "--latency-ms", "25", "--auto-create-wallets"),
        *("--seed-wallets", "2000", "--random-seed", "9", "--default-balance", "500000"),
        *("--fault", "charge:hang_after_commit:p=0.05", "--fault", "status:status_lag:lag_s=5"),
    )
    config = cli.config_from_args(args)
    assert config.token_lifetime_s == 30
    assert config.duplicate_trace is DuplicateTracePolicy.REPLAY
    assert config.unknown_status_code == "NO_TRANSACTION"
    assert config.base_latency_ms == 25
    assert config.auto_create_wallets is True
    assert config.demo_wallets == 2000
    assert config.random_seed == 9
    assert config.default_balance == Decimal("500000")
    assert [(f.operation, f.kind) for f in config.faults] == [
        (Operation.CHARGE, FaultKind.HANG_AFTER_COMMIT),
        (Operation.STATUS, FaultKind.STATUS_LAG),
    ]


def test_a_bad_fault_spec_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert commandline.main(cli.command, ["--fault", "charge:explode"], "ecash-worker sandbox") == 2
    assert "charge:explode" in capsys.readouterr().err


def test_a_bad_value_is_reported_by_run_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(parse("--token-lifetime-s", "-1")) == 2
    assert "token_lifetime_s" in capsys.readouterr().err
