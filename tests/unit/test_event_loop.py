"""``ECASH_EVENT_LOOP`` chooses the loop the whole worker runs in (worker/service.py, ``run``)."""

from __future__ import annotations

import asyncio

import pytest

from worker import service
from worker.settings import SettingsError, load_settings


@pytest.mark.parametrize(("kind", "loop_module"), [("asyncio", "asyncio"), ("uvloop", "uvloop")])
def test_the_worker_runs_in_the_chosen_loop(
    kind: str, loop_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    async def fake_worker(_settings: object) -> int:
        seen.append(type(asyncio.get_running_loop()).__module__.split(".")[0])
        return 7

    monkeypatch.setattr(service, "run_worker", fake_worker)
    assert service.run(load_settings(event_loop=kind)) == 7  # the worker's exit code, unchanged
    assert seen == [loop_module]


def test_an_unknown_loop_is_a_setting_error_naming_the_setting() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(event_loop="trio")
    assert any(line.startswith("ECASH_EVENT_LOOP:") for line in caught.value.lines)


def test_the_worker_runs_with_the_young_generation_collected_less_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``ECASH_GC_GEN0_THRESHOLD`` reaches the collector before the worker starts (worker/gc_policy.py);
    the older generations keep CPython's ratios."""
    import gc

    seen: list[tuple[int, int, int]] = []

    async def fake_worker(_settings: object) -> int:
        seen.append(gc.get_threshold())
        return 0

    before = gc.get_threshold()
    monkeypatch.setattr(service, "run_worker", fake_worker)
    try:
        service.run(load_settings(event_loop="asyncio", gc_gen0_threshold=40_000))
        service.run(load_settings(event_loop="asyncio"))
    finally:
        gc.set_threshold(*before)
    assert seen == [(40_000, 10, 10), (5_000, 10, 10)]


@pytest.mark.parametrize("value", ["0", "699", "1000001", "many"])
def test_a_collector_threshold_out_of_range_is_a_setting_error_naming_it(value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(gc_gen0_threshold=value)
    assert any(line.startswith("ECASH_GC_GEN0_THRESHOLD:") for line in caught.value.lines)


def test_what_start_up_built_is_frozen_out_of_the_collectors_sight() -> None:
    import gc

    from worker.gc_policy import freeze_start_up

    built_at_start_up = [{"client": object()}]
    gc.collect()
    before = gc.get_freeze_count()
    try:
        freeze_start_up()
        assert gc.get_freeze_count() > before
        assert gc.is_tracked(built_at_start_up)
        assert all(seen is not built_at_start_up for seen in gc.get_objects())  # no pass walks it
    finally:
        gc.unfreeze()
