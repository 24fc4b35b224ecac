"""``--profile kafka-requests``: which answers count as refusals, the table it writes, and the command line
that wraps the design under test (bench/kafka_requests.py; no broker: answers are plain objects)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

from bench.kafka_requests import RequestStats, is_refusal, render
from bench.processes import design_argv


def test_a_concurrent_transactions_answer_counts_as_a_refusal_whether_whole_or_per_partition() -> None:
    assert is_refusal(SimpleNamespace(error_code=51))  # EndTxn
    assert is_refusal(SimpleNamespace(errors=[("ecash.claims", [(3, 0), (7, 51)])]))
    assert not is_refusal(SimpleNamespace(error_code=0))
    assert not is_refusal(SimpleNamespace(errors=[("ecash.claims", [(3, 0)])]))
    assert not is_refusal(None)  # the request failed: no answer at all


def test_a_produce_with_a_partition_refused_not_enough_replicas_counts_as_a_refusal() -> None:
    refused = [("ecash.claims", [(3, 0, 17, -1, 0), (11, 19, -1, -1, 0)])]  # claims-11: unverified
    assert is_refusal(SimpleNamespace(topics=refused))
    assert not is_refusal(SimpleNamespace(topics=[("ecash.claims", [(3, 0, 17, -1, 0)])]))


def test_the_table_puts_the_most_frequent_request_first_with_its_percentiles() -> None:
    produce, end = RequestStats(), RequestStats()
    for ms in range(1, 101):
        produce.add(ms / 1000, refused=False)
    end.add(0.002, refused=True)
    header, first, second = render({"EndTxn": end, "Produce": produce}).splitlines()
    assert header.split() == ["request", "count", "mean", "ms", "p50", "p99", "max", "refused"]
    assert first.split() == ["Produce", "100", "50.50", "51.00", "100.00", "100.0", "0"]
    assert second.split() == ["EndTxn", "1", "2.00", "2.00", "2.00", "2.0", "1"]


def test_round_trips_past_the_histogram_report_the_longest_seen() -> None:
    stats = RequestStats()
    stats.add(0.001, refused=False)
    stats.add(5.0, refused=False)  # a five-second stall, past the 2 s the buckets cover
    assert stats.percentile_ms(0.99) == 5000.0
    assert stats.percentile_ms(0.0) == 1.0


def test_the_profile_wraps_the_worker_or_a_what_if_in_the_counting_module(tmp_path: Path) -> None:
    argv = design_argv("worker", "kafka-requests", tmp_path, None)
    assert argv == [
        sys.executable,
        "-m",
        "bench.kafka_requests",
        str(tmp_path / "kafka-requests.txt"),
        "--",
        "-m",
        "worker.cli",
        "run",
    ]
    what_if = design_argv("worker-notxn", "kafka-requests", tmp_path, None)
    assert what_if[-5:] == ["--", "-m", "bench.run", "--child", "worker-notxn"]
