"""What is run: the scenarios and their commands, the designs, and the options every run shares."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

DESIGNS = ("worker", "baseline", "worker-nojournal", "worker-notxn", "worker-noclaims", "worker-notracing")
TRANSPORTS = ("aiohttp", "httpx")
WORKER_DESIGNS = ("worker", "worker-nojournal", "worker-notxn", "worker-noclaims", "worker-notracing")


@dataclass(frozen=True)
class Scenario:
    name: str
    latency_ms: float
    commands: int = 100_000
    msisdns: int = 10_000
    hot_share: float = 0.0  # share of the commands that go to the hot MSISDNs
    hot_fraction: float = 0.0  # share of the MSISDNs that are hot
    partitions: int = 12
    rate_per_s: float | None = None  # None: pre-loaded backlog; else produced at this rate while running
    about: str = ""


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "uniform-0ms", 0.0, about="100,000 over 10,000 MSISDNs, pre-loaded; the API answers at once"
        ),
        Scenario("uniform-50ms", 50.0, about="100,000 over 10,000 MSISDNs, pre-loaded; 50 ms API latency"),
        Scenario(
            "skewed-50ms",
            50.0,
            hot_share=0.2,
            hot_fraction=0.01,
            about="as uniform-50ms, but 20% of the commands go to 1% of the MSISDNs",
        ),
        Scenario(
            "paced-50ms",
            50.0,
            commands=30_000,
            rate_per_s=1000.0,
            about="30,000 produced at 1,000/s while the design runs: end-to-end latency under load",
        ),
        Scenario("soak-1m", 0.0, commands=1_000_000, about="1,000,000 pre-loaded: backlog and soak memory"),
        Scenario("small", 50.0, commands=500, msisdns=250, about="the CI-sized run"),
    )
}


DEFAULT_SCENARIOS = ("uniform-0ms", "uniform-50ms", "skewed-50ms")


def msisdn_of(index: int) -> str:
    return f"0815{index:09d}"


def workload(scenario: Scenario, seed: int) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of every command, the same for every design: alternating charge and credit of 100."""
    rng = random.Random(seed)
    hot = max(1, round(scenario.msisdns * scenario.hot_fraction)) if scenario.hot_share > 0 else 0
    for i in range(scenario.commands):
        if hot and rng.random() < scenario.hot_share:
            index = rng.randrange(hot)
        elif hot:
            index = hot + rng.randrange(scenario.msisdns - hot)
        else:
            index = rng.randrange(scenario.msisdns)
        msisdn = msisdn_of(index)
        command = {
            "type": "credit" if i % 2 else "charge",
            "trace_number": f"B{i:010d}",
            "msisdn": msisdn,
            "amount": "100",
        }
        yield msisdn.encode(), orjson.dumps(command)


@dataclass
class Context:
    """The options every run of one invocation shares (the command line's), and the broker it runs on."""

    bootstrap: str
    broker_pid: int | None
    work_dir: Path
    max_in_flight: int
    extra_env: dict[str, str]
    log_level: str
    restore: bool
    profile: str
    seed: int
    sample_interval_s: float
    timeout_s: float | None
    worker_src: Path | None = None
    quiet_below_cores: float | None = None
    quiet_wait_s: float = 600.0
    replicas: int = 1
