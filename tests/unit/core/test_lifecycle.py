"""A command's life as decisions (worker/core/lifecycle.py): every branch, table-driven, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.core.lifecycle import (
    AgentRefused,
    AlreadyApplied,
    Ambiguous,
    AnswerDuplicate,
    Apply,
    Arrival,
    CallClassName,
    Claim,
    Expire,
    Finish,
    GiveUpNotSent,
    HandToReview,
    Known,
    MoneyAnswer,
    NotApplicable,
    NotSentRetry,
    OffsetOnly,
    OpenItem,
    RejectReused,
    Resend,
    Resolve,
    RetryNotSent,
    Send,
    SettleEarlier,
    VerifyFirst,
    on_command,
    on_conclusion,
    on_money_answer,
    on_review_decision,
)
from worker.core.resolution import Conclude

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
PRINT = "f1"


def arrival(
    *, offset: int = 5, expires_at: datetime | None = None, claims: bool = False, claimed: bool = False
) -> Arrival:
    return Arrival(PRINT, 0, offset, expires_at, claims=claims, claimed=claimed)


@pytest.mark.parametrize(
    ("known", "arriving", "expected"),
    [
        (None, arrival(), Send()),
        (None, arrival(expires_at=NOW), Expire()),
        (None, arrival(expires_at=NOW + timedelta(seconds=1)), Send()),
        (None, arrival(claims=True), Claim()),
        (None, arrival(claims=True, claimed=True), Send()),
        (None, arrival(claims=True, claimed=True, expires_at=NOW - timedelta(days=1)), Expire()),
        (Known("other", True, 0, 5), arrival(), RejectReused()),
        (Known("other", False, 0, 2), arrival(), RejectReused()),
        (Known(PRINT, True, 0, 5), arrival(), OffsetOnly()),
        (Known(PRINT, True, 0, 2), arrival(), AnswerDuplicate()),
        (Known(PRINT, True, 1, 5), arrival(), AnswerDuplicate()),
        (Known(PRINT, False, 0, 5), arrival(), Resolve("journal_intent")),
        (Known(PRINT, False, 0, 2), arrival(), SettleEarlier()),
        # what the journal knows comes before the claim and the expiry: a known command never expires
        (Known(PRINT, False, 0, 5), arrival(claims=True, expires_at=NOW), Resolve()),
    ],
)
def test_what_a_command_does_on_arrival(known: Known | None, arriving: Arrival, expected: object) -> None:
    assert on_command(known, arriving, NOW) == expected


RETRY = NotSentRetry(initial_s=0.2, max_s=5.0, deadline_s=900.0)


def answer(call_class: CallClassName, code: str | None = None, *, fatal: bool = False) -> MoneyAnswer:
    return MoneyAnswer(call_class, code, fatal)


@pytest.mark.parametrize(
    ("given", "retries", "elapsed_s", "expected"),
    [
        (answer("succeeded", "PROCESSED"), 0, 0.0, Finish("succeeded", "charge processed")),
        (
            answer("declined", "MEMBER_NOT_FOUND"),
            0,
            0.0,
            Finish("declined", "declined by the API: MEMBER_NOT_FOUND"),
        ),
        (
            answer("declined", "NOT_ALLOWED", fatal=True),
            0,
            0.0,
            AgentRefused("the API refuses the agent: NOT_ALLOWED"),
        ),
        (answer("ambiguous"), 0, 0.0, Ambiguous()),
        (answer("not_sent"), 0, 0.0, RetryNotSent(0.2)),
        (answer("not_sent"), 1, 1.0, RetryNotSent(0.4)),
        (answer("not_sent"), 9, 100.0, RetryNotSent(5.0)),
    ],
)
def test_what_follows_a_money_call(
    given: MoneyAnswer, retries: int, elapsed_s: float, expected: object
) -> None:
    step = on_money_answer(
        given, kind="charge", evidence="e", retry=RETRY, retries_so_far=retries, elapsed_s=elapsed_s
    )
    assert step == expected


def test_not_sent_until_the_deadline_is_failed_and_says_no_money_moved() -> None:
    step = on_money_answer(
        answer("not_sent"),
        kind="charge",
        evidence="connect refused",
        retry=RETRY,
        retries_so_far=40,
        elapsed_s=900.0,
    )
    assert isinstance(step, GiveUpNotSent)
    assert "no money moved" in step.detail
    assert "connect refused" in step.detail


def test_not_sent_waits_never_exceed_the_setting() -> None:
    waits = [RETRY.wait_s(n) for n in range(1, 60)]
    assert max(waits) == 5.0
    assert waits[:3] == [0.2, 0.4, 0.8]


@pytest.mark.parametrize("bad", [{"initial_s": 0}, {"max_s": -1}, {"deadline_s": 0}])
def test_a_not_sent_policy_without_positive_delays_is_refused(bad: dict[str, float]) -> None:
    values = {"initial_s": 0.2, "max_s": 5.0, "deadline_s": 900.0, **bad}
    with pytest.raises(ValueError, match="positive"):
        NotSentRetry(**values)


@pytest.mark.parametrize(
    ("conclusion", "evidence", "expected"),
    [
        (Conclude("failed", "not found twice"), None, Finish("failed", "not found twice")),
        (Conclude("resubmit", "not found twice"), None, Resend()),
        (
            Conclude("unresolved", "deadline passed"),
            None,
            HandToReview("unresolved: deadline passed; handed to manual review"),
        ),
        (
            Conclude("succeeded", "processed"),
            "History shows it",
            Finish(
                "succeeded", "charge confirmed by Status Inquiry after an ambiguous answer; History shows it"
            ),
        ),
    ],
)
def test_what_a_resolution_concludes(conclusion: Conclude, evidence: str | None, expected: object) -> None:
    assert on_conclusion(conclusion, kind="charge", evidence=evidence) == expected


def test_succeeded_without_corroboration_is_refused() -> None:
    with pytest.raises(ValueError, match="corroborated"):
        on_conclusion(Conclude("succeeded", "processed"), kind="charge", evidence=None)


OPEN = OpenItem(state="unresolved", unresolved=True, msisdn="0813", offset=4, result_event_id="r1")


@pytest.mark.parametrize(
    ("item", "overrides", "expected"),
    [
        (OPEN, {}, Apply()),
        (OPEN, {"outcome": "failed"}, VerifyFirst()),
        (OPEN, {"outcome": "failed", "verified": True}, Apply()),
        (OPEN, {"source_offset": 4}, Apply()),
        (
            OPEN,
            {"source_offset": 5},
            NotApplicable("trace number T1 has no unresolved command here (state: unresolved)"),
        ),
        (
            OPEN,
            {"msisdn": "0899"},
            NotApplicable("trace number T1 has no unresolved command here (state: unresolved)"),
        ),
        (
            OpenItem("succeeded", False, "0813", 4, "r1"),
            {},
            NotApplicable("trace number T1 has no unresolved command here (state: succeeded)"),
        ),
        (
            OpenItem("intent", False, "0813", 4, None),
            {},
            NotApplicable("trace number T1 has no unresolved command here (state: intent)"),
        ),
        (None, {}, NotApplicable("trace number T1 has no unresolved command here (state: unknown)")),
        (OpenItem("succeeded", False, "0813", 4, "d1"), {}, AlreadyApplied()),
    ],
)
def test_whether_a_review_decision_applies(
    item: OpenItem | None, overrides: dict[str, object], expected: object
) -> None:
    values: dict[str, object] = {
        "trace_number": "T1",
        "msisdn": "0813",
        "outcome": "succeeded",
        "source_offset": None,
        "event_id": "d1",
        "verified": False,
        **overrides,
    }
    assert on_review_decision(item, **values) == expected  # type: ignore[arg-type]
