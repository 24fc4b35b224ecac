"""``bench.takeover.activation_waves``: each assignment in a worker's log, with when its partitions became
active after it."""

from __future__ import annotations

import orjson

from bench.takeover import activation_waves


def line(ts: str, **fields: object) -> bytes:
    return orjson.dumps({"ts": f"2026-12-07T14:00:{ts}Z", "level": "info", **fields})


def test_each_assignment_counts_the_activations_that_follow_it_until_the_next() -> None:
    log = [
        line("00.000", event="log", msg="Joined group 'g' (generation 1)"),
        line("00.100", event="partitions_changed", assigned=[0, 1], revoked=[]),
        line("00.150", event="log", msg="partition 1 active (journal: 0 records restored)"),
        line("00.700", event="log", msg="partition 0 active (journal: 0 records restored)"),
        line("02.000", event="result_published", msg="result published"),
        line("05.000", event="partitions_changed", assigned=[], revoked=[0, 1]),  # a revocation: no wave
        line("05.020", event="partitions_changed", assigned=[1], revoked=[]),
        line("05.220", event="log", msg="partition 1 active (journal: 12 records restored)"),
        b"",
    ]

    waves = activation_waves(log)

    assert [(w.partitions, w.active_after_s) for w in waves] == [(2, [0.05, 0.6]), (1, [0.2])]
    assert waves[0].line() == "2 assigned: first active 50 ms, last 600 ms"


def test_an_assignment_with_no_partition_active_yet_says_so() -> None:
    waves = activation_waves([line("00.000", event="partitions_changed", assigned=[3], revoked=[])])

    assert waves[0].line() == "1 assigned: none active"
