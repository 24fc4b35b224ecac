"""The record ``ecash-worker kafka start`` leaves, so ``status``/``stop`` find the broker by port alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecash_dev.kafka.jvm import LocalKafka
from ecash_dev.kafka.selection import local_broker
from ecash_dev.kafka.state import (
    STATE_DIR_ENV,
    StartedBroker,
    forget_started,
    read_started,
    record_started,
    state_dir,
    state_file,
)


def test_the_state_dir_is_the_override_else_the_runtime_dir_else_a_per_user_temp_dir(tmp_path: Path) -> None:
    assert state_dir({STATE_DIR_ENV: str(tmp_path)}) == tmp_path
    assert state_dir({"XDG_RUNTIME_DIR": "/run/user/1000"}) == Path("/run/user/1000/ecash-worker")
    assert state_dir({}).name.startswith("ecash-worker-")
    assert state_file({STATE_DIR_ENV: str(tmp_path)}, 19092) == tmp_path / "kafka-19092.json"


def test_a_record_reads_back_and_is_forgotten(tmp_path: Path) -> None:
    env = {STATE_DIR_ENV: str(tmp_path / "state")}
    started = StartedBroker(4242, 19092, 19093, tmp_path / "data", tmp_path / "cache")
    path = record_started(env, started)
    assert path == tmp_path / "state" / "kafka-19092.json"
    assert read_started(env, 19092) == started
    assert read_started(env, 19094) is None
    forget_started(env, 19092)
    assert read_started(env, 19092) is None
    forget_started(env, 19092)  # twice is fine


@pytest.mark.parametrize("body", ["", "{", "[]", '{"pid": 1}', '{"pid": "x", "port": 1}'])
def test_a_garbled_record_is_no_record(tmp_path: Path, body: str) -> None:
    env = {STATE_DIR_ENV: str(tmp_path)}
    (tmp_path / "kafka-19092.json").write_text(body, encoding="utf-8")
    assert read_started(env, 19092) is None


def test_a_record_for_another_port_in_the_file_is_ignored(tmp_path: Path) -> None:
    env = {STATE_DIR_ENV: str(tmp_path)}
    record_started(env, StartedBroker(1, 19094, 19095, tmp_path / "d", tmp_path / "c"))
    (tmp_path / "kafka-19094.json").rename(tmp_path / "kafka-19092.json")
    assert read_started(env, 19092) is None


def test_local_broker_without_a_data_dir_uses_the_recorded_one(tmp_path: Path) -> None:
    env = {
        STATE_DIR_ENV: str(tmp_path / "state"),
        "ECASH_DEVKAFKA_CACHE_DIR": str(tmp_path / "default-cache"),
    }
    record_started(env, StartedBroker(1, 29092, 29100, tmp_path / "mine", tmp_path / "my-cache"))
    broker = local_broker(env, runtime="jvm", port=29092)
    assert isinstance(broker, LocalKafka)
    assert broker.config.data_dir == tmp_path / "mine"
    assert broker.config.cache_dir == tmp_path / "my-cache"
    assert broker.config.effective_controller_port == 29100
    explicit = local_broker(env, runtime="jvm", port=29092, data_dir=tmp_path / "other")
    assert isinstance(explicit, LocalKafka)
    assert explicit.config.data_dir == tmp_path / "other"  # --data-dir still wins
    unrecorded = local_broker(env, runtime="jvm", port=29094)
    assert isinstance(unrecorded, LocalKafka)
    assert unrecorded.config.data_dir == tmp_path / "default-cache" / "kafka-data-29094"
