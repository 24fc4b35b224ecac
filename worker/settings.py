"""The one configuration object. Read once at start (environment, prefix ``ECASH_``), passed down.

Every field is documented in ``docs/settings.md``; a test checks that the two agree.
A bad value stops the worker at start with a message that names the setting (see ``load_settings``).
"""

from __future__ import annotations

import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The sandbox's default agent: the demo and tests run on these without any configuration.
SANDBOX_USERNAME = "agent01"
SANDBOX_API_KEY = "sandbox-api-key-0123456789abcdef0123456789abcdef01234567"  # 56 characters, like the spec
SANDBOX_CREDENTIALS = "sandbox-credentials"


class NotFoundPolicy(StrEnum):
    FAIL = "fail"
    RESUBMIT = "resubmit"


class TransportKind(StrEnum):
    AIOHTTP = "aiohttp"  # scales to hundreds in flight; our own honest exception mapping
    HTTPX = "httpx"  # httpx's default pool: correct, collapses past ~32 in flight


class LogFormat(StrEnum):
    AUTO = "auto"
    JSON = "json"
    TEXT = "text"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ECASH_", extra="ignore", frozen=True)

    # --- Kafka -------------------------------------------------------------------------------
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    group_id: str = "ecash-worker"
    commands_topic: str = "ecash.commands"
    results_topic: str = "ecash.results"
    dlq_topic: str = "ecash.commands.dlq"
    review_topic: str = "ecash.review"
    journal_topic: str = "ecash.journal"
    create_topics: bool = True
    topic_partitions: int = Field(12, ge=1, le=10_000)
    topic_replication_factor: int = Field(1, ge=1, le=16)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_session_timeout_s: float = Field(30.0, gt=0)
    kafka_rebalance_timeout_s: float = Field(60.0, gt=0)
    drain_timeout_s: float = Field(20.0, gt=0)
    commit_interval_s: float = Field(1.0, gt=0)
    command_max_bytes: int = Field(16_384, ge=256)

    # --- Ownership (docs/design.md, "Ownership") ---------------------------------------------
    kafka_group_instance_id: str | None = None  # static membership: a restarted pod keeps its partitions
    send_lease_s: float = Field(5.0, gt=0, le=60)  # a Charge/Credit leaves only this soon after its intent
    bank_visibility_margin_s: float = Field(5.0, ge=0)  # added before an inherited intent is believed lost
    txn_flush_interval_s: float = Field(0.02, gt=0, le=1)  # how long a transaction gathers writes
    txn_max_records: int = Field(500, ge=1, le=100_000)  # flush early at this many records
    activation_timeout_s: float = Field(30.0, gt=0)  # fencing a previous owner (InitProducerId) at most
    restore_attempts: int = Field(5, ge=1, le=100)  # a failing restore is retried, then the worker stops

    # --- Concurrency -------------------------------------------------------------------------
    max_in_flight: int = Field(256, ge=1, le=10_000)
    max_buffered: int = Field(4096, ge=1)

    # --- The E-Cash API ----------------------------------------------------------------------
    api_base_url: str = "http://127.0.0.1:18080/eCashHost"
    api_username: str = SANDBOX_USERNAME
    api_key: SecretStr = SecretStr(SANDBOX_API_KEY)
    api_credentials: SecretStr | None = SecretStr(SANDBOX_CREDENTIALS)
    api_password: SecretStr | None = None
    api_public_key_path: Path | None = None
    api_account_id: str = "6"
    http_transport: TransportKind = TransportKind.AIOHTTP
    request_timeout_s: float = Field(10.0, gt=0)
    connect_timeout_s: float = Field(3.0, gt=0)
    api_rate_limit_per_s: float = Field(0.0, ge=0)  # 0 = no limit
    not_sent_retry_attempts: int = Field(4, ge=1, le=20)
    not_sent_backoff_initial_s: float = Field(0.2, gt=0)
    not_sent_backoff_max_s: float = Field(5.0, gt=0)
    not_sent_deadline_s: float = Field(900.0, gt=0)
    relogin_max: int = Field(2, ge=1, le=10)

    # --- Resolution of ambiguous outcomes ----------------------------------------------------
    resolution_grace_s: float = Field(5.0, ge=0)
    resolution_schedule_s: Annotated[list[float], NoDecode] = [5.0, 10.0, 20.0, 40.0, 60.0]
    resolution_deadline_s: float = Field(900.0, gt=0)
    not_found_codes: Annotated[list[str], NoDecode] = ["PAYMENT_NOT_FOUND", "NO_TRANSACTION"]
    not_found_confirmations: int = Field(2, ge=1, le=10)
    not_found_policy: NotFoundPolicy = NotFoundPolicy.FAIL
    resubmit_max: int = Field(1, ge=0, le=5)

    # --- Circuit breaker ---------------------------------------------------------------------
    breaker_window_s: float = Field(30.0, gt=0)
    breaker_min_calls: int = Field(20, ge=1)
    breaker_failure_ratio: float = Field(0.5, gt=0, le=1)
    breaker_open_s: float = Field(15.0, gt=0)

    # --- Journal -----------------------------------------------------------------------------
    state_dir: Path | None = Path(tempfile.gettempdir()) / "ecash-worker-state"
    journal_retention_s: float = Field(7 * 86_400.0, gt=0)
    dedupe_window_s: float = Field(7 * 86_400.0, gt=0)

    # --- Observability -----------------------------------------------------------------------
    metrics_host: str = "0.0.0.0"
    metrics_port: int = Field(9464, ge=0, le=65_535)
    log_format: LogFormat = LogFormat.AUTO
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    stuck_loop_s: float = Field(30.0, gt=0)

    @field_validator(
        "api_credentials",
        "api_password",
        "api_public_key_path",
        "kafka_sasl_mechanism",
        "kafka_group_instance_id",
        "kafka_sasl_username",
        "kafka_sasl_password",
        "kafka_ssl_cafile",
        "kafka_ssl_certfile",
        "kafka_ssl_keyfile",
        "state_dir",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("resolution_schedule_s", mode="before")
    @classmethod
    def _split_floats(cls, value: object) -> object:
        if isinstance(value, str):
            return [float(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("not_found_codes", mode="before")
    @classmethod
    def _split_codes(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("resolution_schedule_s")
    @classmethod
    def _schedule_positive(cls, value: list[float]) -> list[float]:
        if not value or any(step <= 0 for step in value):
            raise ValueError("must be a non-empty comma-separated list of positive seconds")
        return value

    @field_validator("api_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        if self.api_credentials is None and (self.api_password is None or self.api_public_key_path is None):
            raise ValueError(
                "ECASH_API_CREDENTIALS, or both ECASH_API_PASSWORD and ECASH_API_PUBLIC_KEY_PATH, must be set"
            )
        if self.api_public_key_path is not None and not self.api_public_key_path.is_file():
            raise ValueError(f"ECASH_API_PUBLIC_KEY_PATH: no such file {self.api_public_key_path}")
        if self.drain_timeout_s >= self.kafka_rebalance_timeout_s:
            raise ValueError("ECASH_DRAIN_TIMEOUT_S must be below ECASH_KAFKA_REBALANCE_TIMEOUT_S")
        if self.kafka_security_protocol.startswith("SASL") and self.kafka_sasl_mechanism is None:
            raise ValueError("ECASH_KAFKA_SASL_MECHANISM is required with a SASL security protocol")
        if self.journal_retention_s < self.dedupe_window_s:
            raise ValueError("ECASH_JOURNAL_RETENTION_S must be at least ECASH_DEDUPE_WINDOW_S")
        if self.max_buffered < self.max_in_flight:
            raise ValueError("ECASH_MAX_BUFFERED must be at least ECASH_MAX_IN_FLIGHT")
        return self


class SettingsError(Exception):
    """A bad setting: the message names it (as its environment variable) and says what is wrong."""


def load_settings(**overrides: object) -> Settings:
    """Build the settings, turning pydantic's error into one line per bad setting, by env-var name.

    The offending value is never echoed: a setting may be a secret.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = "ECASH_" + "_".join(str(p) for p in err["loc"][:1]).upper() if err["loc"] else "settings"
            lines.append(f"{name}: {err['msg']}")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None
