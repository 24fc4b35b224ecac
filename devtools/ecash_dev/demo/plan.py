"""The demo's script, as data: wallets, the commands (with the ones meant to go wrong), faults, settings.

About 200 commands: ordinary charges and credits, declines of every kind, ambiguous answers scripted by
trace number that Status Inquiry resolves, one that ends in manual review, a token expiry, a duplicate,
a trace number reused with other parameters, an invalid command and two messages nobody can answer.
Every scripted case says what should become of it (``EXPECTED``): the demo checks that it did.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ecash_dev.sandbox.state import demo_msisdn
from ecash_dev.stack import namespaced
from worker.settings import SANDBOX_API_IDENTITY

REGULAR_WALLETS = 20  # demo_msisdn(1..20), 1,000,000.00 each
POOR = demo_msisdn(21)  # 5,000.00: charges above that are refused
CAPPED = demo_msisdn(22)  # 990,000.00 with an upper credit limit of 1,000,000.00
UNKNOWN = "0819999999999"  # no such wallet
ORDINARY_COMMANDS = 180

# Timing: the first Status Inquiry 2.5 s after the ambiguity is seen (a hang is seen when the 2 s request
# timeout ends, so 4.5 s after the charge), then every 4 s; unresolved after 20 s.
REQUEST_TIMEOUT_S = 2.0
RESOLUTION_GRACE_S = 0.5
RESOLUTION_SCHEDULE_S = (4.0,)
RESOLUTION_DEADLINE_S = 20.0
STATUS_LAG_S = 6.5  # longer than the first inquiry's wait (4.5 s), shorter than the second's (8.5 s)


@dataclass(frozen=True)
class Case:
    """A scripted command: what goes wrong, and the outcome it must end in."""

    trace_number: str
    story: str
    kind: str
    msisdn: str
    amount: str
    outcome: str
    resolved_by: str
    faults: tuple[str, ...] = ()
    later: tuple[str, ...] = ()  # the results of its later messages (a duplicate, a reuse)

    @property
    def expected(self) -> tuple[str, ...]:
        """Its results in order, as ``outcome (resolved_by)``."""
        return (f"{self.outcome} ({self.resolved_by})", *self.later)

    def command(self) -> dict[str, str]:
        return _command(self.trace_number, self.msisdn, self.amount, self.kind)


def _command(trace: str, msisdn: str, amount: str, kind: str = "charge") -> dict[str, str]:
    return {"type": kind, "trace_number": trace, "msisdn": msisdn, "amount": amount}


W1, W2, W3 = demo_msisdn(1), demo_msisdn(2), demo_msisdn(3)
AMBIGUOUS = (
    Case("HANG1", "Charge hangs after the money moved", "charge", W1, "12500", "succeeded",
         "status_inquiry", ("charge:hang_after_commit:trace=HANG1",)),
    Case("ERR5XX1", "HTTP 500 after the money moved", "charge", W2, "8000", "succeeded",
         "status_inquiry", ("charge:http_5xx_after_commit:trace=ERR5XX1",)),
    Case("RESET1", "connection reset after the money moved", "credit", W3, "4000", "succeeded",
         "status_inquiry", ("credit:reset_after_commit:trace=RESET1",)),
    Case("HALFJSON1", "half a JSON body after the money moved", "charge", W1, "1500", "succeeded",
         "status_inquiry", ("charge:malformed_json:trace=HALFJSON1",)),
    Case("LAG1", f"Charge hangs; Status does not see it for {STATUS_LAG_S:g} s", "charge", W2, "2200",
         "succeeded", "status_inquiry",
         ("charge:hang_after_commit:trace=LAG1", f"status:status_lag:trace=LAG1,lag_s={STATUS_LAG_S}")),
    Case("PROXY5XX1", "HTTP 502 before the host processed it", "charge", W3, "3300", "failed",
         "status_inquiry", ("charge:http_5xx_before_commit:trace=PROXY5XX1,status=502",)),
    Case("REVIEW1", "Charge hangs; every Status Inquiry fails", "charge", W1, "45000", "unresolved",
         "status_inquiry",
         ("charge:hang_after_commit:trace=REVIEW1", "status:http_5xx_before_commit:trace=REVIEW1")),
)  # fmt: skip

OTHERS = (
    Case("TOKEN1", "the session expires under the Charge: log in again, send again", "charge", W2,
         "3000", "succeeded", "response", ("charge:token_expired:trace=TOKEN1,count=1",)),
    Case("POOR1", "not enough credits", "charge", POOR, "20000", "declined", "response"),
    Case("POOR2", "not enough credits", "charge", POOR, "5000.01", "declined", "response"),
    Case("NOBODY1", "unknown member", "charge", UNKNOWN, "1000", "declined", "response"),
    Case("NOBODY2", "unknown member", "credit", UNKNOWN, "2500", "declined", "response"),
    Case("CAP1", "credit above the upper credit limit", "credit", CAPPED, "20000", "declined", "response"),
    Case("DUP1", "sent twice: moved once, the second answered from the journal", "charge", W3, "7500",
         "succeeded", "response", later=("succeeded (journal)",)),
    Case("REUSE1", "trace number reused with another amount: the reuse is rejected", "charge", W1,
         "1000", "succeeded", "response", later=("rejected (journal)",)),
    Case("BADAMT1", "a negative amount: rejected, never sent", "charge", W2, "-5", "rejected", "response"),
)  # fmt: skip

CASES = {case.trace_number: case for case in (*AMBIGUOUS, *OTHERS)}
DEAD_LETTERS = (b"this is not JSON", b'{"type": "charge", "msisdn": "0813000000001", "amount": "5"}')


def wallets() -> list[dict[str, str]]:
    regular = [{"msisdn": demo_msisdn(i), "balance": "1000000"} for i in range(1, REGULAR_WALLETS + 1)]
    return [
        *regular,
        {"msisdn": POOR, "balance": "5000"},
        {"msisdn": CAPPED, "balance": "990000", "upper_credit_limit": "1000000"},
    ]


def fault_rules() -> list[str]:
    return [rule for case in CASES.values() for rule in case.faults]


def scripted_commands() -> list[dict[str, str] | bytes]:
    """Every case once, the duplicate twice, the reuse with another amount, and the dead letters."""
    reuse = CASES["REUSE1"].command() | {"amount": "9000"}
    return [*(c.command() for c in CASES.values()), CASES["DUP1"].command(), reuse, *DEAD_LETTERS]


def ordinary_commands(seed: int = 7) -> list[dict[str, str]]:
    rng = random.Random(seed)
    return [
        _command(
            f"ORD{i:04d}",
            demo_msisdn(rng.randint(1, REGULAR_WALLETS)),
            str(rng.randint(100, 25_000)),
            rng.choice(("charge", "credit")),
        )
        for i in range(ORDINARY_COMMANDS)
    ]


def all_commands() -> list[dict[str, str] | bytes]:
    """The ordinary commands, with the scripted ones spread evenly among them (in their order)."""
    ordinary, scripted = ordinary_commands(), scripted_commands()
    step = len(ordinary) // len(scripted)
    out: list[dict[str, str] | bytes] = []
    for i, command in enumerate(ordinary):
        if i % step == 0 and i // step < len(scripted):
            out.append(scripted[i // step])
        out.append(command)
    return out + scripted[len(ordinary[::step]) :]


def worker_settings(bootstrap: str, api_base_url: str, prefix: str, metrics_port: int) -> dict[str, Any]:
    return {
        "kafka_bootstrap_servers": bootstrap,
        **namespaced(prefix, 4),
        "api_base_url": api_base_url,
        **SANDBOX_API_IDENTITY,  # the sandbox's agent, passed explicitly (run has no default)
        "request_timeout_s": REQUEST_TIMEOUT_S,
        "resolution_grace_s": RESOLUTION_GRACE_S,
        "resolution_schedule_s": list(RESOLUTION_SCHEDULE_S),
        "resolution_deadline_s": RESOLUTION_DEADLINE_S,
        "kafka_session_timeout_s": 10.0,
        "commit_interval_s": 0.5,
        "drain_timeout_s": 5.0,
        "max_in_flight": 32,
        "max_buffered": 512,
        "metrics_host": "127.0.0.1",
        "metrics_port": metrics_port,
    }
