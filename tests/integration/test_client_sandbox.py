"""The client against the sandbox over a real socket: a scripted session, single-flight re-login, secrets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from ecash_dev.sandbox.server import RunningSandbox, serve_sandbox
from ecash_dev.sandbox.state import SandboxConfig, WalletSpec
from worker.ecash.client import EcashClient
from worker.ecash.codes import CallClass
from worker.ecash.errors import FatalConfigError
from worker.events import LoginFinished, Recorder
from worker.settings import SANDBOX_API_KEY, SANDBOX_CREDENTIALS, TransportKind, load_settings

MEMBER = "08131234567"


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    config = SandboxConfig(wallets=[WalletSpec(msisdn=MEMBER, balance=Decimal("2300000.00"), name="Allyssa")])
    async with serve_sandbox(config) as running:
        yield running


@pytest.mark.parametrize("kind", list(TransportKind))
async def test_a_scripted_session_uses_all_nine_operations(
    sandbox: RunningSandbox, kind: TransportKind
) -> None:
    settings = load_settings(api_base_url=sandbox.base_url, http_transport=kind)
    async with EcashClient(settings) as client:
        await client.login()
        account = await client.validate_account(MEMBER)
        assert account.name == "Allyssa"
        balance = await client.balance(MEMBER)
        assert balance.account_balance == Decimal("2300000.00")
        charge = await client.charge(msisdn=MEMBER, amount=Decimal("100000"), trace_number="2016041312050101")
        assert charge.call_class is CallClass.SUCCEEDED
        assert charge.transaction_number
        credit = await client.credit(msisdn=MEMBER, amount=Decimal("1000"), trace_number="2016041312050102")
        assert credit.call_class is CallClass.SUCCEEDED
        status = await client.status(trace_number="2016041312050101", amount=Decimal("100000"))
        assert status.code == "PROCESSED"
        unknown = await client.status(trace_number="999", amount=Decimal("1"))
        assert unknown.code == "PAYMENT_NOT_FOUND"
        assert charge.trx_datetime is not None
        start = datetime.fromisoformat(charge.trx_datetime).date() - timedelta(days=1)
        entries = [e async for e in client.history(MEMBER, start, start + timedelta(days=2), page_size=1)]
        assert {e.trace_suffix for e in entries} == {"2016041312050101", "2016041312050102"}
        assert sorted(e.amount for e in entries if e.amount is not None) == [
            Decimal("-100000"),
            Decimal("1000"),
        ]
        ticket = await client.register_ticket("08787779080444")
        assert ticket.ticket is not None
        assert ticket.ticket.get_secret_value()
        assert await client.logout() is True
    assert sandbox.state.wallets[MEMBER].balance == Decimal("2300000.00") - 100000 + 1000


async def test_fifty_concurrent_callers_on_an_expired_token_cause_exactly_one_login(
    sandbox: RunningSandbox,
) -> None:
    settings = load_settings(api_base_url=sandbox.base_url)
    recorder = Recorder()
    async with EcashClient(settings, sink=recorder) as client:
        await client.login()
        logins_before = sandbox.state.stats.logins
        sandbox.state.expire_all_tokens()
        answers = await asyncio.gather(
            *(client.balance(MEMBER) for _ in range(50)),
        )
        assert all(a.account_balance == Decimal("2300000.00") for a in answers)
        assert sandbox.state.stats.logins - logins_before == 1
    relogins = [e for e in recorder.events if isinstance(e, LoginFinished) and e.kind == "relogin"]
    assert len(relogins) == 1


async def test_bad_credentials_are_fatal_and_secrets_stay_out_of_logs_and_errors(
    sandbox: RunningSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = load_settings(api_base_url=sandbox.base_url, api_credentials="my-secret-credential-value")
    async with EcashClient(settings) as client:
        with pytest.raises(FatalConfigError) as info:
            await client.login()
        assert info.value.code == "INVALID_CREDENTIAL"
        good = load_settings(api_base_url=sandbox.base_url)
        async with EcashClient(good) as other:
            await other.login()
            token = other._session._token
            text = caplog.text + repr(other) + repr(good) + str(info.value) + repr(info.value)
    for secret in ("my-secret-credential-value", SANDBOX_API_KEY, SANDBOX_CREDENTIALS):
        assert secret not in text
    if token is not None:
        assert token.get_secret_value() not in text
