"""Do the results and the bank's ledger tell the same story? The check behind the chaos run and the demo.

Pure: it takes what was sent (trace number -> how many command messages carried it), the results read
from the results topic (JSON objects) and the sandbox's ledger (``GET /admin/ledger`` executions), and
counts, per trace number:

- **results**: distinct ``event_id``s (a result republished after a crash has the same id). A command
  message should have exactly one.
- **double charge**: the trace number executed more than once. Must never happen.
- **lost**: a trace number sent and never answered. Must never happen.
- **disagreement**: the results say ``succeeded`` and no money moved; or money moved and the results say
  ``declined``, ``failed`` or ``rejected``; or money moved on another wallet or for another amount than
  the result says. Must never happen.
- **unanswered**: a command message without a result, where another message with its trace number has one
  (a duplicate or a reuse never answered). Must never happen.
- **acted on twice**: more than one command message with the trace number was acted on, i.e. has a result
  that is not ``rejected`` and came from the API or an operator (``resolved_by`` ``response``,
  ``status_inquiry`` or ``manual``); the others must be ``rejected`` or answered from the journal. One
  trace number, one payment, whichever partitions its commands are in. Must never happen.
- **unresolved**: the worker said ``unresolved`` and nobody has settled it since. Honest, not wrong: an
  operator decides it (``detail`` says why it was not resolved).

Every result of one command message has that message's ``event_id`` (derived from its partition and
offset), except an operator's decision, which has the decision's; so distinct non-manual ``event_id``s count
the messages answered and the messages acted on, and a ``manual`` result counts as acting only when no
``unresolved`` result of its trace number is there to be the command it closes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

DEFINITIVE = ("succeeded", "declined", "failed")
FROM_THE_API = ("response", "status_inquiry")
ACTING = (*FROM_THE_API, "manual")  # resolved_by of a result that acted on its command (unless rejected)


@dataclass(frozen=True)
class Disagreement:
    trace_number: str
    outcomes: tuple[str, ...]
    executions: int
    reason: str


@dataclass(frozen=True)
class Agreement:
    commands: int  # distinct trace numbers sent
    messages: int  # command messages sent (a duplicate or a reused trace number counts again)
    results: int  # distinct results (event ids) for the trace numbers sent
    exactly_one: int  # command messages whose trace number has exactly as many distinct results
    result_count_mismatch: dict[str, tuple[int, int]]  # trace -> (messages, distinct results), results > 0
    double_charges: dict[str, int]  # trace -> executions (> 1)
    lost: tuple[str, ...]
    disagreements: tuple[Disagreement, ...]
    unresolved: dict[str, str]  # trace -> the result's detail
    outcomes: Counter[str] = field(default_factory=Counter)  # per distinct result
    resolved_by: Counter[str] = field(default_factory=Counter)  # per distinct result
    executions: int = 0
    foreign_executions: tuple[str, ...] = ()  # executed trace numbers nobody sent (should be empty)
    # trace -> how many times a read_committed reader saw one of its results (one event id) more than once:
    # a result published twice. Exactly-once results make this empty. (An interim ``unresolved`` result and
    # its final one have different event ids: two results, not one seen twice.)
    seen_twice: dict[str, int] = field(default_factory=dict)
    unanswered: dict[str, int] = field(default_factory=dict)  # trace -> messages without a result (> 0)
    acted_on_twice: dict[str, int] = field(default_factory=dict)  # trace -> command messages acted on (> 1)

    @property
    def ok(self) -> bool:
        """The figures that must be zero are zero."""
        return not (
            self.double_charges
            or self.lost
            or self.unanswered
            or self.disagreements
            or self.seen_twice
            or self.acted_on_twice
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "commands": self.commands,
            "messages": self.messages,
            "results": self.results,
            "exactly_one": self.exactly_one,
            "result_count_mismatch": {t: list(v) for t, v in sorted(self.result_count_mismatch.items())},
            "double_charges": dict(sorted(self.double_charges.items())),
            "lost": list(self.lost),
            "disagreements": [d.__dict__ | {"outcomes": list(d.outcomes)} for d in self.disagreements],
            "unresolved": dict(sorted(self.unresolved.items())),
            "outcomes": dict(sorted(self.outcomes.items())),
            "resolved_by": dict(sorted(self.resolved_by.items())),
            "executions": self.executions,
            "foreign_executions": list(self.foreign_executions),
            "seen_twice": dict(sorted(self.seen_twice.items())),
            "unanswered": dict(sorted(self.unanswered.items())),
            "acted_on_twice": dict(sorted(self.acted_on_twice.items())),
        }


def check_agreement(
    sent: Mapping[str, int], results: Iterable[Mapping[str, Any]], executions: Iterable[Mapping[str, Any]]
) -> Agreement:
    """Compare ``results`` and ``executions`` for the trace numbers in ``sent`` (see the module doc)."""
    distinct: dict[str, dict[str, Mapping[str, Any]]] = {}
    records: Counter[tuple[str, str]] = Counter()
    for result in results:
        trace = str(result.get("trace_number"))
        if trace in sent:
            distinct.setdefault(trace, {})[str(result.get("event_id"))] = result
            records[(trace, str(result.get("event_id")))] += 1
    ledger: dict[str, list[Mapping[str, Any]]] = {}
    for execution in executions:
        ledger.setdefault(str(execution["trace_number"]), []).append(execution)
    outcomes: Counter[str] = Counter()
    resolved_by: Counter[str] = Counter()
    for by_id in distinct.values():
        outcomes.update(str(r.get("outcome")) for r in by_id.values())
        resolved_by.update(str(r.get("resolved_by")) for r in by_id.values())
    mismatch = {t: (sent[t], len(by_id)) for t, by_id in distinct.items() if len(by_id) != sent[t]}
    disagreements = [
        found
        for trace, by_id in distinct.items()
        if (found := _disagreement(trace, list(by_id.values()), ledger.get(trace, []))) is not None
    ]
    return Agreement(
        commands=len(sent),
        messages=sum(sent.values()),
        results=sum(len(by_id) for by_id in distinct.values()),
        exactly_one=sum(n for t, n in sent.items() if t in distinct and t not in mismatch),
        result_count_mismatch=mismatch,
        double_charges={t: len(runs) for t, runs in ledger.items() if len(runs) > 1},
        lost=tuple(sorted(t for t in sent if t not in distinct)),
        disagreements=tuple(sorted(disagreements, key=lambda d: d.trace_number)),
        unresolved=_unresolved(distinct),
        outcomes=outcomes,
        resolved_by=resolved_by,
        executions=sum(len(runs) for runs in ledger.values()),
        foreign_executions=tuple(sorted(t for t in ledger if t not in sent)),
        seen_twice=dict(Counter(trace for (trace, _), n in records.items() if n > 1)),
        unanswered={
            t: missing for t, by_id in distinct.items() if (missing := sent[t] - len(_answered(by_id))) > 0
        },
        acted_on_twice={t: n for t, by_id in distinct.items() if (n := _acted_on(by_id)) > 1},
    )


def _answered(by_id: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The command messages (their event ids) with a result of their own: not an operator's decision."""
    return {event for event, r in by_id.items() if r.get("resolved_by") != "manual"}


