"""Where tracing's cost with no exporter goes: the bench's processor run (bench.tracing_cost) under
cProfile, untraced and with ``ECASH_OTEL_EXPORTER=none``, and the functions whose profiled time differs
most per command (docs/performance.md, "Tracing").

    python -m bench.tracing_profile [--commands 3000] [--top 15]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys

from bench import tracing_cost


def profile(mode: str, commands: int) -> dict[str, tuple[int, float]]:
    """Calls and own time (s) per function for ``commands`` commands in ``mode``."""
    settings = tracing_cost.bench_settings()
    with tracing_cost.mode(mode):
        asyncio.run(tracing_cost.run_once(settings, 500, 64))  # warm: imports, first login
        profiler = cProfile.Profile()
        profiler.enable()
        asyncio.run(tracing_cost.run_once(settings, commands, 64))
        profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    return {f"{where[0].split('/')[-1]}:{where[1]}:{where[2]}": (v[1], v[2]) for where, v in stats.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--commands", type=int, default=3000, help="commands per profiled run (default 3000)")
    parser.add_argument("--top", type=int, default=15, help="functions to list (default 15)")
    args = parser.parse_args(argv)
    before, after = profile("untraced", args.commands), profile("none", args.commands)
    total = sum(t for _, t in after.values()) - sum(t for _, t in before.values())
    print(f"profiled time added by 'none' over 'untraced': {total * 1e6 / args.commands:+.2f} us per command")
    rows = []
    for name in set(before) | set(after):
        calls_before, time_before = before.get(name, (0, 0.0))
        calls_after, time_after = after.get(name, (0, 0.0))
        rows.append((time_after - time_before, calls_after - calls_before, name))
    for added_s, calls, name in sorted(rows, key=lambda row: -abs(row[0]))[: args.top]:
        print(f"  {added_s * 1e6 / args.commands:+8.2f} us/command  calls {calls:+7d}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
