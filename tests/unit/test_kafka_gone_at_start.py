"""A broker that goes away between the start-up check of the topics and a client's own start: one line that
names the setting and exit 3, as when Kafka does not answer at all, never a traceback (worker/service.py).

Seen in the chaos run: a worker restarted while the broker was crashed passed the check (the broker was
back for it) and then found none when the claims index's consumer bootstrapped."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from worker import service
from worker.settings import load_settings


class _WorkerWhoseClientsFindNoBroker:
    pipeline_started = False
    topics_prepared = False

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    async def run(self) -> int:
        raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 48471)]")


pytestmark = pytest.mark.usefixtures("restore_root_logger")  # run_worker sets up the worker's logging


async def test_kafka_gone_after_the_check_is_one_line_naming_the_setting_and_exit_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def topics_fine(*_args: Any, **_kwargs: Any) -> None:
        return None

    monkeypatch.setattr(service, "prepare_topics", topics_fine)
    monkeypatch.setattr(service, "Worker", _WorkerWhoseClientsFindNoBroker)
    monkeypatch.setattr(service, "freeze_start_up", lambda: None)
    code = await service.run_worker(load_settings(kafka_bootstrap_servers="kafka-0:9092", log_format="text"))
    assert code == 3
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("ecash-worker: ECASH_KAFKA_BOOTSTRAP_SERVERS: Kafka at kafka-0:9092 stopped")
    assert "Traceback" not in "\n".join(lines)
