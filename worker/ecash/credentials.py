"""The value of the ``Credentials`` header sent with Login.

Two ways to configure it (``Settings``):

- ``api_credentials``: the value as the bank supplies it, already encrypted; sent as is.
- ``api_password`` + ``api_public_key_path``: the agent password, encrypted for each login as
  Base64(RSA PKCS#1 v1.5 (password)) with the bank's public key (DER SubjectPublicKeyInfo, the "security
  pack"; PEM is accepted too). PKCS#1 v1.5 is randomised, so every login sends a fresh ciphertext.

Nothing here ever puts a secret into a repr, a str or an exception message.
"""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import SecretStr

from worker.ecash.errors import FatalConfigError
from worker.settings import Settings

__all__ = ["CredentialsProvider", "encrypt_password", "load_public_key"]


def load_public_key(path: Path) -> rsa.RSAPublicKey:
    """The bank's RSA public key from a DER (or PEM) file. Errors name the file, never its content."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FatalConfigError(
            None, f"ECASH_API_PUBLIC_KEY_PATH: cannot read {path} ({exc.strerror})"
        ) from None
    key: object
    try:
        key = serialization.load_der_public_key(data)
    except ValueError:
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError:
            raise FatalConfigError(
                None, f"ECASH_API_PUBLIC_KEY_PATH: {path} is not a DER or PEM public key"
            ) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise FatalConfigError(None, f"ECASH_API_PUBLIC_KEY_PATH: {path} is not an RSA public key")
    return key


def encrypt_password(password: SecretStr, public_key: rsa.RSAPublicKey) -> SecretStr:
    """Base64(RSA-PKCS#1-v1.5(password, public_key)), as the Java ``Cipher.getInstance("RSA")`` does."""
    plain = password.get_secret_value().encode("utf-8")
    limit = public_key.key_size // 8 - 11
    if len(plain) > limit:
        raise FatalConfigError(
            None,
            f"ECASH_API_PASSWORD: longer than the {limit} bytes a {public_key.key_size}-bit key can encrypt",
        )
    cipher = public_key.encrypt(plain, padding.PKCS1v15())
    return SecretStr(base64.b64encode(cipher).decode("ascii"))


class CredentialsProvider:
    """Gives the ``Credentials`` header value for each Login."""

    def __init__(
        self,
        *,
        pre_encrypted: SecretStr | None = None,
        password: SecretStr | None = None,
        public_key: rsa.RSAPublicKey | None = None,
    ) -> None:
        if pre_encrypted is None and (password is None or public_key is None):
            raise FatalConfigError(
                None,
                "ECASH_API_CREDENTIALS, or both ECASH_API_PASSWORD and ECASH_API_PUBLIC_KEY_PATH, "
                "must be set",
            )
        self._pre_encrypted = pre_encrypted
        self._password = password
        self._public_key = public_key

    @classmethod
    def from_settings(cls, settings: Settings) -> CredentialsProvider:
        """Password + key when both are set (the key is loaded now: a bad file stops the start), else the
        pre-encrypted value."""
        if settings.api_password is not None and settings.api_public_key_path is not None:
            key = load_public_key(settings.api_public_key_path)
            provider = cls(password=settings.api_password, public_key=key)
            provider.header_value()  # fail at start, not at the first login, if the password cannot fit
            return provider
        return cls(pre_encrypted=settings.api_credentials)

    @property
    def mode(self) -> str:
        return "pre-encrypted" if self._password is None else "password+public-key"

    def header_value(self) -> SecretStr:
        if self._password is not None and self._public_key is not None:
            return encrypt_password(self._password, self._public_key)
        assert self._pre_encrypted is not None
        return self._pre_encrypted

    def __repr__(self) -> str:
        return f"CredentialsProvider(mode={self.mode!r})"
