"""What the chaos run does, as data: its options, the commands it sends, the faults, the worker settings.

Pure and seeded: the same ``--seed`` gives the same commands and (the sandbox's draws being deterministic)
the same faulted trace numbers. Only the timing of kills against the work differs from run to run.

Timing, and why the sandbox's ``status_lag`` never makes the worker believe a wrong "not found":
the first Status Inquiry goes out ``request_timeout_s + resolution_grace_s`` (2 s) after the intent and a
not-found is believed only after ``not_found_confirmations`` (2) in a row, each inquiry at least
``resolution_schedule_s[0]`` (3 s) after the previous answer. The lag (2.5 s) is longer than the first
(so the first inquiry of a lagged trace number often answers not-found: the confirmation rule is really
exercised) and shorter than the gap to the second (so the second always sees an executed transaction).
The bound that holds whatever delays the send (a slow journal write while the broker restarts, a
re-login) is the gap alone: see ``status_lag_is_safe``.

Commands that share a trace number across partitions (issue 14: one trace number, one payment, across the
whole deployment), each kind on about ``CROSS_PARTITION_DUPLICATE_P`` / ``TRACE_REUSE_P`` of commands, sent a
few messages after their original (``plan_messages``):

- a *cross-partition duplicate*: the same command value again, keyed by its MSISDN, but produced to the
  next partition, ``(p + 1) % partitions``, where ``p`` is the one its key hashes to;
- a *trace reuse*: a second command with the same trace number on another wallet, one whose key hashes to
  another partition than the original's.

Exactly one of the commands sharing a trace number may be acted on; the others are answered from the
journal or ``rejected`` (``ecash_dev.chaos.agreement``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecash_dev.sandbox.state import demo_msisdn
from ecash_dev.stack import namespaced
from worker.pipeline.key_rule import java_partition
from worker.settings import SANDBOX_API_IDENTITY

REQUEST_TIMEOUT_S = 1.5
RESOLUTION_GRACE_S = 0.5
RESOLUTION_SCHEDULE_S = (3.0, 3.0, 5.0)
NOT_FOUND_CONFIRMATIONS = 2
RESOLUTION_DEADLINE_S = 300.0  # every fault here resolves in seconds; kills and the broker restart add some
STATUS_LAG_S = 2.5

MONEY_OPERATIONS = ("charge", "credit")
# The faults that leave a money call's outcome unknown to the client (5xx before commit: nothing moved,
# but the client cannot tell): the worker must resolve each by Status Inquiry.
AMBIGUOUS_KINDS = (
    "hang_after_commit",
    "http_5xx_after_commit",
    "reset_after_commit",
    "malformed_json",
    "http_5xx_before_commit",
)
AMBIGUOUS_P = 0.025  # per kind and money operation: about 11% of money calls, 2.2% each kind
# Every operation but Login. The fault ends the session itself, so every call in flight on it is
# refused too (each logs in again and is sent again): at this draw 4-7% of calls answer TOKEN_EXPIRED
# (at p=0.05, more than half of them did: a relogin storm, not 5% expiry). See docs/reliability.md.
TOKEN_EXPIRED_P = 0.004
STATUS_LAG_P = 0.5  # of Status Inquiries

# The demo wallets hold 10,000,000.00 with a limit of 1,000,000,000.00 (SandboxConfig defaults).
DECLINE_UNKNOWN_MEMBER_P = 0.01
DECLINE_NOT_ENOUGH_CREDITS_P = 0.02
DECLINE_CREDIT_LIMIT_P = 0.005

# Commands sharing a trace number across partitions (see the module doc), each a share of the commands
CROSS_PARTITION_DUPLICATE = "cross_partition_duplicate"
TRACE_REUSE = "trace_reuse"
CROSS_PARTITION_DUPLICATE_P = 0.015
TRACE_REUSE_P = 0.015
INJECTED_MAX_LAG = 40  # an injected message follows its original by 1 to this many messages


@dataclass(frozen=True)
class ChaosOptions:
    commands: int = 20_000
    msisdns: int = 2_000
    workers: int = 3
    seconds_between_kills: float = 6.0
    max_kills: int | None = None  # None: keep killing while commands are unanswered
    broker_restarts: int = 1
    seed: int = 1
    rate_per_s: float = 200.0  # commands produced per second
    partitions: int = 12
    max_wait_s: float = 600.0  # after the last command is sent, for every result
    bootstrap: str | None = None  # an existing cluster: no local broker, so no broker restart
    workdir: Path | None = None  # logs, worker state, broker data; default: a new temporary directory
    status_lag_s: float = STATUS_LAG_S
    worker_overrides: dict[str, Any] = field(default_factory=dict)  # settings for experiments
    # SIGSTOP a worker past its session timeout, then SIGCONT it: a stalled worker whose partitions move
    freezes: int = 0
    freeze_s: float = 15.0
    # synthetic finished records in the journal before the workers start: a cold restore this large
    # outlasts the session timeout (restores must not stall the group)
    journal_preload: int = 0
    static_membership: bool = True  # each worker a stable ECASH_KAFKA_GROUP_INSTANCE_ID, as in Kubernetes
    cross_partition_duplicates: float = CROSS_PARTITION_DUPLICATE_P  # share of commands sent again elsewhere
    trace_reuses: float = TRACE_REUSE_P  # share of commands whose trace number another wallet's reuses

    def validate(self) -> None:
        if self.commands < 1 or self.msisdns < 1 or self.workers < 1:
            raise ValueError("--commands, --msisdns and --workers must be at least 1")
        if self.seconds_between_kills <= 0 or self.rate_per_s <= 0:
            raise ValueError("--seconds-between-kills and --rate must be positive")
        if self.broker_restarts and self.bootstrap:
            raise ValueError("--bootstrap names a cluster this run cannot restart: add --broker-restarts 0")
        if self.status_lag_s <= 0:
            raise ValueError("--status-lag-s must be positive")
        if self.freezes < 0 or self.freeze_s <= 0 or self.journal_preload < 0:
            raise ValueError("--freezes and --journal-preload must be >= 0, --freeze-s positive")
        shares = (self.cross_partition_duplicates, self.trace_reuses)
        if min(shares) < 0 or sum(shares) > 1:
            raise ValueError("--cross-partition-duplicates and --trace-reuses: each >= 0, at most 1 in all")
        if self.partitions < 2 and any(shares):
            raise ValueError("--cross-partition-duplicates and --trace-reuses need --partitions >= 2")

    def lag_warning(self) -> str | None:
        """Why this run's status lag may make a worker believe a wrong not-found (an experiment), if so."""
        settings = {**DEFAULT_TIMING, **self.worker_overrides}
        schedule = tuple(float(step) for step in settings["resolution_schedule_s"])
        confirmations = int(settings["not_found_confirmations"])
        if status_lag_is_safe(self.status_lag_s, schedule, confirmations):
            return None
        return (
            f"status lag {self.status_lag_s:g} s is not below the gap between {confirmations} consecutive "
            f"Status Inquiries ({schedule}): an executed call may be concluded 'failed' (the check says so)"
        )


