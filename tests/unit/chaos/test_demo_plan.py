"""The demo's script: every scripted case is sent, its faults name it, its expectation is coherent."""

from __future__ import annotations

from collections import Counter

import pytest

from ecash_dev.demo.plan import (
    CASES,
    DEAD_LETTERS,
    REQUEST_TIMEOUT_S,
    RESOLUTION_GRACE_S,
    RESOLUTION_SCHEDULE_S,
    STATUS_LAG_S,
    all_commands,
    fault_rules,
    worker_settings,
)
from ecash_dev.sandbox.faults import parse_fault_spec
from worker.settings import ENV_PREFIX, SANDBOX_API_IDENTITY, load_settings


def test_about_two_hundred_messages_with_every_case_among_them() -> None:
    messages = all_commands()
    assert 180 <= len(messages) <= 220
    traces = Counter(m["trace_number"] for m in messages if isinstance(m, dict))
    assert set(CASES) <= set(traces)
    assert traces["DUP1"] == 2
    assert traces["REUSE1"] == 2
    assert [m for m in messages if isinstance(m, bytes)] == list(DEAD_LETTERS)
    for case in CASES.values():
        assert traces[case.trace_number] == len(case.expected)


def test_every_fault_is_scripted_by_the_trace_number_of_its_case() -> None:
    for spec in fault_rules():
        rule = parse_fault_spec(spec)
        assert rule.trace_numbers is not None
        assert set(rule.trace_numbers) <= set(CASES)


def test_the_lagged_case_is_not_found_first_and_found_second() -> None:
    # The lagged charge hangs: the worker sees the ambiguity when the request times out, and asks Status
    # request timeout + grace after that; the second inquiry comes one schedule step later.
    first_inquiry_after_commit_s = REQUEST_TIMEOUT_S + (REQUEST_TIMEOUT_S + RESOLUTION_GRACE_S)
    second_inquiry_after_commit_s = first_inquiry_after_commit_s + RESOLUTION_SCHEDULE_S[0]
    assert first_inquiry_after_commit_s < STATUS_LAG_S < second_inquiry_after_commit_s


def test_the_demo_passes_the_sandbox_agent_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """``make demo`` runs in a shell with no ECASH_* set, and the worker has no default identity."""
    for name in SANDBOX_API_IDENTITY:
        monkeypatch.delenv(ENV_PREFIX + name.upper(), raising=False)
    settings = load_settings(**worker_settings("127.0.0.1:1", "http://127.0.0.1:2/eCashHost", "demo", 9464))
    assert settings.api_username == SANDBOX_API_IDENTITY["api_username"]
