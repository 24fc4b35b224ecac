"""``bench.run --worker-src``: another tree's worker gets only the settings the bench sets."""

from __future__ import annotations

from pathlib import Path

from bench.processes import design_env
from bench.scenarios import Context
from bench.topics import Topics


def context(tmp_path: Path, worker_src: Path | None) -> Context:
    return Context(
        bootstrap="127.0.0.1:29092",
        broker_pid=None,
        work_dir=tmp_path,
        max_in_flight=64,
        extra_env={"ECASH_TXN_FLUSH_INTERVAL_S": "0.01"},
        log_level="INFO",
        restore=False,
        profile="none",
        seed=1,
        sample_interval_s=1.0,
        timeout_s=None,
        worker_src=worker_src,
    )


def test_an_older_tree_is_not_handed_settings_it_may_not_know(tmp_path: Path) -> None:
    """A tree from before a setting existed stops at start on an ``ECASH_*`` it does not know (exit 2):
    the comparison would measure nothing. Settings left at their default are not passed to it."""
    topics = Topics("bench-x", 12)
    here = design_env(context(tmp_path, None), topics, "http://127.0.0.1:1/eCashHost", "aiohttp", tmp_path)
    other = design_env(
        context(tmp_path, tmp_path), topics, "http://127.0.0.1:1/eCashHost", "aiohttp", tmp_path
    )
    assert "ECASH_GC_GEN0_THRESHOLD" in here  # this tree: every setting, so nothing is inherited by accident
    assert "ECASH_GC_GEN0_THRESHOLD" not in other
    for name in (
        "ECASH_MAX_IN_FLIGHT",
        "ECASH_API_BASE_URL",
        "ECASH_COMMANDS_TOPIC",
        "ECASH_TXN_FLUSH_INTERVAL_S",
    ):
        assert other[name] == here[name]  # what the bench and its --env set reach both
    assert not any(name.startswith("ECASH_") and name not in here for name in other)
