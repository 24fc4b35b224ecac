"""Every bad setting stops the real CLI at start: one line naming it, exit 2, no traceback.

Each case runs ``ecash-worker`` as a subprocess with an environment of its own (no ``ECASH_*`` inherited).
Cases about topics and the Kafka connection use the session's real broker, with topics of the test's own,
made wrong on purpose; none of them needs the API (it points at a closed port).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ecash_dev.kafka import LocalKafka, LocalKafkaConfig, default_cache_dir, free_ports
from ecash_dev.stack import child_environ, free_port, namespaced
from tests.kafka_fixtures import KafkaTopics
from worker.kafka.admin import (
    TopicSpec,
    broker_answers,
    diagnose_connection,
    kafka_client_kwargs,
    worker_topic_specs,
)
from worker.settings import SANDBOX_API_IDENTITY, load_settings
from worker.tracing import otlp_exporter_missing

ECASH_WORKER = str(Path(sys.executable).with_name("ecash-worker"))
EXIT_CONFIG = 2


def identity_env() -> dict[str, str]:
    return {f"ECASH_{name.upper()}": value for name, value in SANDBOX_API_IDENTITY.items()}


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    """A worker that would start if Kafka answered at a closed port; API at a closed port too."""
    return child_environ(
        {
            **identity_env(),
            "ECASH_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
            "ECASH_KAFKA_START_TIMEOUT_S": "3",
            "ECASH_API_BASE_URL": f"http://127.0.0.1:{free_port()}/eCashHost",
            "ECASH_METRICS_HOST": "127.0.0.1",
            "ECASH_METRICS_PORT": "0",
            "ECASH_STATE_DIR": str(tmp_path / "state"),
            "ECASH_LOG_FORMAT": "json",
        }
    )


def cli(argv: list[str], env: Mapping[str, str], timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ECASH_WORKER, *argv], env=dict(env), capture_output=True, text=True, timeout=timeout_s, check=False
    )


def plain_lines(stderr: str) -> list[str]:
    """stderr without the JSON log events: what a person reads."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("{")]


def assert_refused(result: subprocess.CompletedProcess[str], *starts: str, code: int = EXIT_CONFIG) -> None:
    """Exit ``code``, no traceback, and exactly one plain line per expected start, in order."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, result.stderr
    lines = plain_lines(result.stderr)
    assert len(lines) == len(starts), lines
    for line, start in zip(lines, starts, strict=True):
        assert line.startswith(start), line


def without(env: Mapping[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in names}


# --- TLS material --------------------------------------------------------------------------------------


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _self_signed(key: rsa.RSAPrivateKey, name: str = "localhost") -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cert.pem + key.pem (a pair), other-key.pem (not its key), garbage.pem, public.der."""
    directory = tmp_path_factory.mktemp("tls")
    key, other = _key(), _key()
    pem = serialization.Encoding.PEM
    private = serialization.PrivateFormat.TraditionalOpenSSL
    none = serialization.NoEncryption()
    (directory / "cert.pem").write_bytes(_self_signed(key).public_bytes(pem))
    (directory / "key.pem").write_bytes(key.private_bytes(pem, private, none))
    (directory / "other-key.pem").write_bytes(other.private_bytes(pem, private, none))
    (directory / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n")
    return directory


# --- settings and files: no network needed -------------------------------------------------------------


def test_an_unknown_variable_is_named_with_a_suggestion(base_env: dict[str, str]) -> None:
    result = cli(["run"], {**base_env, "ECASH_MAX_INFLIGHT": "0"})
    assert_refused(
        result, "ecash-worker: ECASH_MAX_INFLIGHT: not a setting (did you mean ECASH_MAX_IN_FLIGHT?)"
    )


def test_the_tooling_variables_do_not_stop_the_worker_at_the_settings(base_env: dict[str, str]) -> None:
    env = {**base_env, "ECASH_TEST_KAFKA_BOOTSTRAP": "x", "ECASH_DEVKAFKA_CACHE_DIR": "cache"}
    result = cli(["check", "--config"], env)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("drop", "extra", "expected"),
    [
        (("ECASH_API_USERNAME",), {}, ["ECASH_API_USERNAME: not set (there is no default)"]),
        (
            ("ECASH_API_USERNAME", "ECASH_API_KEY"),
            {},
            ["ECASH_API_USERNAME: not set", "ECASH_API_KEY: not set"],
        ),
        ((), {"ECASH_API_KEY": ""}, ["ECASH_API_KEY: must not be empty"]),
        (("ECASH_API_CREDENTIALS",), {}, ["ECASH_API_CREDENTIALS: not set (there is no default)"]),
        (
            (),
            {"ECASH_MAX_IN_FLIGHT": "0"},
            ["ECASH_MAX_IN_FLIGHT: Input should be greater than or equal to 1"],
        ),
        (
            (),
            {"ECASH_METRICS_PORT": "99999"},
            ["ECASH_METRICS_PORT: Input should be less than or equal to 65535"],
        ),
        (
            (),
            {"ECASH_OTEL_EXPORTER": "jaeger"},
            ["ECASH_OTEL_EXPORTER: Input should be 'none' or 'otlp'"],
        ),
        (
            (),
            {"ECASH_STATE_DIR": "/etc/hostname/state"},
            ["ECASH_STATE_DIR: /etc/hostname/state is not a writable"],
        ),
        (
            ("ECASH_API_CREDENTIALS",),
            {"ECASH_API_PASSWORD": "pw", "ECASH_API_PUBLIC_KEY_PATH": "/nonexistent/bank.der"},
            ["ECASH_API_PUBLIC_KEY_PATH: no such file /nonexistent/bank.der"],
        ),
        (
            (),
            {"ECASH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            ["ECASH_KAFKA_SASL_MECHANISM: required with ECASH_KAFKA_SECURITY_PROTOCOL=SASL_SSL"],
        ),
        (
            (),
            {"ECASH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "ECASH_KAFKA_SASL_MECHANISM": "PLAIN"},
            ["ECASH_KAFKA_SASL_USERNAME: required with ECASH_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT"],
        ),
        (
            (),
            {
                "ECASH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "ECASH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                "ECASH_KAFKA_SASL_USERNAME": "worker",
            },
            ["ECASH_KAFKA_SASL_PASSWORD: required with"],
        ),
        (
            (),
            {"ECASH_KAFKA_SASL_USERNAME": "worker"},
            ["ECASH_KAFKA_SASL_USERNAME: set, but not used with ECASH_KAFKA_SECURITY_PROTOCOL=PLAINTEXT"],
        ),
        (
            (),
            {"ECASH_KAFKA_SECURITY_PROTOCOL": "SSL", "ECASH_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"},
            ["ECASH_KAFKA_SSL_CAFILE: no such file /nonexistent/ca.pem"],
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(
    base_env: dict[str, str], drop: tuple[str, ...], extra: dict[str, str], expected: list[str]
) -> None:
    result = cli(["run"], {**without(base_env, *drop), **extra})
    assert_refused(result, *(f"ecash-worker: {line}" for line in expected))


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"CAFILE": "garbage.pem"},
            "ECASH_KAFKA_SSL_CAFILE: {dir}/garbage.pem holds no usable CA certificate",
        ),
        ({"CERTFILE": "cert.pem"}, "ECASH_KAFKA_SSL_CERTFILE: {dir}/cert.pem does not load without"),
        ({"KEYFILE": "key.pem"}, "ECASH_KAFKA_SSL_KEYFILE: set without ECASH_KAFKA_SSL_CERTFILE"),
        (
            {"CERTFILE": "cert.pem", "KEYFILE": "other-key.pem"},
            "ECASH_KAFKA_SSL_CERTFILE: {dir}/cert.pem and ECASH_KAFKA_SSL_KEYFILE {dir}/other-key.pem "
            "do not load",
        ),
        (
            {"CERTFILE": "absent.pem", "KEYFILE": "key.pem"},
            "ECASH_KAFKA_SSL_CERTFILE: no such file {dir}/absent.pem",
        ),
    ],
)
def test_kafka_tls_files_are_checked_naming_the_path(
    base_env: dict[str, str], tls_dir: Path, files: dict[str, str], expected: str
) -> None:
    env = {**base_env, "ECASH_KAFKA_SECURITY_PROTOCOL": "SSL"}
    env.update({f"ECASH_KAFKA_SSL_{kind}": str(tls_dir / name) for kind, name in files.items()})
    assert_refused(cli(["run"], env), "ecash-worker: " + expected.format(dir=tls_dir))


def test_good_tls_files_pass_the_checks(base_env: dict[str, str], tls_dir: Path) -> None:
    env = {
        **base_env,
        "ECASH_KAFKA_SECURITY_PROTOCOL": "SSL",
        "ECASH_KAFKA_SSL_CAFILE": str(tls_dir / "cert.pem"),
        "ECASH_KAFKA_SSL_CERTFILE": str(tls_dir / "cert.pem"),
        "ECASH_KAFKA_SSL_KEYFILE": str(tls_dir / "key.pem"),
    }
    result = cli(["check", "--config"], env)
    assert result.returncode == 0, result.stderr


def test_a_metrics_port_in_use_is_named(base_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli(["run"], {**base_env, "ECASH_METRICS_PORT": str(port)})
    assert_refused(
        result, f"ecash-worker: ECASH_METRICS_PORT: cannot listen on 127.0.0.1:{port} (Address already"
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["sandbox", "--port", "99999"],
            "ecash-worker sandbox: --port: 99999 is not a port number (0-65535)",
        ),
        (
            ["kafka", "start", "--port", "99999"],
            "ecash-worker kafka: --port: 99999 is not a port number (1-65535)",
        ),
        (["kafka", "status", "--port", "-1"], "ecash-worker kafka: --port: -1 is not a port number"),
    ],
)
def test_a_port_out_of_range_on_the_development_tools(
    base_env: dict[str, str], argv: list[str], expected: str
) -> None:
    assert_refused(cli(argv, base_env), expected)


def test_a_sandbox_port_in_use_is_one_line(base_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli(["sandbox", "--port", str(port)], base_env)
    assert_refused(result, f"ecash-worker sandbox: --port: cannot listen on 127.0.0.1:{port}")


def test_check_config_prints_the_effective_settings_with_secrets_masked(base_env: dict[str, str]) -> None:
    env = {**base_env, "ECASH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "ECASH_KAFKA_SASL_MECHANISM": "PLAIN"}
    env |= {"ECASH_KAFKA_SASL_USERNAME": "worker", "ECASH_KAFKA_SASL_PASSWORD": "kafka-secret-password"}
    result = cli(["check", "--config"], env)
    assert result.returncode == 0, result.stderr
    shown = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert shown["ECASH_API_USERNAME"] == "agent01"
    assert (
        shown["ECASH_API_KEY"]
        == shown["ECASH_API_CREDENTIALS"]
        == shown["ECASH_KAFKA_SASL_PASSWORD"]
        == "********"
    )
    assert shown["ECASH_MAX_IN_FLIGHT"] == "256"
    for secret in (*SANDBOX_API_IDENTITY.values(), "kafka-secret-password"):
        if secret != "agent01":
            assert secret not in result.stdout + result.stderr


def without_the_otlp_exporter(env: Mapping[str, str], tmp_path: Path) -> dict[str, str]:
    """``env`` for an interpreter in which the ``otel`` extra is not installed, as in an install without it
    (the development venv and the image have it): a ``sitecustomize`` on ``PYTHONPATH`` makes its package
    unimportable, as a missing one is."""
    hide = tmp_path / "without-otel"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import sys\nsys.modules['opentelemetry.exporter.otlp'] = None\n", encoding="utf-8"
    )
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(hide), env.get("PYTHONPATH")]))}


