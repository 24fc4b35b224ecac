"""A TLS failure with the bank is our configuration: a fatal error naming ECASH_API_BASE_URL, never an
outage (``not_sent``) that would open the breaker, and nothing is sent."""

from __future__ import annotations

import ssl
from decimal import Decimal

import aiohttp
import httpx
import pytest

from tests.unit.ecash.fake_api import FakeApi, SleepRecorder, make_settings
from worker.ecash import wire
from worker.ecash.client import EcashClient
from worker.ecash.errors import FatalConfigError
from worker.ecash.transport import tls_failure
from worker.events import ApiCallFinished, Recorder


def _connect_error_from(cause: BaseException) -> httpx.ConnectError:
    try:
        raise httpx.ConnectError("handshake failed") from cause
    except httpx.ConnectError as exc:
        return exc


def _verify_error() -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "self-signed certificate"
    return error


def test_the_tls_cause_is_found_behind_either_transport() -> None:
    assert (
        tls_failure(_connect_error_from(_verify_error()))
        == "certificate verify failed: self-signed certificate"
    )
    assert tls_failure(_connect_error_from(ssl.SSLError(1, "WRONG_VERSION_NUMBER"))) is not None
    assert tls_failure(httpx.ConnectError("refused")) is None
    key = aiohttp.client_reqrep.ConnectionKey("bank", 443, True, True, None, None, None)
    aio = aiohttp.ClientConnectorCertificateError(key, _verify_error())
    assert tls_failure(_connect_error_from(aio)) == "certificate verify failed: self-signed certificate"


@pytest.mark.parametrize("call", ["login", "charge"])
async def test_a_certificate_failure_is_fatal_configuration_and_not_an_api_failure(call: str) -> None:
    api, sink = FakeApi(), Recorder()
    api.queue(wire.Operation.LOGIN, _connect_error_from(_verify_error()))
    client = EcashClient(make_settings(), transport=api.transport(), sink=sink, sleep=SleepRecorder())
    attempt = (
        client.login()
        if call == "login"
        else client.charge(msisdn="08131234567", amount=Decimal(1000), trace_number="T1")
    )
    with pytest.raises(FatalConfigError) as info:
        await attempt
    assert str(info.value).startswith("ECASH_API_BASE_URL: TLS with http://ecash.test/eCashHost")
    assert "certificate verify failed" in str(info.value)
    assert not [e for e in sink.events if isinstance(e, ApiCallFinished)]  # the breaker learns nothing
    assert api.of(wire.Operation.CHARGE) == []
