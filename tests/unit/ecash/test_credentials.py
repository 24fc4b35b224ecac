from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pydantic import SecretStr

from tests.unit.ecash.fake_api import FakeApi, make_settings
from worker.ecash import wire
from worker.ecash.client import EcashClient
from worker.ecash.credentials import CredentialsProvider, encrypt_password, load_public_key
from worker.ecash.errors import FatalConfigError

PASSWORD = "agent-password-Zq81!"


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _decrypt(private_key: rsa.RSAPrivateKey, header: str) -> str:
    return private_key.decrypt(base64.b64decode(header), padding.PKCS1v15()).decode()


def _write_der(path: Path, private_key: rsa.RSAPrivateKey) -> Path:
    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path.write_bytes(der)
    return path


def test_the_password_is_rsa_pkcs1_v15_encrypted_and_base64_encoded(private_key: rsa.RSAPrivateKey) -> None:
    value = encrypt_password(SecretStr(PASSWORD), private_key.public_key())
    assert _decrypt(private_key, value.get_secret_value()) == PASSWORD


def test_every_login_gets_a_fresh_ciphertext(private_key: rsa.RSAPrivateKey) -> None:
    provider = CredentialsProvider(password=SecretStr(PASSWORD), public_key=private_key.public_key())
    first, second = provider.header_value(), provider.header_value()
    assert first.get_secret_value() != second.get_secret_value()
    assert _decrypt(private_key, first.get_secret_value()) == _decrypt(private_key, second.get_secret_value())


def test_der_and_pem_key_files_both_load(tmp_path: Path, private_key: rsa.RSAPrivateKey) -> None:
    der = load_public_key(_write_der(tmp_path / "bank.der", private_key))
    pem_path = tmp_path / "bank.pem"
    pem_path.write_bytes(
        private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    pem = load_public_key(pem_path)
    assert der.public_numbers() == pem.public_numbers() == private_key.public_key().public_numbers()


def test_password_and_key_from_settings_win_over_the_pre_encrypted_default(
    tmp_path: Path, private_key: rsa.RSAPrivateKey
) -> None:
    settings = make_settings(
        api_password=PASSWORD, api_public_key_path=str(_write_der(tmp_path / "k.der", private_key))
    )
    provider = CredentialsProvider.from_settings(settings)
    assert provider.mode == "password+public-key"
    assert _decrypt(private_key, provider.header_value().get_secret_value()) == PASSWORD


def test_the_pre_encrypted_value_is_sent_as_is() -> None:
    provider = CredentialsProvider.from_settings(make_settings(api_credentials="opaque-bank-value"))
    assert provider.mode == "pre-encrypted"
    assert provider.header_value().get_secret_value() == "opaque-bank-value"


async def test_login_sends_a_credentials_header_the_bank_can_decrypt(
    tmp_path: Path, private_key: rsa.RSAPrivateKey
) -> None:
    api = FakeApi()
    settings = make_settings(
        api_password=PASSWORD, api_public_key_path=str(_write_der(tmp_path / "k.der", private_key))
    )
    async with EcashClient(settings, transport=api.transport()) as client:
        await client.login()
    (login,) = api.of(wire.Operation.LOGIN)
    assert _decrypt(private_key, login.headers[wire.HEADER_CREDENTIALS]) == PASSWORD


@pytest.mark.parametrize("content", [b"not a key", b""])
def test_an_unreadable_key_file_is_fatal_and_names_the_setting_not_the_password(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "bad.der"
    path.write_bytes(content)
    with pytest.raises(FatalConfigError) as caught:
        CredentialsProvider.from_settings(make_settings(api_password=PASSWORD, api_public_key_path=str(path)))
    assert "ECASH_API_PUBLIC_KEY_PATH" in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_a_key_that_is_not_rsa_is_fatal(tmp_path: Path) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    path = tmp_path / "ec.der"
    path.write_bytes(
        ec_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(FatalConfigError, match="not an RSA public key"):
        load_public_key(path)


def test_a_password_too_long_for_the_key_is_fatal_at_start_without_echoing_it(
    tmp_path: Path, private_key: rsa.RSAPrivateKey
) -> None:
    long_password = "p" * 300
    settings = make_settings(
        api_password=long_password, api_public_key_path=str(_write_der(tmp_path / "k.der", private_key))
    )
    with pytest.raises(FatalConfigError) as caught:
        CredentialsProvider.from_settings(settings)
    assert "ECASH_API_PASSWORD" in str(caught.value)
    assert long_password not in str(caught.value)


def test_the_provider_repr_shows_the_mode_only(private_key: rsa.RSAPrivateKey) -> None:
    provider = CredentialsProvider(password=SecretStr(PASSWORD), public_key=private_key.public_key())
    assert repr(provider) == "CredentialsProvider(mode='password+public-key')"
    assert PASSWORD not in repr(provider)
    assert "opaque" not in repr(CredentialsProvider(pre_encrypted=SecretStr("opaque")))


def test_neither_way_configured_is_fatal() -> None:
    with pytest.raises(FatalConfigError):
        CredentialsProvider()
