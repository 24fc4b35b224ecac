"""The hostile run's plan: seeded, half hostile, every kind, and each expectation is what intake decides."""

from __future__ import annotations

import pytest

from ecash_dev.hostile.plan import HOSTILE, MAX_BYTES, REPLAYS, plan_messages
from worker.pipeline.intake import DeadLetterReason, Parsed, Rejection, parse_command
from worker.pipeline.key_rule import on_commands_topic


def test_the_plan_is_seeded_half_hostile_and_names_every_kind() -> None:
    plan = plan_messages(600, 50, seed=3)
    assert plan == plan_messages(600, 50, seed=3)
    assert sum(m.hostile for m in plan) == 300
    assert {m.kind for m in plan if m.hostile} == {*HOSTILE, *REPLAYS}
    replays = [m for m in plan if m.kind in REPLAYS]
    assert len({m.trace_number for m in plan}) == 600 - len(replays)


def test_a_replay_reuses_an_earlier_valid_command_with_its_key() -> None:
    plan = plan_messages(600, 50, seed=3)
    for index, message in enumerate(plan):
        if message.kind in REPLAYS:
            (original,) = [
                m for m in plan[:index] if m.trace_number == message.trace_number and not m.hostile
            ]
            assert original.key == message.key
            assert (original.value == message.value) == (message.kind == "replay_of_valid")


@pytest.mark.parametrize("kind", sorted(HOSTILE))  # replays: see above; intake parses them
def test_each_hostile_kind_expects_what_intake_decides(kind: str) -> None:
    message = next(m for m in plan_messages(2 * (len(HOSTILE) + len(REPLAYS)), 50, seed=5) if m.kind == kind)
    parsed = parse_command(message.value, max_bytes=MAX_BYTES)
    # as the runner reads a commands-topic message: the key rule, and no review decisions there
    outcome = on_commands_topic(parsed, message.key, decisions_topic="ecash.review.decisions")
    expect = message.expect
    if expect.answer == "dead_letter":
        assert isinstance(outcome, DeadLetterReason), outcome
        assert outcome.reason == expect.label
    elif expect.outcome != "rejected":
        assert isinstance(outcome, Parsed), outcome  # odd but legal: the API decides
    else:
        assert isinstance(outcome, Rejection), outcome
        assert outcome.trace_number.startswith(message.trace_number)
        assert outcome.rule == expect.label, outcome.detail


def test_valid_messages_parse() -> None:
    valid = [m for m in plan_messages(200, 50, seed=7) if not m.hostile]
    assert all(isinstance(parse_command(m.value, max_bytes=MAX_BYTES), Parsed) for m in valid)
