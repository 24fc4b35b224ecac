"""Topic specs and the TLS/SASL client options, without a broker."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from worker.kafka.admin import kafka_client_kwargs, worker_topic_specs
from worker.settings import Settings


def write_self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ecash-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_plaintext_needs_no_extra_options() -> None:
    assert kafka_client_kwargs(Settings()) == {"security_protocol": "PLAINTEXT"}


def test_sasl_plaintext_passes_mechanism_and_credentials() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="worker",
        kafka_sasl_password="s3cret",
    )
    assert kafka_client_kwargs(settings) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "worker",
        "sasl_plain_password": "s3cret",
    }


def test_sasl_ssl_verifies_the_broker_against_the_configured_ca_and_presents_a_client_cert(
    tmp_path: Path,
) -> None:
    cert, key = write_self_signed(tmp_path)
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="worker",
        kafka_sasl_password="s3cret",
        kafka_ssl_cafile=cert,
        kafka_ssl_certfile=cert,
        kafka_ssl_keyfile=key,
    )
    kwargs = kafka_client_kwargs(settings)
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "ecash-test"),),)]
    assert kwargs["security_protocol"] == "SASL_SSL"


def test_a_missing_ca_file_fails_at_start_not_at_first_connect(tmp_path: Path) -> None:
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "absent.pem")
    with pytest.raises(FileNotFoundError):
        kafka_client_kwargs(settings)


def test_worker_topics_are_co_partitioned_and_the_journal_is_compacted_on_the_brokers_clock() -> None:
    settings = Settings(
        topic_partitions=24, topic_replication_factor=3, journal_retention_s=86_400, dedupe_window_s=86_400
    )
    specs = {spec.name: spec for spec in worker_topic_specs(settings)}
    assert set(specs) == {
        "ecash.commands", "ecash.results", "ecash.commands.dlq", "ecash.review", "ecash.journal",
        "ecash.claims", "ecash.review.decisions",
    }  # fmt: skip
    assert {spec.partitions for spec in specs.values()} == {24}
    assert {spec.replication_factor for spec in specs.values()} == {3}
    # never deleted by age (an intent in doubt must outlive any retention); final records are tombstoned
    assert specs["ecash.journal"].configs["cleanup.policy"] == "compact"
    assert "retention.ms" not in specs["ecash.journal"].configs
    assert specs["ecash.journal"].configs["message.timestamp.type"] == "LogAppendTime"
    assert specs["ecash.review"].configs["cleanup.policy"] == "compact"
    # claims: compacted (the workers tombstone them), aged on the broker's clock
    assert specs["ecash.claims"].configs["cleanup.policy"] == "compact"
    assert specs["ecash.claims"].configs["message.timestamp.type"] == "LogAppendTime"
    assert specs["ecash.review.decisions"].configs.get("cleanup.policy", "delete") == "delete"
    assert {spec.configs["min.insync.replicas"] for spec in specs.values()} == {"2"}


@pytest.mark.parametrize(("replicas", "min_isr"), [(1, "1"), (2, "1"), (3, "2"), (5, "2")])
def test_min_insync_replicas_leaves_room_for_one_broker_down(replicas: int, min_isr: str) -> None:
    specs = worker_topic_specs(Settings(topic_replication_factor=replicas))
    assert {spec.configs["min.insync.replicas"] for spec in specs} == {min_isr}
