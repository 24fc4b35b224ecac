"""No secret (API key, Credentials, password, token, ticket) in logs, reprs, events or exception messages."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.unit.ecash.fake_api import AMOUNT, API_KEY, CREDENTIALS, FakeApi, SleepRecorder, make_settings
from worker.ecash import wire
from worker.ecash.client import EcashClient
from worker.ecash.errors import ApiError, ApiUnavailable, FatalConfigError
from worker.events import Recorder

PASSWORD = "s3cret-agent-password"


def _assert_clean(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text


async def test_a_whole_session_leaks_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api, sink = FakeApi(), Recorder()
    api.queue(wire.Operation.CHARGE, httpx.ReadTimeout("slow"))
    api.queue(wire.Operation.BALANCE, {"status": "NOT_ALLOWED"})
    api.queue(wire.Operation.VALIDATE_ACCOUNT, *[httpx.ConnectError("refused")] * 4)
    settings = make_settings()
    client = EcashClient(settings, transport=api.transport(), sink=sink, sleep=SleepRecorder())
    results: list[object] = [await client.charge(msisdn="08131234567", amount=AMOUNT, trace_number="T1")]
    results.append(await client.status(trace_number="T1", amount=AMOUNT))
    ticket = await client.register_ticket("08787779080444")
    errors: list[BaseException] = []
    for call in (client.balance("08131234567"), client.validate_account("08131234567")):
        try:
            await call
        except (ApiError, ApiUnavailable) as exc:
            errors.append(exc)
    api.expire_tokens()
    api.queue(wire.Operation.LOGIN, {"status": "INVALID_CREDENTIAL"})
    with pytest.raises(FatalConfigError) as fatal:
        await client.charge(msisdn="08131234567", amount=AMOUNT, trace_number="T2")
    errors.append(fatal.value)
    secrets = [API_KEY, CREDENTIALS, *api.issued, ticket.ticket.get_secret_value() if ticket.ticket else "?"]
    assert len(errors) == 3
    _assert_clean(caplog.text, secrets)
    _assert_clean(repr(client) + repr(settings) + repr(client._session), secrets)
    _assert_clean(" ".join(repr(e) for e in sink.events), secrets)
    _assert_clean(" ".join(repr(r) for r in results) + repr(ticket), secrets)
    _assert_clean(" ".join(str(e) + repr(e) for e in errors), secrets)
    await client.aclose()


async def test_password_mode_leaks_neither_password_nor_ciphertext(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = tmp_path / "bank.der"
    der.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    settings = make_settings(api_password=PASSWORD, api_public_key_path=str(der))
    api = FakeApi()
    api.queue(wire.Operation.LOGIN, {"status": "INVALID_NAME_OR_SECRETWORD"})
    sink = Recorder()
    client = EcashClient(settings, transport=api.transport(), sink=sink, sleep=SleepRecorder())
    with pytest.raises(FatalConfigError) as fatal:
        await client.login()
    ciphertext = api.of(wire.Operation.LOGIN)[0].headers[wire.HEADER_CREDENTIALS]
    secrets = [PASSWORD, ciphertext, API_KEY]
    _assert_clean(caplog.text + repr(client) + repr(settings) + str(fatal.value) + repr(fatal.value), secrets)
    _assert_clean(" ".join(repr(e) for e in sink.events), secrets)
    assert "INVALID_NAME_OR_SECRETWORD" in str(fatal.value)
    await client.aclose()