def _acted_on(by_id: Mapping[str, Mapping[str, Any]]) -> int:
    """How many command messages of one trace number were acted on (see the module doc)."""
    acting = {
        event
        for event, r in by_id.items()
        if r.get("resolved_by") in FROM_THE_API and r.get("outcome") != "rejected"
    }
    decided = any(r.get("resolved_by") == "manual" for r in by_id.values())
    closes_one = any(r.get("outcome") == "unresolved" for r in by_id.values())
    return len(acting) + (1 if decided and not closes_one else 0)


def _disagreement(
    trace: str, results: list[Mapping[str, Any]], runs: list[Mapping[str, Any]]
) -> Disagreement | None:
    outcomes = tuple(sorted({str(r.get("outcome")) for r in results}))
    definitive = set(outcomes) & set(DEFINITIVE)

    def found(reason: str) -> Disagreement:
        return Disagreement(trace, outcomes, len(runs), reason)

    if "succeeded" in definitive and len(definitive) > 1:
        return found("conflicting results: succeeded and " + "/".join(sorted(definitive - {"succeeded"})))
    if not runs:
        return found("succeeded, but no money moved") if "succeeded" in definitive else None
    if definitive - {"succeeded"}:
        return found(f"money moved, but the result says {'/'.join(sorted(definitive))}")
    if not definitive and "unresolved" not in outcomes:
        return found(f"money moved, but the result says {'/'.join(outcomes)}")
    for success in (r for r in results if r.get("outcome") == "succeeded"):
        # every success (a duplicate's too) must match an execution: a success answered to a command
        # on another wallet than the one that moved money is wrong even if the first one is right
        mismatches = [_money_mismatch(success, run) for run in runs]
        if all(mismatches):
            return found(str(mismatches[0]))
    return None


def _money_mismatch(result: Mapping[str, Any], execution: Mapping[str, Any]) -> str | None:
    if result.get("msisdn") != execution.get("msisdn"):
        return f"money moved on another wallet ({execution.get('msisdn')}) than the result's"
    if _decimal(result.get("amount")) != _decimal(execution.get("amount")):
        return f"money moved for {execution.get('amount')}, the result says {result.get('amount')}"
    if result.get("type") is not None and result.get("type") != execution.get("type"):
        return f"a {execution.get('type')} executed, the result is for a {result.get('type')}"
    return None


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _unresolved(distinct: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, str]:
    """Trace numbers whose only answer is ``unresolved`` (a later manual decision settles one)."""
    out: dict[str, str] = {}
    for trace, by_id in distinct.items():
        results = list(by_id.values())
        if any(r.get("outcome") in DEFINITIVE for r in results):
            continue
        pending = [r for r in results if r.get("outcome") == "unresolved"]
        if pending:
            out[trace] = str(pending[-1].get("detail", ""))
    return out
