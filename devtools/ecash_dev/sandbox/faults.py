"""Fault injection for the sandbox: which misbehaviour applies to a call. Pure decisions, no I/O.

The app asks ``FaultInjector.plan(operation, trace_number)`` once per call and applies the plan:
latency first, then at most one fault *before* the call is processed (the call is not processed),
or at most one fault *after* it is processed (for Charge/Credit: after the money moved).

A rule applies to a call when its operation matches (``"*"`` matches every operation the kind makes
sense for), its trace numbers (if any) include the call's, its ``count`` is not used up, and its
probability draw succeeds. Draws are deterministic: a hash of the seed, the rule's position, the
operation, the trace number and how many times that operation/trace pair has been seen. The same
seed and the same calls give the same faults whatever the interleaving of concurrent calls.

Compact syntax (CLI ``--fault``, admin API): ``operation:kind[:key=value,key=value...]``, for example
``charge:hang_after_commit:p=0.05``, ``*:latency:ms=20``, ``credit:reset_after_commit:count=2``,
``charge:http_5xx_after_commit:trace=T1|T2,status=503``, ``status:status_lag:lag_s=5``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from worker.ecash.wire import Operation


class FaultKind(StrEnum):
    LATENCY = "latency"  # added delay before the call is processed
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 (a fault name)  the caller's session dies; TOKEN_EXPIRED, nothing processed
    HTTP_5XX_BEFORE_COMMIT = "http_5xx_before_commit"  # a 5xx, nothing processed
    HANG_AFTER_COMMIT = "hang_after_commit"  # processed, then never answered
    HTTP_5XX_AFTER_COMMIT = "http_5xx_after_commit"  # processed, then a 5xx
    RESET_AFTER_COMMIT = "reset_after_commit"  # processed, then the TCP connection is reset
    MALFORMED_JSON = "malformed_json"  # processed, then a 200 whose body is not JSON
    STATUS_LAG = "status_lag"  # Status Inquiry does not see transactions younger than lag_s


BEFORE_KINDS = frozenset({FaultKind.TOKEN_EXPIRED, FaultKind.HTTP_5XX_BEFORE_COMMIT})
AFTER_KINDS = frozenset(
    {
        FaultKind.HANG_AFTER_COMMIT,
        FaultKind.HTTP_5XX_AFTER_COMMIT,
        FaultKind.RESET_AFTER_COMMIT,
        FaultKind.MALFORMED_JSON,
    }
)
ANY_OPERATION: Literal["*"] = "*"


class FaultSpecError(ValueError):
    """A fault rule that cannot be understood; the message says why."""


class FaultRule(BaseModel):
    """One misbehaviour and when it applies. With neither ``probability`` nor ``count`` it always applies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    operation: Operation | Literal["*"] = ANY_OPERATION
    kind: FaultKind
    probability: float | None = Field(None, ge=0.0, le=1.0)
    count: int | None = Field(None, ge=1, description="Apply to the next N matching calls, then stop")
    trace_numbers: tuple[str, ...] | None = Field(None, description="Only calls carrying these trace numbers")
    latency_ms: float = Field(0.0, ge=0.0, le=3_600_000.0)
    lag_s: float = Field(0.0, ge=0.0, le=86_400.0)
    http_status: int = Field(500, ge=500, le=599)

    @model_validator(mode="after")
    def _coherent(self) -> FaultRule:
        if self.kind is FaultKind.LATENCY and self.latency_ms <= 0:
            raise ValueError("a latency fault needs latency_ms > 0 (ms=...)")
        if self.kind is FaultKind.STATUS_LAG:
            if self.lag_s <= 0:
                raise ValueError("a status_lag fault needs lag_s > 0")
            if self.operation not in (ANY_OPERATION, Operation.STATUS):
                raise ValueError("status_lag applies to the status operation only")
        if self.kind is FaultKind.TOKEN_EXPIRED and self.operation == Operation.LOGIN:
            raise ValueError("token_expired cannot apply to login (it carries no token)")
        return self

    def matches(self, operation: Operation, trace_number: str | None) -> bool:
        if self.operation != ANY_OPERATION and self.operation != operation:
            return False
        if self.kind is FaultKind.STATUS_LAG and operation is not Operation.STATUS:
            return False
        if self.kind is FaultKind.TOKEN_EXPIRED and operation is Operation.LOGIN:
            return False
        return self.trace_numbers is None or trace_number in self.trace_numbers


@dataclass(frozen=True)
class FaultPlan:
    """What to do to one call. ``before`` and ``after`` are never both set."""

    latency_ms: float = 0.0
    status_lag_s: float = 0.0
    before: FaultRule | None = None
    after: FaultRule | None = None

    @property
    def kinds(self) -> list[FaultKind]:
        found = [FaultKind.LATENCY] if self.latency_ms > 0 else []
        if self.status_lag_s > 0:
            found.append(FaultKind.STATUS_LAG)
        found.extend(rule.kind for rule in (self.before, self.after) if rule is not None)
        return found


NO_FAULT = FaultPlan()