def status_lag_is_safe(lag_s: float, schedule_s: tuple[float, ...], confirmations: int) -> bool:
    """Can a status lag of ``lag_s`` make ``confirmations`` consecutive not-founds for an executed call?

    The first inquiry comes after the execution; the n-th at least ``sum(schedule_s[:n-1])`` later
    (delays count from the previous answer's arrival). If that exceeds the lag, the last one sees it.
    """
    steps = [schedule_s[min(i, len(schedule_s) - 1)] for i in range(confirmations - 1)]
    return lag_s < sum(steps)


def fault_rules(status_lag_s: float = STATUS_LAG_S) -> list[str]:
    """The sandbox's rules (compact syntax), token expiry first, then one rule per ambiguous kind."""
    rules = [f"*:token_expired:p={TOKEN_EXPIRED_P}"]
    rules += [f"{op}:{kind}:p={AMBIGUOUS_P}" for op in MONEY_OPERATIONS for kind in AMBIGUOUS_KINDS]
    rules.append(f"status:status_lag:p={STATUS_LAG_P},lag_s={status_lag_s}")
    return rules


def plan_commands(count: int, msisdns: int, seed: int) -> list[dict[str, str]]:
    """Charges and credits over the demo wallets ``1..msisdns``; a few are declined on purpose."""
    rng = random.Random(seed)
    commands = []
    for i in range(count):
        kind = rng.choice(MONEY_OPERATIONS)
        msisdn = demo_msisdn(rng.randint(1, msisdns))
        amount = str(rng.randint(100, 50_000)) + rng.choice(("", "", "", ".50"))
        roll = rng.random()
        if roll < DECLINE_UNKNOWN_MEMBER_P:
            msisdn = f"0819{rng.randrange(10**9):09d}"  # no such wallet: MEMBER_NOT_FOUND
        elif roll < DECLINE_UNKNOWN_MEMBER_P + DECLINE_NOT_ENOUGH_CREDITS_P:
            kind, amount = "charge", "99000000"  # NOT_ENOUGH_CREDITS
        elif roll < DECLINE_UNKNOWN_MEMBER_P + DECLINE_NOT_ENOUGH_CREDITS_P + DECLINE_CREDIT_LIMIT_P:
            kind, amount = "credit", "999999999"  # RECEIVER_UPPER_CREDIT_LIMIT_REACHED
        trace = f"X{seed % 1000:03d}N{i:07d}"
        commands.append({"type": kind, "trace_number": trace, "msisdn": msisdn, "amount": amount})
    return commands


