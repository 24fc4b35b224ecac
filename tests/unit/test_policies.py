"""worker.policies: the settings -> the core's plain values; the core itself never reads Settings."""

from __future__ import annotations

import ast
from pathlib import Path

from worker.core.breaker import BreakerPolicy
from worker.core.resolution import ResolutionPolicy
from worker.policies import breaker_policy, resolution_policy
from worker.settings import Settings

CORE = Path(__file__).parents[2] / "worker" / "core"


def test_default_resolution_policy_comes_from_settings() -> None:
    policy = resolution_policy(Settings())
    assert policy.first_inquiry_after_s == 15.0  # request_timeout_s 10 + resolution_grace_s 5
    assert policy.schedule_s == (5.0, 10.0, 20.0, 40.0, 60.0)
    assert policy.deadline_s == 900.0
    assert policy.not_found_codes == frozenset({"PAYMENT_NOT_FOUND", "NO_TRANSACTION"})
    assert (policy.not_found_confirmations, policy.not_found_policy, policy.resubmit_max) == (2, "fail", 1)
    assert policy == ResolutionPolicy()  # the core's defaults are the settings' defaults


def test_resubmit_policy_and_custom_schedule_come_from_settings() -> None:
    settings = Settings(
        not_found_policy="resubmit",
        resolution_schedule_s="2,4",
        request_timeout_s=3,
        resolution_grace_s=1,
    )
    policy = resolution_policy(settings)
    assert (policy.not_found_policy, policy.schedule_s, policy.first_inquiry_after_s) == (
        "resubmit",
        (2.0, 4.0),
        4.0,
    )


def test_breaker_policy_comes_from_settings() -> None:
    policy = breaker_policy(Settings())
    assert (policy.window_s, policy.min_calls, policy.failure_ratio, policy.open_s) == (30.0, 20, 0.5, 15.0)
    assert (policy.max_open_s, policy.probe_timeout_s) == (120.0, 30.0)
    assert policy == BreakerPolicy()


def test_the_core_never_imports_the_settings() -> None:
    offenders = []
    for path in sorted(CORE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            offenders += [f"{path.name}: {name}" for name in names if name.startswith("worker.settings")]
    assert offenders == []