@dataclass
class _LiveRule:
    rule: FaultRule
    key: int  # stable identity for the deterministic draw
    applied: int = 0

    @property
    def remaining(self) -> int | None:
        return None if self.rule.count is None else self.rule.count - self.applied


@dataclass
class FaultInjector:
    """The live rule list with its counters. Single-threaded: call it from the event loop only."""

    seed: int
    _rules: list[_LiveRule] = field(default_factory=list)
    _seen: dict[tuple[str, str], int] = field(default_factory=dict)
    _next_key: int = 0

    @classmethod
    def from_rules(cls, rules: list[FaultRule], seed: int) -> FaultInjector:
        injector = cls(seed=seed)
        injector.replace(rules)
        return injector

    def replace(self, rules: list[FaultRule]) -> None:
        self._rules = []
        self.add(rules)

    def add(self, rules: list[FaultRule]) -> None:
        for rule in rules:
            self._rules.append(_LiveRule(rule=rule, key=self._next_key))
            self._next_key += 1

    def clear(self) -> None:
        self._rules = []

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self._seen.clear()

    def snapshot(self) -> list[dict[str, Any]]:
        """The rules as JSON-ready dicts, each with how often it applied and how many uses remain."""
        return [
            {**live.rule.model_dump(mode="json"), "applied": live.applied, "remaining": live.remaining}
            for live in self._rules
        ]

    def plan(self, operation: Operation, trace_number: str | None) -> FaultPlan:
        if not self._rules:
            return NO_FAULT
        pair = (operation.value, trace_number or "")
        occurrence = self._seen.get(pair, 0)
        self._seen[pair] = occurrence + 1
        latency_ms, lag_s = 0.0, 0.0
        disruptive: FaultRule | None = None
        for live in self._rules:
            rule = live.rule
            if disruptive is not None and rule.kind not in (FaultKind.LATENCY, FaultKind.STATUS_LAG):
                continue
            if not self._applies(live, operation, trace_number, occurrence):
                continue
            live.applied += 1
            if rule.kind is FaultKind.LATENCY:
                latency_ms += rule.latency_ms
            elif rule.kind is FaultKind.STATUS_LAG:
                lag_s = max(lag_s, rule.lag_s)
            else:
                disruptive = rule
        before = disruptive if disruptive is not None and disruptive.kind in BEFORE_KINDS else None
        after = disruptive if disruptive is not None and disruptive.kind in AFTER_KINDS else None
        return FaultPlan(latency_ms=latency_ms, status_lag_s=lag_s, before=before, after=after)

    def _applies(self, live: _LiveRule, operation: Operation, trace: str | None, occurrence: int) -> bool:
        rule = live.rule
        if not rule.matches(operation, trace):
            return False
        remaining = live.remaining
        if remaining is not None and remaining <= 0:
            return False
        if rule.probability is None:
            return True
        return draw(self.seed, live.key, operation.value, trace or "", occurrence) < rule.probability


def draw(seed: int, rule_key: int, operation: str, trace_number: str, occurrence: int) -> float:
    """A number in [0, 1) fixed by its arguments: the same seed and call give the same decision."""
    material = f"{seed}|{rule_key}|{operation}|{trace_number}|{occurrence}".encode()
    digest = hashlib.blake2b(material, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


_PARAM_NAMES = {
    "p": "probability",
    "probability": "probability",
    "count": "count",
    "n": "count",
    "trace": "trace_numbers",
    "traces": "trace_numbers",
    "trace_numbers": "trace_numbers",
    "ms": "latency_ms",
    "latency_ms": "latency_ms",
    "lag_s": "lag_s",
    "s": "lag_s",
    "status": "http_status",
    "http_status": "http_status",
}


def parse_fault_spec(spec: str) -> FaultRule:
    """``operation:kind[:key=value,...]`` to a rule; raises FaultSpecError with a readable reason."""
    parts = spec.strip().split(":", 2)
    if len(parts) < 2:
        raise FaultSpecError(f"{spec!r}: expected operation:kind[:key=value,...]")
    fields: dict[str, Any] = {"operation": parts[0].strip().lower(), "kind": parts[1].strip().lower()}
    if len(parts) == 3 and parts[2].strip():
        for item in parts[2].split(","):
            name, sep, value = item.partition("=")
            target = _PARAM_NAMES.get(name.strip().lower())
            if not sep or target is None:
                raise FaultSpecError(f"{spec!r}: unknown parameter {item.strip()!r}")
            fields[target] = value.strip().split("|") if target == "trace_numbers" else value.strip()
    return _validated(fields, context=repr(spec))


def rule_from_json(value: object) -> FaultRule:
    """A rule from the admin API: a compact string or a JSON object with FaultRule's fields."""
    if isinstance(value, str):
        return parse_fault_spec(value)
    return _validated(value, context="fault rule")


def _validated(value: object, *, context: str) -> FaultRule:
    try:
        return FaultRule.model_validate(value)
    except ValidationError as exc:
        raise FaultSpecError(f"{context}: {validation_reasons(exc)}") from None


def validation_reasons(exc: ValidationError) -> str:
    """pydantic's errors as one line: ``field: reason; field: reason``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}" for err in exc.errors()
    )
