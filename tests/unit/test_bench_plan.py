"""The benchmark campaign's plan and its memory verdict, without running anything (bench/suite.py,
bench/rss_picture.py)."""

from __future__ import annotations

import pytest

from bench.rss_picture import flat_band
from bench.suite import parse_args, part_argv


def test_paced_latency_is_measured_at_half_and_nine_tenths_of_the_measured_capacity() -> None:
    parts = part_argv("latency", parse_args([]), capacity_per_s=740.0)
    assert [p.name for p in parts] == ["latency-50", "latency-90"]
    rates = [p.argv[p.argv.index("--rate") + 1] for p in parts]
    assert rates == ["370", "666"]
    assert all(p.argv[p.argv.index("--scenario") + 1] == "paced-50ms" for p in parts)


@pytest.mark.parametrize("part", ["latency", "floor"])
def test_a_part_paced_from_the_capacity_without_one_says_how_to_get_one(part: str) -> None:
    with pytest.raises(
        SystemExit, match=rf"the {part} part needs a capacity \(run shares first, or --capacity\)"
    ):
        part_argv(part, parse_args([]), capacity_per_s=None)


def test_the_floor_runs_every_leg_at_full_speed_then_all_of_it_paced_at_half_the_capacity() -> None:
    full, paced = part_argv("floor", parse_args(["--commands", "3000"]), capacity_per_s=740.0)
    assert (full.module, paced.module) == ("bench.promise_floor", "bench.promise_floor")
    assert [full.name, paced.name] == ["floor", "floor-50"]
    assert "--leg" not in full.argv  # every leg
    assert "--rate" not in full.argv  # as fast as it goes
    assert paced.argv[paced.argv.index("--leg") + 1] == "floor"
    assert paced.argv[paced.argv.index("--rate") + 1] == "370"
    assert paced.argv[paced.argv.index("--latency-ms") + 1] == "50"
    assert (
        full.argv[full.argv.index("--commands") + 1]
        == paced.argv[paced.argv.index("--commands") + 1]
        == "3000"
    )


def test_scale_out_runs_one_then_two_processes_at_the_same_in_flight_each() -> None:
    one, two = part_argv("scale-out", parse_args(["--commands", "100000"]), None)
    for part, replicas in ((one, "1"), (two, "2")):
        assert part.argv[part.argv.index("--replicas") + 1] == replicas
        assert part.argv[part.argv.index("--max-in-flight") + 1] == "8"
        assert part.argv[part.argv.index("--commands") + 1] == "100000"


def test_the_soak_keeps_its_million_unless_told_and_ignores_the_campaign_size() -> None:
    (soak,) = part_argv("soak", parse_args(["--commands", "200"]), None)
    assert "--commands" not in soak.argv
    assert soak.argv[soak.argv.index("--profile") + 1] == "memory"  # where the RSS sits, every 5 s
    (small,) = part_argv("soak", parse_args(["--commands", "200", "--soak-commands", "600"]), None)
    assert small.argv[small.argv.index("--commands") + 1] == "600"


def test_every_mechanism_has_its_what_if_in_the_shares() -> None:
    (shares,) = part_argv("shares", parse_args([]), None)
    designs = [shares.argv[i + 1] for i, arg in enumerate(shares.argv) if arg == "--design"]
    assert designs == ["worker", "worker-notxn", "worker-nojournal", "worker-noclaims", "worker-notracing"]


def test_flat_means_the_second_half_within_ten_percent_of_its_median() -> None:
    warming_then_flat = [40.0, 80.0, 120.0, 130.0, 131.0, 129.0, 130.0, 132.0]
    middle, low, high = flat_band(warming_then_flat)
    assert middle == 130.5
    assert (low, high) == pytest.approx((117.45, 143.55))