@pytest.mark.parametrize("argv", [["run"], ["check", "--config"]])
def test_otlp_without_the_exporter_package_is_one_line_naming_the_setting(
    base_env: dict[str, str], argv: list[str], tmp_path: Path
) -> None:
    """The OTLP exporter is the optional extra ``otel``: asking for it where it is not installed is one
    line naming the setting, exit 2 (an install without the extra)."""
    env = without_the_otlp_exporter({**base_env, "ECASH_OTEL_EXPORTER": "otlp"}, tmp_path)
    hidden = subprocess.run(
        [sys.executable, "-c", "from worker.tracing import otlp_exporter_missing as m; print(m())"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert hidden.stdout.strip() == "True"
    assert not otlp_exporter_missing()  # here it is installed: only the child lacks it
    result = cli(argv, env)
    assert_refused(
        result,
        "ecash-worker: ECASH_OTEL_EXPORTER: otlp needs the exporter package "
        "(opentelemetry.exporter.otlp.proto.http.trace_exporter is not installed: "
        "pip install 'ecash-worker[otel]'), or set none",
    )


def test_check_config_refuses_a_bad_setting_with_exit_2(base_env: dict[str, str]) -> None:
    result = cli(["check", "--config"], {**base_env, "ECASH_MAX_INFLIGHT": "1"})
    assert_refused(
        result, "ecash-worker: ECASH_MAX_INFLIGHT: not a setting (did you mean ECASH_MAX_IN_FLIGHT?)"
    )
    assert result.stdout == ""


# --- Kafka: reachability, authentication, and the topics -----------------------------------------------


@pytest.mark.parametrize("create", ["true", "false"])
def test_kafka_unreachable_is_the_same_line_whether_or_not_topics_are_created(
    base_env: dict[str, str], create: str
) -> None:
    result = cli(["run"], {**base_env, "ECASH_CREATE_TOPICS": create})
    bootstrap = base_env["ECASH_KAFKA_BOOTSTRAP_SERVERS"]
    expected = f"ecash-worker: ECASH_KAFKA_BOOTSTRAP_SERVERS: Kafka at {bootstrap} did not answer for 3 s"
    assert_refused(result, expected, code=3)


def test_sasl_against_a_plaintext_listener_is_named(base_env: dict[str, str], kafka_bootstrap: str) -> None:
    env = {
        **base_env,
        "ECASH_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ECASH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "ECASH_KAFKA_SASL_MECHANISM": "PLAIN",
        "ECASH_KAFKA_SASL_USERNAME": "worker",
        "ECASH_KAFKA_SASL_PASSWORD": "pw",
    }
    started_s = time.monotonic()
    result = cli(["run"], env)
    listener = f"ecash-worker: ECASH_KAFKA_SECURITY_PROTOCOL: the listener at {kafka_bootstrap}"
    assert_refused(result, f"{listener} does not speak SASL")
    assert time.monotonic() - started_s < 15  # at once, not after the start timeout


@pytest.fixture(scope="module")
def sasl_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker of this module's own with a SASL_PLAINTEXT listener (PLAIN) and ACLs: user ``worker``
    (``right-password``) may do anything, user ``stranger`` (``stranger-password``) nothing."""
    port, controller, sasl_port = free_ports(3)
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        'user_worker="right-password" user_stranger="stranger-password";'
    )
    properties = {
        "listeners": (
            f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller},SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
        ),
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "listener.security.protocol.map": (
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
        ),
        "sasl.enabled.mechanisms": "PLAIN,OAUTHBEARER",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
        # OAUTHBEARER with Kafka's unsecured validator (the default without a callback handler): an
        # unsigned JWT's "sub" is the principal; enough to test the worker's token provider end to end
        "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config": (
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
            'unsecuredLoginStringClaim_sub="broker";'
        ),
        # worker may do anything; stranger has no ACL at all
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS;User:worker",
    }
    config = LocalKafkaConfig(
        data_dir=tmp_path_factory.mktemp("sasl-kafka"),
        cache_dir=default_cache_dir(os.environ),
        port=port,
        controller_port=controller,
        extra_properties=properties,
    )
    broker = LocalKafka(config, java_home=os.environ.get("JAVA_HOME"))
    broker.start()
    try:
        yield f"127.0.0.1:{sasl_port}"
    finally:
        broker.stop()


def sasl_env(
    base_env: dict[str, str], bootstrap: str, mechanism: str, password: str, user: str = "worker"
) -> dict[str, str]:
    return {
        **base_env,
        "ECASH_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "ECASH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "ECASH_KAFKA_SASL_MECHANISM": mechanism,
        "ECASH_KAFKA_SASL_USERNAME": user,
        "ECASH_KAFKA_SASL_PASSWORD": password,
    }


def test_a_user_without_acls_is_named_as_not_authorized(
    base_env: dict[str, str], sasl_bootstrap: str
) -> None:
    env = sasl_env(base_env, sasl_bootstrap, "PLAIN", "stranger-password", user="stranger")
    result = cli(["run"], env)
    assert_refused(result, "ecash-worker: ECASH_KAFKA_SASL_USERNAME: the cluster does not authorize stranger")


def test_topics_hidden_by_acls_are_not_just_missing(base_env: dict[str, str], sasl_bootstrap: str) -> None:
    env = sasl_env(base_env, sasl_bootstrap, "PLAIN", "stranger-password", user="stranger")
    env |= {f"ECASH_{k.upper()}": str(v) for k, v in namespaced(f"acl{os.getpid()}", 1).items()}
    result = cli(["run"], {**env, "ECASH_CREATE_TOPICS": "false"})
    lines = plain_lines(result.stderr)
    assert result.returncode == EXIT_CONFIG, result.stderr
    assert len(lines) == 7  # one line per topic the worker needs
    assert all("(or the cluster hides it from this client: ACLs)" in line for line in lines)


def test_a_refused_password_is_named_as_an_authentication_failure(
    base_env: dict[str, str], sasl_bootstrap: str
) -> None:
    result = cli(["run"], sasl_env(base_env, sasl_bootstrap, "PLAIN", "wrong-password"))
    assert_refused(
        result, f"ecash-worker: ECASH_KAFKA_SASL_USERNAME: authentication failed at {sasl_bootstrap}"
    )
    assert "wrong-password" not in result.stderr


def test_a_mechanism_the_broker_does_not_enable_is_named(
    base_env: dict[str, str], sasl_bootstrap: str
) -> None:
    result = cli(["run"], sasl_env(base_env, sasl_bootstrap, "SCRAM-SHA-256", "right-password"))
    expected = f"ecash-worker: ECASH_KAFKA_SASL_MECHANISM: the broker at {sasl_bootstrap} does not enable"
    assert_refused(result, f"{expected} SCRAM-SHA-256")


def test_the_right_sasl_credentials_pass_the_start_up_checks(
    base_env: dict[str, str], sasl_bootstrap: str, running: list[subprocess.Popen[str]]
) -> None:
    env = sasl_env(base_env, sasl_bootstrap, "PLAIN", "right-password")
    env |= {f"ECASH_{k.upper()}": str(v) for k, v in namespaced(f"sasl{os.getpid()}", 1).items()}
    process = start(env, running)
    time.sleep(8)  # topics created over SASL; the worker runs (its API is away: it keeps trying)
    assert process.poll() is None, process.communicate()[1]
    code, stderr, _ = stop_within(process, 25)
    assert code == 0, stderr
    assert "Traceback" not in stderr


def _unsigned_jwt(subject: str, lifetime_s: float = 3600.0) -> str:
    """What Kafka's unsecured OAUTHBEARER validator accepts: header ``alg: none``, no signature."""

    def part(claims: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()

    now = time.time()
    return f"{part({'alg': 'none'})}.{part({'sub': subject, 'iat': now, 'exp': now + lifetime_s})}."


async def test_oauthbearer_authenticates_with_the_token_files_current_content(
    sasl_bootstrap: str, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(_unsigned_jwt("worker") + "\n")
    settings = load_settings(
        kafka_bootstrap_servers=sasl_bootstrap,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="OAUTHBEARER",
        kafka_oauth_token_file=token_file,
    )
    kwargs = kafka_client_kwargs(settings)
    assert await broker_answers(sasl_bootstrap, client_kwargs=kwargs, timeout_s=10)
    assert await diagnose_connection(sasl_bootstrap, kwargs) is None
    token_file.write_text(_unsigned_jwt("worker", lifetime_s=-60))  # rotated to an expired token
    assert not await broker_answers(sasl_bootstrap, client_kwargs=kwargs, timeout_s=5)
    line = await diagnose_connection(sasl_bootstrap, kwargs)
    assert line is not None
    assert line.startswith(f"ECASH_KAFKA_OAUTH_TOKEN_FILE: authentication failed at {sasl_bootstrap}"), line
    token_file.write_text(_unsigned_jwt("worker"))  # and to a fresh one: no new kwargs, no restart
    assert await diagnose_connection(sasl_bootstrap, kwargs) is None
    assert await broker_answers(sasl_bootstrap, client_kwargs=kwargs, timeout_s=10)


def test_an_expired_oauthbearer_token_stops_the_worker_with_one_line(
    base_env: dict[str, str], sasl_bootstrap: str, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(_unsigned_jwt("worker", lifetime_s=-60))
    env = {
        **base_env,
        "ECASH_KAFKA_BOOTSTRAP_SERVERS": sasl_bootstrap,
        "ECASH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "ECASH_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
        "ECASH_KAFKA_OAUTH_TOKEN_FILE": str(token_file),
    }
    result = cli(["run"], env)
    assert_refused(
        result, f"ecash-worker: ECASH_KAFKA_OAUTH_TOKEN_FILE: authentication failed at {sasl_bootstrap}"
    )
    assert token_file.read_text() not in result.stderr


@pytest.fixture
def topic_env(base_env: dict[str, str], kafka_bootstrap: str, kafka_topics: KafkaTopics) -> dict[str, str]:
    """The worker's env with topics of this test's own (``<prefix>.commands`` ...), 2 partitions."""
    env = {**base_env, "ECASH_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    for name, value in namespaced(kafka_topics.prefix, 2).items():
        env[f"ECASH_{name.upper()}"] = str(value)
    return env


def specs_for(topics: KafkaTopics, **changes: TopicSpec) -> list[TopicSpec]:
    """The worker's own topic specs for ``topics.prefix`` (2 partitions), some replaced by ``changes``."""
    settings = load_settings(kafka_bootstrap_servers=topics.bootstrap, **namespaced(topics.prefix, 2))
    roles = dict(
        zip(
            ("commands", "results", "dlq", "review", "journal", "claims", "decisions"),
            worker_topic_specs(settings),
            strict=True,
        )
    )
    return [changes.get(role, spec) for role, spec in roles.items()]


def test_missing_topics_are_named_when_the_worker_may_not_create_them(
    topic_env: dict[str, str], kafka_topics: KafkaTopics
) -> None:
    asyncio.run(
        kafka_topics.create_specs([s for s in specs_for(kafka_topics) if not s.name.endswith(".review")])
    )
    result = cli(["run"], {**topic_env, "ECASH_CREATE_TOPICS": "false"})
    review = kafka_topics.name("review")
    assert_refused(
        result,
        f"ecash-worker: ECASH_REVIEW_TOPIC: topic {review} does not exist, and ECASH_CREATE_TOPICS is false",
    )


def _journal(topics: KafkaTopics, configs: Mapping[str, str] | None = None, partitions: int = 2) -> TopicSpec:
    base = {"cleanup.policy": "compact", "message.timestamp.type": "LogAppendTime"}
    return TopicSpec(topics.name("journal"), partitions, 1, {**base, **(configs or {})})


@pytest.mark.parametrize("create", ["true", "false"])
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda t: {"journal": _journal(t, partitions=1)},
            "ECASH_JOURNAL_TOPIC: topic {journal} has 1 partitions, the commands topic 2: "
            "the journal must be co-partitioned",
        ),
        (
            lambda t: {"journal": _journal(t, {"cleanup.policy": "delete"})},
            "ECASH_JOURNAL_TOPIC: topic {journal} has cleanup.policy=delete; "
            "the journal needs cleanup.policy=compact",
        ),
        (
            lambda t: {"review": TopicSpec(t.name("review"), 2, 1, {"cleanup.policy": "compact,delete"})},
            "ECASH_REVIEW_TOPIC: topic {review} has cleanup.policy=compact,delete; the review topic needs "
            "cleanup.policy=compact",
        ),
        (
            lambda t: {"results": TopicSpec(t.name("results"), 3, 1, {})},
            "ECASH_RESULTS_TOPIC: topic {results} has 3 partitions, ECASH_TOPIC_PARTITIONS is 2",
        ),
    ],
)
def test_an_existing_topic_the_worker_cannot_use_is_refused_whether_or_not_it_creates_topics(
    topic_env: dict[str, str], kafka_topics: KafkaTopics, create: str, change: object, expected: str
) -> None:
    asyncio.run(kafka_topics.create_specs(specs_for(kafka_topics, **change(kafka_topics))))  # type: ignore[operator]
    result = cli(["run"], {**topic_env, "ECASH_CREATE_TOPICS": create})
    names = {role: kafka_topics.name(role) for role in ("journal", "review", "results")}
    assert_refused(result, "ecash-worker: " + expected.format(**names))


def test_a_replication_factor_the_cluster_cannot_have_is_refused(topic_env: dict[str, str]) -> None:
    result = cli(["run"], {**topic_env, "ECASH_TOPIC_REPLICATION_FACTOR": "3"})
    assert_refused(result, "ecash-worker: ECASH_TOPIC_REPLICATION_FACTOR: 3, but the cluster at")


async def _topic_configs(bootstrap: str, topic: str, names: Mapping[str, str]) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        entries = response.to_object()["resources"][0]["config_entries"]
        return {e["config_names"]: str(e["config_value"]) for e in entries if e["config_names"] in names}
    finally:
        await admin.close()


OLDER_JOURNAL = {
    "cleanup.policy": "compact,delete",
    "retention.ms": "700000000",
    "message.timestamp.type": "CreateTime",
}


def test_an_older_versions_journal_is_refused_when_the_worker_may_not_change_topics(
    topic_env: dict[str, str], kafka_topics: KafkaTopics
) -> None:
    journal = _journal(kafka_topics, OLDER_JOURNAL)
    asyncio.run(kafka_topics.create_specs(specs_for(kafka_topics, journal=journal)))
    result = cli(["run"], {**topic_env, "ECASH_CREATE_TOPICS": "false"})
    where = f"ecash-worker: ECASH_JOURNAL_TOPIC: topic {journal.name} has"
    assert_refused(
        result,
        f"{where} cleanup.policy=compact,delete; the journal needs cleanup.policy=compact",
        f"{where} message.timestamp.type=CreateTime; the journal needs LogAppendTime",
    )
    assert "--add-config cleanup.policy=compact" in result.stderr


def test_a_journal_without_log_append_time_is_refused_when_the_worker_may_not_change_topics(
    topic_env: dict[str, str], kafka_topics: KafkaTopics
) -> None:
    journal = _journal(kafka_topics, {"message.timestamp.type": "CreateTime"})
    asyncio.run(kafka_topics.create_specs(specs_for(kafka_topics, journal=journal)))
    result = cli(["run"], {**topic_env, "ECASH_CREATE_TOPICS": "false"})
    assert_refused(
        result,
        f"ecash-worker: ECASH_JOURNAL_TOPIC: topic {journal.name} has message.timestamp.type=CreateTime; "
        "the journal needs LogAppendTime",
    )
    assert "--add-config message.timestamp.type=LogAppendTime" in result.stderr


@pytest.fixture
def running() -> Iterator[list[subprocess.Popen[str]]]:
    """Worker processes a test starts; killed at the end if still running."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def start(env: Mapping[str, str], running: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [ECASH_WORKER, "run"], env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    running.append(process)
    return process


def stop_within(process: subprocess.Popen[str], seconds: float) -> tuple[int, str, float]:
    """SIGTERM; (exit code, stderr, seconds it took)."""
    started_s = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=seconds + 10)
    took_s = time.monotonic() - started_s
    assert took_s < seconds, f"took {took_s:.1f} s"
    return process.returncode, stderr, took_s


def test_the_worker_upgrades_an_older_versions_journal_when_it_may_create_topics(
    topic_env: dict[str, str], kafka_topics: KafkaTopics, running: list[subprocess.Popen[str]]
) -> None:
    journal = _journal(kafka_topics, {**OLDER_JOURNAL, "min.insync.replicas": "1"})
    asyncio.run(kafka_topics.create_specs(specs_for(kafka_topics, journal=journal)))
    process = start({**topic_env, "ECASH_CREATE_TOPICS": "true"}, running)
    deadline_s = time.monotonic() + 30
    wanted = {
        "message.timestamp.type": "LogAppendTime",
        "cleanup.policy": "compact",
        "min.insync.replicas": "1",
    }
    while asyncio.run(_topic_configs(kafka_topics.bootstrap, journal.name, wanted)) != wanted:
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline_s, "the journal's timestamp type was not set"
        time.sleep(0.3)
    code, stderr, _ = stop_within(process, 25)
    assert code == 0, stderr
    assert "Traceback" not in stderr
    # (the log redacts the test's long topic prefix); min.insync.replicas, set before, was kept
    assert ".journal: set cleanup.policy=compact, message.timestamp.type=LogAppendTime" in stderr


# --- SIGTERM during start-up ---------------------------------------------------------------------------


def test_sigterm_while_waiting_for_kafka_stops_at_once(
    base_env: dict[str, str], running: list[subprocess.Popen[str]]
) -> None:
    process = start(
        {**base_env, "ECASH_KAFKA_START_TIMEOUT_S": "120", "ECASH_CREATE_TOPICS": "false"}, running
    )
    time.sleep(3)  # past the first attempts: it is waiting for Kafka
    assert process.poll() is None
    code, stderr, _ = stop_within(process, 5)
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert "stopped during start-up" in stderr


@pytest.fixture
def silent_api() -> Iterator[str]:
    """An API base URL whose server accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/eCashHost"
    finally:
        server.close()


def test_sigterm_during_the_first_login_stops_at_once(
    topic_env: dict[str, str], silent_api: str, running: list[subprocess.Popen[str]]
) -> None:
    env = {**topic_env, "ECASH_API_BASE_URL": silent_api, "ECASH_REQUEST_TIMEOUT_S": "60"}
    env["ECASH_CONNECT_TIMEOUT_S"] = "30"
    process = start(env, running)
    time.sleep(6)  # topics created; the first login hangs on the silent API
    assert process.poll() is None, process.communicate()[1]
    code, stderr, _ = stop_within(process, 5)
    assert code == 0, stderr
    assert "Traceback" not in stderr


# --- the bank's TLS certificate ------------------------------------------------------------------------


@pytest.fixture
def untrusted_https_api(tls_dir: Path) -> Iterator[str]:
    """An https API whose certificate (self-signed) no default trust store accepts."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_dir / "cert.pem", tls_dir / "key.pem")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    port = server.getsockname()[1]
    stop = False

    def serve() -> None:
        while not stop:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(connection, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{port}/eCashHost"
    finally:
        stop = True
        server.close()


def test_a_bank_certificate_failure_is_a_fatal_configuration_error_not_an_outage(
    topic_env: dict[str, str], untrusted_https_api: str, running: list[subprocess.Popen[str]]
) -> None:
    process = start({**topic_env, "ECASH_API_BASE_URL": untrusted_https_api}, running)
    time.sleep(8)  # topics, then the first login over TLS
    assert process.poll() is None, process.communicate()[1]
    code, stderr, _ = stop_within(process, 25)
    assert code == 0, stderr
    fatal = [line for line in stderr.splitlines() if "FATAL configuration error" in line]
    assert fatal, stderr
    assert f"ECASH_API_BASE_URL: TLS with {untrusted_https_api}" in fatal[0]
    assert "certificate verify failed" in fatal[0]
    assert "breaker_state_changed" not in stderr  # not counted as the API being down


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"ECASH_API_CLIENT_CERT_FILE": "cert.pem"},
            "ECASH_API_CLIENT_CERT_FILE: set without ECASH_API_CLIENT_KEY_FILE (mutual TLS needs both)",
        ),
        (
            {"ECASH_API_CLIENT_KEY_FILE": "key.pem"},
            "ECASH_API_CLIENT_KEY_FILE: set without ECASH_API_CLIENT_CERT_FILE (mutual TLS needs both)",
        ),
        ({"ECASH_API_CA_FILE": "absent.pem"}, "ECASH_API_CA_FILE: no such file {dir}/absent.pem"),
        (
            {"ECASH_API_CA_FILE": "garbage.pem"},
            "ECASH_API_CA_FILE: {dir}/garbage.pem holds no usable CA certificate",
        ),
        (
            {"ECASH_API_CLIENT_CERT_FILE": "cert.pem", "ECASH_API_CLIENT_KEY_FILE": "other-key.pem"},
            "ECASH_API_CLIENT_CERT_FILE: {dir}/cert.pem and ECASH_API_CLIENT_KEY_FILE {dir}/other-key.pem "
            "do not load",
        ),
        (
            {"ECASH_API_PROXY_URL": "socks5://egress:pr0xy-s3cret@proxy.test:1080"},
            "ECASH_API_PROXY_URL: must start with http:// or https://",
        ),
        (
            {
                "ECASH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "ECASH_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
                "ECASH_KAFKA_OAUTH_TOKEN_FILE": "absent-token",
            },
            "ECASH_KAFKA_OAUTH_TOKEN_FILE: no such file {dir}/absent-token",
        ),
    ],
)
def test_api_network_settings_are_checked_at_start(
    base_env: dict[str, str], tls_dir: Path, env: dict[str, str], expected: str
) -> None:
    files = {name: str(tls_dir / value) if name.endswith("_FILE") else value for name, value in env.items()}
    result = cli(["run"], {**base_env, "ECASH_API_BASE_URL": "https://bank.test/eCashHost", **files})
    assert_refused(result, "ecash-worker: " + expected.format(dir=tls_dir))
    assert "pr0xy-s3cret" not in result.stderr + result.stdout


def test_good_api_network_settings_pass_the_checks_and_the_proxy_is_masked(
    base_env: dict[str, str], tls_dir: Path
) -> None:
    env = {
        **base_env,
        "ECASH_API_BASE_URL": "https://bank.test/eCashHost",
        "ECASH_API_PROXY_URL": "http://egress:pr0xy-s3cret@proxy.test:3128",
        "ECASH_API_CA_FILE": str(tls_dir / "cert.pem"),
        "ECASH_API_CLIENT_CERT_FILE": str(tls_dir / "cert.pem"),
        "ECASH_API_CLIENT_KEY_FILE": str(tls_dir / "key.pem"),
    }
    result = cli(["check", "--config"], env)
    assert result.returncode == 0, result.stderr
    assert "ECASH_API_PROXY_URL=********" in result.stdout
    assert "pr0xy-s3cret" not in result.stdout + result.stderr