@dataclass(frozen=True)
class PlannedMessage:
    """One command message of the run: its value, and where it goes."""

    command: dict[str, str]
    partition: int | None = None  # None: where its key (the MSISDN) hashes; else this one, explicitly
    injected: str | None = None  # CROSS_PARTITION_DUPLICATE or TRACE_REUSE; None: an original command


def plan_messages(
    count: int,
    msisdns: int,
    seed: int,
    *,
    partitions: int,
    cross_partition_duplicates: float = CROSS_PARTITION_DUPLICATE_P,
    trace_reuses: float = TRACE_REUSE_P,
) -> list[PlannedMessage]:
    """``plan_commands``'s commands, in order, with the injected ones a few messages after their original.

    The originals are exactly ``plan_commands(count, msisdns, seed)``; the injections are drawn from a
    generator of their own, so the same seed gives the same messages.
    """
    originals = plan_commands(count, msisdns, seed)
    rng = random.Random(seed * 1_000_003 + 14)
    slots: list[tuple[float, PlannedMessage]] = [(i, PlannedMessage(c)) for i, c in enumerate(originals)]
    for i, command in enumerate(originals):
        roll = rng.random()
        if roll < cross_partition_duplicates:
            home = java_partition(command["msisdn"].encode(), partitions)
            injected = PlannedMessage(dict(command), (home + 1) % partitions, CROSS_PARTITION_DUPLICATE)
        elif roll < cross_partition_duplicates + trace_reuses:
            other = _elsewhere(rng, command["msisdn"], msisdns, partitions)
            injected = PlannedMessage({**command, "msisdn": other}, None, TRACE_REUSE)
        else:
            continue
        slots.append((i + rng.randint(1, INJECTED_MAX_LAG) - 0.5, injected))
    slots.sort(key=lambda slot: slot[0])
    return [message for _, message in slots]


def _elsewhere(rng: random.Random, msisdn: str, msisdns: int, partitions: int) -> str:
    """Another MSISDN whose key hashes to another partition (a demo wallet when there are others)."""
    home = java_partition(msisdn.encode(), partitions)
    for _ in range(1000):
        # a demo wallet when there are others; else no such wallet (MEMBER_NOT_FOUND if it is sent)
        other = demo_msisdn(rng.randint(1, msisdns)) if msisdns > 1 else f"0819{rng.randrange(10**9):09d}"
        if other != msisdn and java_partition(other.encode(), partitions) != home:
            return other
    raise ValueError(f"no MSISDN found outside partition {home} of {partitions}")


DEFAULT_TIMING: dict[str, Any] = {
    "request_timeout_s": REQUEST_TIMEOUT_S,
    "resolution_grace_s": RESOLUTION_GRACE_S,
    "resolution_schedule_s": list(RESOLUTION_SCHEDULE_S),
    "resolution_deadline_s": RESOLUTION_DEADLINE_S,
    "not_found_confirmations": NOT_FOUND_CONFIRMATIONS,
}


def worker_settings(
    bootstrap: str, api_base_url: str, prefix: str, partitions: int, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The workers' settings (without ``state_dir``: one per worker). Short timeouts, long deadline."""
    return {
        "kafka_bootstrap_servers": bootstrap,
        **namespaced(prefix, partitions),
        "api_base_url": api_base_url,
        **SANDBOX_API_IDENTITY,  # the sandbox's agent, passed explicitly (run has no default)
        **DEFAULT_TIMING,
        "connect_timeout_s": 0.5,
        "not_sent_backoff_initial_s": 0.1,
        "not_sent_backoff_max_s": 1.0,
        "commit_interval_s": 0.5,
        "kafka_session_timeout_s": 6.0,  # the broker's group.min.session.timeout.ms
        "kafka_rebalance_timeout_s": 20.0,
        "drain_timeout_s": 5.0,
        "max_in_flight": 128,
        "max_buffered": 2048,
        "metrics_host": "127.0.0.1",
        "metrics_port": 0,
        "log_level": "INFO",
        **(overrides or {}),
    }
