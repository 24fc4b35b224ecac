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
