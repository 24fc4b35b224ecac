"""The chaos run's plan: seeded commands, every ambiguous fault kind, timings that cannot mislead."""

from __future__ import annotations

from collections import Counter

import pytest

from ecash_dev.chaos.plan import (
    AMBIGUOUS_KINDS,
    NOT_FOUND_CONFIRMATIONS,
    REQUEST_TIMEOUT_S,
    RESOLUTION_GRACE_S,
    RESOLUTION_SCHEDULE_S,
    STATUS_LAG_S,
    ChaosOptions,
    fault_rules,
    plan_commands,
    status_lag_is_safe,
    worker_settings,
)
from ecash_dev.sandbox.faults import FaultKind, parse_fault_spec
from worker.contracts import Command
from worker.settings import load_settings


def test_the_same_seed_gives_the_same_commands_and_another_seed_others() -> None:
    assert plan_commands(500, 50, seed=3) == plan_commands(500, 50, seed=3)
    assert plan_commands(500, 50, seed=3) != plan_commands(500, 50, seed=4)


def test_commands_are_valid_unique_and_spread_over_the_wallets() -> None:
    commands = plan_commands(2000, 200, seed=1)
    parsed = [Command.model_validate(c) for c in commands]
    assert len({c.trace_number for c in parsed}) == 2000
    assert len({c.msisdn for c in parsed}) > 200  # every wallet, plus unknown members
    kinds = Counter(c.type.value for c in parsed)
    assert kinds["charge"] > 800
    assert kinds["credit"] > 800


def test_every_ambiguous_kind_is_injected_on_charges_and_credits_with_token_expiry_and_lag() -> None:
    rules = [parse_fault_spec(spec) for spec in fault_rules()]
    kinds = Counter(rule.kind.value for rule in rules)
    assert all(kinds[kind] == 2 for kind in AMBIGUOUS_KINDS)
    assert kinds[FaultKind.TOKEN_EXPIRED.value] == 1
    assert kinds[FaultKind.STATUS_LAG.value] == 1
    money_p = sum(r.probability or 0 for r in rules if r.kind.value in AMBIGUOUS_KINDS) / 2
    assert money_p >= 0.10


def test_the_status_lag_bites_the_first_inquiry_but_never_a_confirmed_not_found() -> None:
    assert STATUS_LAG_S > REQUEST_TIMEOUT_S + RESOLUTION_GRACE_S
    assert status_lag_is_safe(STATUS_LAG_S, RESOLUTION_SCHEDULE_S, NOT_FOUND_CONFIRMATIONS)


@pytest.mark.parametrize(
    ("lag_s", "schedule_s", "confirmations", "safe"),
    [
        (2.5, (3.0,), 2, True),
        (3.0, (3.0,), 2, False),  # the second inquiry may come exactly at the lag: not seen yet
        (5.0, (3.0, 3.0), 3, True),
        (5.0, (3.0,), 1, False),  # a single not-found believed: any lag can mislead
    ],
)
def test_status_lag_safety_bound(
    lag_s: float, schedule_s: tuple[float, ...], confirmations: int, safe: bool
) -> None:
    assert status_lag_is_safe(lag_s, schedule_s, confirmations) is safe


def test_worker_settings_are_valid() -> None:
    settings = load_settings(**worker_settings("127.0.0.1:9092", "http://127.0.0.1:1/eCashHost", "c1", 12))
    assert settings.commands_topic == "c1.commands"
    assert settings.resolution_deadline_s >= 60


def test_an_external_cluster_cannot_be_restarted() -> None:
    with pytest.raises(ValueError, match="broker-restarts"):
        ChaosOptions(bootstrap="kafka:9092", broker_restarts=1).validate()
    ChaosOptions(bootstrap="kafka:9092", broker_restarts=0).validate()
