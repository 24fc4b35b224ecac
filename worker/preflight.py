"""Start-up checks that need no network: files, directories and ports the settings name.

``ecash-worker run`` and ``ecash-worker check --config`` run them after the settings load and before
anything touches Kafka or the API. Each problem is one line ``ECASH_X: what is wrong`` naming the path or
port (never a secret), raised as ``SettingsError``. Kafka's side (reachability, authentication, topics)
is checked by ``worker.kafka.topics`` once the worker starts.
"""

from __future__ import annotations

import os
import socket
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path

from worker.settings import Settings, SettingsError

__all__ = [
    "CHECKS",
    "Check",
    "check_api_public_key",
    "check_api_tls",
    "check_kafka_oauth_token",
    "check_kafka_tls",
    "check_metrics_port",
    "check_otel_exporter",
    "check_state_dir",
    "preflight",
]

Check = Callable[[Settings], str | None]


def preflight(settings: Settings, *, bind_ports: bool = True) -> None:
    """Raise ``SettingsError`` with one line per problem found, or return. ``bind_ports=False`` leaves
    out whether ``ECASH_METRICS_PORT`` is free (``check --config`` beside a running worker)."""
    checks = CHECKS if bind_ports else tuple(c for c in CHECKS if c is not check_metrics_port)
    lines = [line for check in checks if (line := check(settings)) is not None]
    if lines:
        raise SettingsError(lines)


def _unreadable(variable: str, path: Path) -> str | None:
    if not path.exists():
        return f"{variable}: no such file {path}"
    if not path.is_file():
        return f"{variable}: {path} is not a file"
    if not os.access(path, os.R_OK):
        return f"{variable}: {path} is not readable by this process (uid {os.getuid()})"
    return None


def _ssl_reason(exc: ssl.SSLError | ValueError) -> str:
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
    return str(reason).strip() or type(exc).__name__


def check_kafka_tls(settings: Settings) -> str | None:
    """The CA bundle and the client certificate and key exist, are readable and load as TLS material."""
    return _tls_problem(
        ("ECASH_KAFKA_SSL_CAFILE", settings.kafka_ssl_cafile),
        ("ECASH_KAFKA_SSL_CERTFILE", settings.kafka_ssl_certfile),
        ("ECASH_KAFKA_SSL_KEYFILE", settings.kafka_ssl_keyfile),
    )


def check_api_tls(settings: Settings) -> str | None:
    """``ECASH_API_CA_FILE`` and the mTLS client certificate and key exist, are readable and load (the
    settings already refuse a certificate without its key, or a key without its certificate)."""
    return _tls_problem(
        ("ECASH_API_CA_FILE", settings.api_ca_file),
        ("ECASH_API_CLIENT_CERT_FILE", settings.api_client_cert_file),
        ("ECASH_API_CLIENT_KEY_FILE", settings.api_client_key_file),
    )


def _tls_problem(
    ca: tuple[str, Path | None], cert: tuple[str, Path | None], key: tuple[str, Path | None]
) -> str | None:
    """Each file (setting name, path) readable, the CA bundle loadable, the certificate loadable with
    its key (or alone, when it carries its key); None when all is well."""
    for variable, path in (ca, cert, key):
        if path is not None and (problem := _unreadable(variable, path)) is not None:
            return problem
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    (ca_name, ca_path), (cert_name, cert_path), (key_name, key_path) = ca, cert, key
    if ca_path is not None:
        try:
            context.load_verify_locations(cafile=str(ca_path))
        except (ssl.SSLError, ValueError) as exc:
            return f"{ca_name}: {ca_path} holds no usable CA certificate ({_ssl_reason(exc)})"
    if cert_path is None:
        return None
    try:
        context.load_cert_chain(str(cert_path), str(key_path) if key_path is not None else None)
    except (ssl.SSLError, ValueError) as exc:
        if key_path is None:
            return (
                f"{cert_name}: {cert_path} does not load without {key_name} "
                f"(a certificate without its private key?) ({_ssl_reason(exc)})"
            )
        return (
            f"{cert_name}: {cert_path} and {key_name} {key_path} do not load as a "
            f"certificate and its private key ({_ssl_reason(exc)})"
        )
    return None


def check_kafka_oauth_token(settings: Settings) -> str | None:
    """The OAUTHBEARER token file is there and not empty now (it is read again for every token)."""
    path = settings.kafka_oauth_token_file
    if path is None:
        return None
    if (problem := _unreadable("ECASH_KAFKA_OAUTH_TOKEN_FILE", path)) is not None:
        return problem
    try:
        empty = not path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        return f"ECASH_KAFKA_OAUTH_TOKEN_FILE: {path} cannot be read as text ({exc})"
    if empty:
        return f"ECASH_KAFKA_OAUTH_TOKEN_FILE: {path} is empty (no token)"
    return None


def check_api_public_key(settings: Settings) -> str | None:
    path = settings.api_public_key_path
    if path is None or settings.api_credentials is not None:
        return None
    if (problem := _unreadable("ECASH_API_PUBLIC_KEY_PATH", path)) is not None:
        return problem
    from worker.ecash.credentials import load_public_key
    from worker.ecash.errors import FatalConfigError

    try:
        load_public_key(path)
    except FatalConfigError as exc:
        return str(exc) if str(exc).startswith("ECASH_") else f"ECASH_API_PUBLIC_KEY_PATH: {exc}"
    return None


def check_state_dir(settings: Settings) -> str | None:
    """The journal's local copies need a directory this process can create and write to."""
    state_dir = settings.state_dir
    if state_dir is None:
        return None
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=state_dir, prefix=".write-check-"):
            pass
    except OSError as exc:
        return f"ECASH_STATE_DIR: {state_dir} is not a writable directory ({exc.strerror or exc})"
    return None


def check_metrics_port(settings: Settings) -> str | None:
    """The probe server's address can be bound now (0 = any free port, as the tests use)."""
    port = settings.metrics_port
    if port == 0:
        return None
    host = settings.metrics_host
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"ECASH_METRICS_HOST: {host!r} is not an address of this host ({exc.strerror})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return f"ECASH_METRICS_PORT: cannot listen on {host}:{port} ({exc.strerror or exc})"
    return None


def check_otel_exporter(settings: Settings) -> str | None:
    """``otlp`` needs the exporter package (the optional ``otel`` extra)."""
    from worker.tracing import OTLP_EXPORTER_MODULE, otlp_exporter_missing

    if settings.otel_exporter == "otlp" and otlp_exporter_missing():
        return (
            f"ECASH_OTEL_EXPORTER: otlp needs the exporter package ({OTLP_EXPORTER_MODULE} is not installed: "
            "pip install 'ecash-worker[otel]'), or set none"
        )
    return None


CHECKS: tuple[Check, ...] = (
    check_kafka_tls,
    check_kafka_oauth_token,
    check_api_tls,
    check_api_public_key,
    check_state_dir,
    check_otel_exporter,
    check_metrics_port,
)
