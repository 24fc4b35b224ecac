"""Settings: documented, validated at start, and the message names the bad setting without its value."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.settings import (
    SANDBOX_API_IDENTITY,
    TOOLING_VARIABLES,
    Settings,
    SettingsError,
    load_settings,
    load_settings_without_api,
)

DOCS = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text()


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    assert f"`ECASH_{name.upper()}`" in DOCS


def test_defaults_run_against_the_local_stack_given_the_sandbox_identity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"ECASH_{name.upper()}", raising=False)
    settings = load_settings(**SANDBOX_API_IDENTITY)
    assert settings.kafka_bootstrap_servers == "127.0.0.1:19092"
    assert settings.api_base_url.endswith("/eCashHost")


def test_the_api_identity_has_no_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"ECASH_{name.upper()}", raising=False)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert info.value.lines == [
        "ECASH_API_USERNAME: not set (there is no default)",
        "ECASH_API_KEY: not set (there is no default)",
    ]
    monkeypatch.setenv("ECASH_API_USERNAME", "agent01")
    monkeypatch.setenv("ECASH_API_KEY", "k" * 56)
    with pytest.raises(SettingsError, match=r"^ECASH_API_CREDENTIALS: not set"):
        load_settings()
    monkeypatch.setenv("ECASH_API_KEY", "")
    with pytest.raises(SettingsError, match=r"^ECASH_API_KEY: must not be empty"):
        load_settings(api_credentials="c")


def test_commands_that_only_talk_to_kafka_do_not_ask_for_the_api_identity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in SANDBOX_API_IDENTITY:
        monkeypatch.delenv(f"ECASH_{name.upper()}")
    monkeypatch.setenv("ECASH_KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    assert load_settings_without_api().kafka_bootstrap_servers == "kafka:9092"
    monkeypatch.setenv("ECASH_MAX_INFLIGHT", "1")
    with pytest.raises(SettingsError, match="did you mean ECASH_MAX_IN_FLIGHT"):
        load_settings_without_api()


def test_an_unknown_variable_is_named_with_the_setting_it_resembles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECASH_MAX_INFLIGHT", "0")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert info.value.lines == ["ECASH_MAX_INFLIGHT: not a setting (did you mean ECASH_MAX_IN_FLIGHT?)"]
    assert "0" not in str(info.value).replace("ECASH_", "")


def test_the_tooling_variables_are_not_settings_but_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TOOLING_VARIABLES:
        monkeypatch.setenv(name, "x")
    load_settings()
    assert not {name.removeprefix("ECASH_").lower() for name in TOOLING_VARIABLES} & set(
        Settings.model_fields
    )


@pytest.mark.parametrize(
    ("values", "line"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "ECASH_KAFKA_SASL_MECHANISM: required with"),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "PLAIN"},
            "ECASH_KAFKA_SASL_USERNAME: required with",
        ),
        (
            {
                "kafka_security_protocol": "SASL_PLAINTEXT",
                "kafka_sasl_mechanism": "PLAIN",
                "kafka_sasl_username": "u",
            },
            "ECASH_KAFKA_SASL_PASSWORD: required with",
        ),
        ({"kafka_sasl_username": "u"}, "ECASH_KAFKA_SASL_USERNAME: set, but not used with"),
        ({"journal_topic": "ecash.commands"}, "ECASH_JOURNAL_TOPIC: the same topic as ECASH_COMMANDS_TOPIC"),
        ({"kafka_ssl_cafile": "/ca.pem"}, "ECASH_KAFKA_SSL_CAFILE: set, but not used with"),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": "/k.pem"},
            "ECASH_KAFKA_SSL_KEYFILE: set without ECASH_KAFKA_SSL_CERTFILE",
        ),
    ],
)
def test_kafka_security_settings_must_go_together(values: dict[str, str], line: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(**values)
    assert len(info.value.lines) == 1
    assert info.value.lines[0].startswith(line)


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("ECASH_MAX_IN_FLIGHT", "0", "ECASH_MAX_IN_FLIGHT"),
        ("ECASH_REQUEST_TIMEOUT_S", "soon", "ECASH_REQUEST_TIMEOUT_S"),
        ("ECASH_API_BASE_URL", "ftp://bank", "ECASH_API_BASE_URL"),
        ("ECASH_RESOLUTION_SCHEDULE_S", "5,-1", "ECASH_RESOLUTION_SCHEDULE_S"),
        ("ECASH_NOT_FOUND_POLICY", "maybe", "ECASH_NOT_FOUND_POLICY"),
        ("ECASH_DRAIN_TIMEOUT_S", "90", "ECASH_DRAIN_TIMEOUT_S"),
    ],
)
def test_a_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError, match=named):
        load_settings()


def test_the_secret_value_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECASH_API_CREDENTIALS", "")
    monkeypatch.setenv("ECASH_API_PASSWORD", "hunter2-very-secret")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "hunter2" not in str(info.value)
    assert str(info.value).startswith("ECASH_API_CREDENTIALS: not set")


def test_secrets_stay_out_of_reprs() -> None:
    settings = load_settings(api_key="k" * 56, api_credentials="opaque-secret-credential")
    assert "k" * 56 not in repr(settings)
    assert "opaque-secret-credential" not in repr(settings) + str(settings.model_dump())


def test_lists_come_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECASH_RESOLUTION_SCHEDULE_S", "1,2.5,3")
    monkeypatch.setenv("ECASH_NOT_FOUND_CODES", "PAYMENT_NOT_FOUND, FROM_NOT_FOUND")
    settings = load_settings()
    assert settings.resolution_schedule_s == [1.0, 2.5, 3.0]
    assert settings.not_found_codes == ["PAYMENT_NOT_FOUND", "FROM_NOT_FOUND"]
