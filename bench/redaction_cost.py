"""What the log redaction costs per line, ordinary and hostile: ``python -m bench.redaction_cost``.

First, what one whole log line costs as the worker makes it (``log_hook``: the event's fields, the
redaction filter, the JSON line, written to /dev/null) for the events a command raises; only the result
is logged at INFO, the others are turned away at the level check.

Prints microseconds per line through ``Redactor`` (the rules every log line passes, docs/runbook.md) for a
result line's message and for runs of ``a1-a1-...`` of growing length, the shape that made the old
key=value rule quadratic. ``--old`` times the old rule alone on the same runs, for the comparison in
docs/performance.md (it takes minutes at the larger sizes; ``--max-chars`` bounds them)."""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable, Sequence
from functools import partial

from worker.contracts import CommandType, Outcome, ResolvedBy
from worker.events import (
    ApiCallFinished,
    ClaimReadBack,
    CommandConsumed,
    Event,
    ResultPublished,
    TransactionCommitted,
)
from worker.observability import logs
from worker.observability.logs import Redactor, configure_logging, log_hook, masked_value
from worker.settings import SANDBOX_API_IDENTITY, load_settings

__all__ = ["OLD_KEY_VALUE", "main"]

# The key=value rule before 2026-12-07 (quadratic on long dashed runs): the reference its replacement is
# compared with here and in tests/unit/observability/test_redaction_cost.py.
OLD_KEY_VALUE = re.compile(
    rf"(?i)\b([\w-]*?(?:{logs._SECRET_WORDS}))([\"']?\s*[:=]\s*[\"']?)([^\s\"'&,;)}}\]]+)"
)


def _per_call_us(work: Callable[[], object], *, budget_s: float = 0.5) -> float:
    calls, started = 0, time.perf_counter()
    while True:
        work()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= budget_s:
            return 1e6 * elapsed / calls


def _whole_lines() -> None:
    """Microseconds per event through the worker's logging, as configured for JSON at INFO."""
    with open("/dev/null", "w") as sink:
        configure_logging(load_settings(**SANDBOX_API_IDENTITY, log_format="json"), sink)
        events: dict[str, Event] = {
            "result (INFO)": ResultPublished(
                "T-20261207-000042",
                "081312345678",
                CommandType.CHARGE,
                Outcome.SUCCEEDED,
                ResolvedBy.RESPONSE,
                "PROCESSED",
                1,
                0.2345,
            ),
            "api call (DEBUG)": ApiCallFinished("charge", "PROCESSED", 0.051),
            "consumed (DEBUG)": CommandConsumed(3),
            "transaction (DEBUG)": TransactionCommitted(3, 40, 0.02, 0.04),
            "claim read (DEBUG)": ClaimReadBack(0.05),
        }
        print(f"{'event':>24s} {'us per event':>14s}")
        for name, event in events.items():
            print(f"{name:>24s} {_per_call_us(partial(log_hook, event)):14.1f}")
        print()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.redaction_cost", description=__doc__)
    parser.add_argument("--old", action="store_true", help="also time the old key=value rule alone")
    parser.add_argument(
        "--max-chars", type=int, default=96_000, help="the longest hostile run (default 96,000)"
    )
    args = parser.parse_args(argv)
    _whole_lines()
    redact = Redactor(["k" * 56])
    ordinary = "result published: succeeded"
    print(f"{'line':>24s} {'us per line':>14s}" + (f" {'old rule, us':>14s}" if args.old else ""))
    print(f"{'a result line':>24s} {_per_call_us(lambda: redact(ordinary)):14.1f}")
    chars = 6_000
    while chars <= args.max_chars:
        line = "a1-" * (chars // 3)
        row = f"{f'{chars:,} hostile chars':>24s} {_per_call_us(partial(redact, line)):14.1f}"
        if args.old:
            old = _per_call_us(partial(OLD_KEY_VALUE.sub, masked_value, line), budget_s=0)
            row += f" {old:14.1f}"
        print(row, flush=True)
        chars *= 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
