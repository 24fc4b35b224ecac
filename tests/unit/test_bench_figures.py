"""bench.figures: the steady throughput leaves out a slow start (a second replica joining) and a slow tail."""

from __future__ import annotations

from bench.figures import steady_per_s


def test_a_slow_start_and_tail_do_not_count_in_the_steady_throughput() -> None:
    # 100 results/s for 8 s, after a 10-result start spread over 5 s and before a 10-result tail over 5 s
    start = [i * 500 for i in range(10)]
    middle = [5_000 + i * 10 for i in range(800)]
    tail = [13_000 + i * 500 for i in range(10)]
    assert steady_per_s(start + middle + tail) == 100.0


def test_too_few_results_or_all_at_once_have_no_steady_throughput() -> None:
    assert steady_per_s([0, 10, 20]) is None
    assert steady_per_s([7] * 50) is None
