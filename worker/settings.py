"""The one configuration object. Read once at start (environment, prefix ``ECASH_``), passed down.

Every field is documented in ``docs/settings.md``; a test checks that the two agree.
A bad value stops the worker at start with a message that names the setting (see ``load_settings``), and
so does an ``ECASH_*`` variable that is no setting (a typo would otherwise be ignored).

The API's identity (username, key, credentials) has no default: a worker pointed at the real bank without
them must stop at start, not at its first login. The sandbox's values are ``SANDBOX_API_IDENTITY``, which
the sandbox, the demo, the chaos run, the bench and the tests pass explicitly.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = [
    "ENV_PREFIX",
    "SANDBOX_API_IDENTITY",
    "SANDBOX_API_KEY",
    "SANDBOX_CREDENTIALS",
    "SANDBOX_USERNAME",
    "TOOLING_VARIABLES",
    "LogFormat",
    "NotFoundPolicy",
    "Settings",
    "SettingsError",
    "TransportKind",
    "load_settings",
    "load_settings_without_api",
    "masked_url",
    "proxy_url_problem",
    "unknown_variables",
]

# The sandbox's default agent: the demo and tests run on these without any configuration.
SANDBOX_USERNAME = "agent01"
SANDBOX_API_KEY = "sandbox-api-key-0123456789abcdef0123456789abcdef01234567"  # 56 characters, like the spec
SANDBOX_CREDENTIALS = "sandbox-credentials"
# As field values: ``load_settings(**SANDBOX_API_IDENTITY, ...)`` for a worker against the sandbox.
SANDBOX_API_IDENTITY: dict[str, str] = {
    "api_username": SANDBOX_USERNAME,
    "api_key": SANDBOX_API_KEY,
    "api_credentials": SANDBOX_CREDENTIALS,
}

ENV_PREFIX = "ECASH_"
# ``ECASH_*`` variables that are not worker settings but are read by the project's own tooling, so they
# may be set in the same environment: the test suite's external broker and the local broker's jar cache.
TOOLING_VARIABLES = frozenset({"ECASH_TEST_KAFKA_BOOTSTRAP", "ECASH_DEVKAFKA_CACHE_DIR"})


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
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    # --- Kafka -------------------------------------------------------------------------------
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    group_id: str = "ecash-worker"
    commands_topic: str = "ecash.commands"
    results_topic: str = "ecash.results"
    dlq_topic: str = "ecash.commands.dlq"
    review_topic: str = "ecash.review"
    journal_topic: str = "ecash.journal"
    claims_topic: str = "ecash.claims"
    review_decisions_topic: str = "ecash.review.decisions"
    create_topics: bool = True
    topic_partitions: int = Field(12, ge=1, le=10_000)
    topic_replication_factor: int = Field(1, ge=1, le=16)
    allow_replication_factor_one: bool = False
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    kafka_oauth_token_file: Path | None = None  # OAUTHBEARER: a token file, re-read for every token
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_start_timeout_s: float = Field(60.0, gt=0)
    kafka_session_timeout_s: float = Field(30.0, gt=0)
    kafka_rebalance_timeout_s: float = Field(60.0, gt=0)
    kafka_metadata_max_age_s: float = Field(60.0, ge=1)
    drain_timeout_s: float = Field(20.0, gt=0)
    commit_interval_s: float = Field(0.2, gt=0, le=60)  # how often offsets join a transaction (ownership.py)
    command_max_bytes: int = Field(16_384, ge=256)
    # plain: JSON; confluent: Confluent Schema Registry wire format (0x00 + 4-byte schema id + JSON, the id
    # not looked up); auto: either, message by message (worker/pipeline/intake.py, unframe)
    commands_framing: Literal["plain", "confluent", "auto"] = "plain"

    # --- Ownership (docs/design.md, "Ownership") ---------------------------------------------
    kafka_group_instance_id: str | None = None  # static membership: a restarted pod keeps its partitions
    send_lease_s: float = Field(5.0, gt=0, le=60)  # a Charge/Credit leaves only this soon after its intent
    bank_visibility_margin_s: float = Field(5.0, ge=0)  # added before an inherited intent is believed lost
    # how long a transaction gathers writes, from its first (a linger: under load the commit before it is)
    txn_flush_interval_s: float = Field(0.005, gt=0, le=1)
    txn_max_records: int = Field(500, ge=1, le=100_000)  # flush early at this many records
    activation_timeout_s: float = Field(30.0, gt=0)  # fencing a previous owner (InitProducerId) at most
    restore_attempts: int = Field(5, ge=1, le=100)  # a failing restore is retried, then the worker stops

    # --- Concurrency -------------------------------------------------------------------------
    max_in_flight: int = Field(256, ge=1, le=10_000)
    max_buffered: int = Field(4096, ge=1)
    event_loop: Literal["asyncio", "uvloop"] = "uvloop"  # the same asyncio code on libuv (or asyncio's own)
    # net allocations between two young passes of Python's cycle collector (CPython: 700; worker/gc_policy.py)
    gc_gen0_threshold: int = Field(5_000, ge=700, le=1_000_000)

    # --- The E-Cash API ----------------------------------------------------------------------
    api_base_url: str = "http://127.0.0.1:18080/eCashHost"
    api_username: str  # no default: see the module's docstring
    api_key: SecretStr
    api_credentials: SecretStr | None = None
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
    # The network path to the API (docs/settings.md): an explicit proxy only (the standard *_PROXY
    # variables are ignored: trust_env stays off), a CA bundle added to the system's, an mTLS client pair.
    api_proxy_url: SecretStr | None = None  # may carry the proxy's user and password
    api_ca_file: Path | None = None
    api_client_cert_file: Path | None = None
    api_client_key_file: Path | None = None

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
    # spans are always made (their ids are in the logs); otlp sends them (extra `otel`; OTEL_EXPORTER_OTLP_*)
    otel_exporter: Literal["none", "otlp"] = "none"

    @field_validator(
        "api_credentials",
        "api_password",
        "api_public_key_path",
        "kafka_sasl_mechanism",
        "kafka_oauth_token_file",
        "kafka_group_instance_id",
        "kafka_sasl_username",
        "kafka_sasl_password",
        "kafka_ssl_cafile",
        "kafka_ssl_certfile",
        "kafka_ssl_keyfile",
        "state_dir",
        "api_proxy_url",
        "api_ca_file",
        "api_client_cert_file",
        "api_client_key_file",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("api_username", "api_key", mode="before")
    @classmethod
    def _required_not_empty(cls, value: object) -> object:
        if value == "" or (isinstance(value, SecretStr) and not value.get_secret_value()):
            raise ValueError("must not be empty (there is no default)")
        return value

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

    @field_validator("api_proxy_url")
    @classmethod
    def _proxy_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            problem = proxy_url_problem(value.get_secret_value())
            if problem is not None:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        problem = self._incoherence()
        if problem is not None:
            raise ValueError(problem)
        return self

    def _incoherence(self) -> str | None:
        """The first pair of settings that do not go together, as ``ECASH_X: what is wrong``."""
        if self.api_credentials is None and (self.api_password is None or self.api_public_key_path is None):
            return (
                "ECASH_API_CREDENTIALS: not set (there is no default); set it, "
                "or both ECASH_API_PASSWORD and ECASH_API_PUBLIC_KEY_PATH"
            )
        if self.api_public_key_path is not None and not self.api_public_key_path.is_file():
            return f"ECASH_API_PUBLIC_KEY_PATH: no such file {self.api_public_key_path}"
        kafka = self._kafka_security_incoherence()
        if kafka is not None:
            return kafka
        api_tls = self._api_tls_incoherence()
        if api_tls is not None:
            return api_tls
        seen: dict[str, str] = {}
        for name, topic in self._topics_by_setting().items():
            if topic in seen:
                return f"{name}: the same topic as {seen[topic]} ({topic}); every topic must be its own"
            seen[topic] = name
        if self.drain_timeout_s >= self.kafka_rebalance_timeout_s:
            return "ECASH_DRAIN_TIMEOUT_S: must be below ECASH_KAFKA_REBALANCE_TIMEOUT_S"
        if self.journal_retention_s < self.dedupe_window_s:
            return "ECASH_JOURNAL_RETENTION_S: must be at least ECASH_DEDUPE_WINDOW_S"
        if self.max_buffered < self.max_in_flight:
            return "ECASH_MAX_BUFFERED: must be at least ECASH_MAX_IN_FLIGHT"
        return None

    def _api_tls_incoherence(self) -> str | None:
        cert, key = self.api_client_cert_file, self.api_client_key_file
        if cert is not None and key is None:
            return "ECASH_API_CLIENT_CERT_FILE: set without ECASH_API_CLIENT_KEY_FILE (mutual TLS needs both)"
        if key is not None and cert is None:
            return "ECASH_API_CLIENT_KEY_FILE: set without ECASH_API_CLIENT_CERT_FILE (mutual TLS needs both)"
        https_api = self.api_base_url.startswith("https://")
        if cert is not None and not https_api:
            return (
                "ECASH_API_CLIENT_CERT_FILE: set, but not used with an http:// ECASH_API_BASE_URL "
                "(use https://, or unset it)"
            )
        proxy = self.api_proxy_url
        https_proxy = proxy is not None and proxy.get_secret_value().startswith("https://")
        if self.api_ca_file is not None and not (https_api or https_proxy):
            return (
                "ECASH_API_CA_FILE: set, but not used: neither ECASH_API_BASE_URL nor ECASH_API_PROXY_URL "
                "is https:// (use https://, or unset it)"
            )
        return None

    def _topics_by_setting(self) -> dict[str, str]:
        return {
            "ECASH_COMMANDS_TOPIC": self.commands_topic,
            "ECASH_RESULTS_TOPIC": self.results_topic,
            "ECASH_DLQ_TOPIC": self.dlq_topic,
            "ECASH_REVIEW_TOPIC": self.review_topic,
            "ECASH_JOURNAL_TOPIC": self.journal_topic,
            "ECASH_CLAIMS_TOPIC": self.claims_topic,
            "ECASH_REVIEW_DECISIONS_TOPIC": self.review_decisions_topic,
        }

    def topic_names(self) -> list[str]:
        """Every topic the worker reads or writes, as configured."""
        return list(self._topics_by_setting().values())

    def _kafka_security_incoherence(self) -> str | None:  # noqa: C901 - every incoherent pair of Kafka security settings, in the order they are reported
        protocol = self.kafka_security_protocol
        uses = f"with ECASH_KAFKA_SECURITY_PROTOCOL={protocol}"
        oauth = self.kafka_sasl_mechanism == "OAUTHBEARER"
        sasl: dict[str, object] = {"ECASH_KAFKA_SASL_MECHANISM": self.kafka_sasl_mechanism}
        if oauth:
            sasl["ECASH_KAFKA_OAUTH_TOKEN_FILE"] = self.kafka_oauth_token_file
            for name, given in (
                ("ECASH_KAFKA_SASL_USERNAME", self.kafka_sasl_username),
                ("ECASH_KAFKA_SASL_PASSWORD", self.kafka_sasl_password),
            ):
                if given is not None:
                    return f"{name}: set, but not used with ECASH_KAFKA_SASL_MECHANISM=OAUTHBEARER (unset it)"
        else:
            sasl["ECASH_KAFKA_SASL_USERNAME"] = self.kafka_sasl_username
            sasl["ECASH_KAFKA_SASL_PASSWORD"] = self.kafka_sasl_password
            if self.kafka_oauth_token_file is not None:
                return (
                    "ECASH_KAFKA_OAUTH_TOKEN_FILE: set, but not used without "
                    "ECASH_KAFKA_SASL_MECHANISM=OAUTHBEARER (set it, or unset the file)"
                )
        tls: dict[str, object] = {
            "ECASH_KAFKA_SSL_CAFILE": self.kafka_ssl_cafile,
            "ECASH_KAFKA_SSL_CERTFILE": self.kafka_ssl_certfile,
            "ECASH_KAFKA_SSL_KEYFILE": self.kafka_ssl_keyfile,
        }
        for name, value in sasl.items():
            if protocol.startswith("SASL") and value is None:
                return f"{name}: required {uses}"
            if not protocol.startswith("SASL") and value is not None:
                return f"{name}: set, but not used {uses} (use SASL_SSL or SASL_PLAINTEXT, or unset it)"
        for name, value in tls.items():
            if protocol not in ("SSL", "SASL_SSL") and value is not None:
                return f"{name}: set, but not used {uses} (use SSL or SASL_SSL, or unset it)"
        if self.kafka_ssl_keyfile is not None and self.kafka_ssl_certfile is None:
            return "ECASH_KAFKA_SSL_KEYFILE: set without ECASH_KAFKA_SSL_CERTFILE (mutual TLS needs both)"
        return None


def proxy_url_problem(url: str) -> str | None:
    """What is wrong with a proxy URL, without echoing it (it may carry a password), or None."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number or out of range
    except ValueError:
        return "not a URL (expected http://[user:password@]host:port)"
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https:// (an HTTP proxy; SOCKS is not supported)"
    if not parts.hostname:
        return "has no host (expected http://[user:password@]host:port)"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "must be scheme://host:port only, without a path (expected http://[user:password@]host:port)"
    return None


