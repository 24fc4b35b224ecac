"""A worker process started with ``settings_env(settings)`` reads exactly those settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from ecash_dev.stack import child_environ, settings_env
from worker.settings import Settings, SettingsError, load_settings


def test_the_environment_round_trips_to_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(
        kafka_bootstrap_servers="127.0.0.1:1",
        resolution_schedule_s=[0.5, 1.5],
        api_credentials=None,
        api_password=SecretStr("pw"),
        api_public_key_path=Path(__file__),
        create_topics=False,
        state_dir=None,
    )
    env = settings_env(settings)
    for name in Settings.model_fields:
        monkeypatch.delenv(f"ECASH_{name.upper()}", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert load_settings() == settings


def test_a_mapping_is_validated_in_the_parent() -> None:
    assert settings_env({"max_in_flight": 7})["ECASH_MAX_IN_FLIGHT"] == "7"
    with pytest.raises(SettingsError, match="ECASH_MAX_IN_FLIGHT"):
        settings_env({"max_in_flight": 0})


def test_the_child_inherits_no_ecash_variable_of_the_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECASH_KAFKA_SASL_PASSWORD", "parent-secret")
    monkeypatch.setenv("SOME_OTHER", "kept")
    env = child_environ({"ECASH_GROUP_ID": "g"})
    assert env["ECASH_GROUP_ID"] == "g"
    assert "ECASH_KAFKA_SASL_PASSWORD" not in env
    assert env["SOME_OTHER"] == "kept"
