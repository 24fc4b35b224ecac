"""bench.figures: the steady throughput and latency leave out a slow start and a slow tail."""

from __future__ import annotations

from bench.figures import percentiles_ms, steady_end_to_end_ms, steady_per_s


def test_a_slow_start_and_tail_do_not_count_in_the_steady_throughput() -> None:
    # 100 results/s for 8 s, after a 10-result start spread over 5 s and before a 10-result tail over 5 s
    start = [i * 500 for i in range(10)]
    middle = [5_000 + i * 10 for i in range(800)]
    tail = [13_000 + i * 500 for i in range(10)]
    assert steady_per_s(start + middle + tail) == 100.0


def test_too_few_results_or_all_at_once_have_no_steady_throughput() -> None:
    assert steady_per_s([0, 10, 20]) is None
    assert steady_per_s([7] * 50) is None


def test_the_steady_latency_leaves_out_the_onset_of_the_load() -> None:
    # 1,000 commands 10 ms apart; the first 50 (the onset) answered after 2 s, the others after 100 ms
    command_ms = {f"T{i}": i * 10 for i in range(1000)}
    result_ms = {t: at + (2_000 if i < 50 else 100) for i, (t, at) in enumerate(command_ms.items())}

    steady = steady_end_to_end_ms(command_ms, result_ms)

    assert steady["p99"] == 100.0
    assert percentiles_ms([float(result_ms[t] - command_ms[t]) for t in command_ms])["p99"] == 2_000.0


def test_too_few_answered_commands_have_no_steady_latency() -> None:
    assert steady_end_to_end_ms({"T1": 0}, {"T1": 5})["p50"] is None
    assert steady_end_to_end_ms({f"T{i}": i for i in range(30)}, {})["p99"] is None