def masked_url(url: str) -> str:
    """``url`` with the password of its user-info replaced by ``***`` (for logs and error messages)."""
    try:
        parts = urlsplit(url)
        if parts.password is None and parts.username is None:
            return url
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        netloc = f"{parts.username}:***@{host}" if parts.password is not None else f"{parts.username}@{host}"
        if parts.port is not None:
            netloc += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<a URL that does not parse>"


class SettingsError(Exception):
    """Bad settings: one line per problem, each ``ECASH_X: what is wrong`` (never the value)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """``ECASH_*`` variables that are neither a setting nor the tooling's, each with a "did you mean"."""
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    lines = []
    for variable in sorted(environ):
        upper = variable.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known or upper in TOOLING_VARIABLES:
            continue
        close = difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else " (see docs/settings.md)"
        lines.append(f"{variable}: not a setting{hint}")
    return lines


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment (and ``overrides``, field names), or raise
    ``SettingsError`` with one line per bad setting, named by its environment variable.

    An ``ECASH_*`` variable that is no setting is an error too (``TOOLING_VARIABLES`` aside). The
    offending value is never echoed: a setting may be a secret.
    """
    lines = unknown_variables(os.environ)
    if lines:
        raise SettingsError(lines)
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError([_error_line(err) for err in exc.errors()]) from None


def load_settings_without_api(**overrides: object) -> Settings:
    """``load_settings`` for a command that never calls the API (``send``, ``review``, ``kafka``): the API
    identity that ``run`` requires is not asked for; a placeholder stands in for each one unset (it logs
    in nowhere: these commands build no API client)."""
    unused = {
        name: "unused-by-this-command"
        for name in SANDBOX_API_IDENTITY
        if name not in overrides and not os.environ.get(ENV_PREFIX + name.upper())
    }
    return load_settings(**unused, **overrides)


def _error_line(err: Any) -> str:
    message = str(err["msg"]).removeprefix("Value error, ")
    if not err["loc"]:  # a model-level check: its message names the setting already
        return message
    name = ENV_PREFIX + str(err["loc"][0]).upper()
    if err["type"] == "missing":
        message = "not set (there is no default)"
    return f"{name}: {message}"
