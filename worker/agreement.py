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
- **unresolved**: the worker said ``unresolved`` and nobody has settled it since. Honest, not wrong: an
  operator decides it (``detail`` says why it was not resolved).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

DEFINITIVE = ("succeeded", "declined", "failed")


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

    @property
    def ok(self) -> bool:
        """The four figures that must be zero are zero."""
        return not self.double_charges and not self.lost and not self.disagreements and not self.seen_twice

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
    )


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
    success = next((r for r in results if r.get("outcome") == "succeeded"), None)
    if success is not None:
        return _compare_money(found, success, runs[0])
    return None


def _compare_money(
    found: Callable[[str], Disagreement], result: Mapping[str, Any], execution: Mapping[str, Any]
) -> Disagreement | None:
    if result.get("msisdn") != execution.get("msisdn"):
        return found(f"money moved on another wallet ({execution.get('msisdn')}) than the result's")
    if _decimal(result.get("amount")) != _decimal(execution.get("amount")):
        return found(f"money moved for {execution.get('amount')}, the result says {result.get('amount')}")
    if result.get("type") is not None and result.get("type") != execution.get("type"):
        return found(f"a {execution.get('type')} executed, the result is for a {result.get('type')}")
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
