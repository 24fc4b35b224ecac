"""Charge and Credit through EcashClient over a scripted API (httpx.MockTransport): every path."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest
from pydantic import ValidationError

from tests.unit.ecash.fake_api import (
    AMOUNT,
    API_KEY,
    CREDENTIALS,
    FakeApi,
    SleepRecorder,
    events_of,
    make_settings,
)
from worker.ecash import wire
from worker.ecash.client import EcashClient, MoneyCallResult
from worker.ecash.codes import CallClass
from worker.ecash.errors import FatalConfigError
from worker.events import ApiCallFinished, LoginFinished, Recorder, RetryScheduled

CHARGE = wire.Operation.CHARGE
LOGIN = wire.Operation.LOGIN


def client_for(
    api: FakeApi, sink: Recorder | None = None, sleep: SleepRecorder | None = None, **settings: object
) -> EcashClient:
    return EcashClient(
        make_settings(**settings),
        transport=api.transport(),
        sink=sink or Recorder(),
        sleep=sleep or SleepRecorder(),
    )


async def charge(client: EcashClient, trace: str = "T1", **extra: object) -> MoneyCallResult:
    return await client.charge(msisdn="08131234567", amount=AMOUNT, trace_number=trace, **extra)  # type: ignore[arg-type]


async def test_a_processed_charge_succeeds_after_a_lazy_login() -> None:
    api, sink = FakeApi(), Recorder()
    client = client_for(api, sink)
    assert not client.logged_in
    result = await charge(client, transfer_type_id="42", description="order 7")
    assert result == MoneyCallResult(
        call_class=CallClass.SUCCEEDED,
        response_code="PROCESSED",
        transaction_number="20151234560989110928",
        trx_datetime="2015-08-13T14:05:31.346+07:00",
        evidence="answered PROCESSED (Transaction is success)",
        http_status=200,
        sends=1,
    )
    assert client.logged_in
    (login,) = api.of(LOGIN)
    assert login.form == {"username": "agent01"}
    assert login.headers[wire.HEADER_API_KEY] == API_KEY
    assert login.headers[wire.HEADER_CREDENTIALS] == CREDENTIALS
    (sent,) = api.of(CHARGE)
    assert sent.form == {
        "msisdn": "08131234567",
        "amount": "100000",
        "traceNumber": "T1",
        "charge_transferTypeID": "42",
        "description": "order 7",
        "token": api.issued[0],
    }
    assert sent.headers[wire.HEADER_API_KEY] == API_KEY
    assert wire.HEADER_CREDENTIALS not in sent.headers
    assert events_of(sink, LoginFinished) == [LoginFinished("login", True, "PROCESSED")]
    assert [(e.operation, e.code) for e in events_of(sink, ApiCallFinished)] == [
        ("login", "PROCESSED"),
        ("charge", "PROCESSED"),
    ]


async def test_credit_uses_its_transfer_type_field_and_reuses_the_token() -> None:
    api = FakeApi()
    client = client_for(api)
    await charge(client)
    result = await client.credit(
        msisdn="08131234567", amount=Decimal("1E+5"), trace_number="C1", transfer_type_id="9"
    )
    assert result.call_class is CallClass.SUCCEEDED
    (sent,) = api.of(wire.Operation.CREDIT)
    assert sent.form == {
        "msisdn": "08131234567",
        "amount": "100000",
        "traceNumber": "C1",
        "credit_transferTypeID": "9",
        "token": api.issued[0],
    }
    assert api.count(LOGIN) == 1


@pytest.mark.parametrize("amount", [Decimal("1.005"), Decimal("0"), 10.5])
async def test_an_amount_that_cannot_be_sent_is_refused_before_anything_is_sent(amount: object) -> None:
    api = FakeApi()
    with pytest.raises(ValidationError):
        await client_for(api).charge(msisdn="08131234567", amount=amount, trace_number="T1")  # type: ignore[arg-type]
    assert api.calls == []


@pytest.mark.parametrize(
    ("code", "reported"),
    [
        ("NOT_ENOUGH_CREDITS", "NOT_ENOUGH_CREDITS"),
        ("MEMBER_NOT_FOUND", "MEMBER_NOT_FOUND"),
        ("MAX_MONTH_AMOUNT_EXCEEDED", "MAX_MONTH_AMOUNT_EXCEEDED"),
        ("UNSUPPORTED_PROVIDER", "UNSUPPORTED PROVIDER"),
        (" to_invalid_channel ", "TO_INVALID_CHANEL"),
    ],
)
async def test_a_definite_refusal_is_declined_and_not_sent_again(code: str, reported: str) -> None:
    api = FakeApi()
    api.queue(CHARGE, {"status": code, "traceNumber": "T1"})
    result = await charge(client_for(api))
    assert result.call_class is CallClass.DECLINED
    assert result.response_code == reported
    assert result.sends == 1
    assert not result.fatal_config
    assert api.count(CHARGE) == 1


async def test_a_configuration_refusal_is_declined_and_flagged_fatal() -> None:
    api = FakeApi()
    api.queue(CHARGE, {"status": "NOT_ALLOWED"})
    result = await charge(client_for(api))
    assert (result.call_class, result.fatal_config) == (CallClass.DECLINED, True)


async def test_a_coded_answer_counts_whatever_its_http_status_below_500() -> None:
    api = FakeApi()
    api.queue(CHARGE, httpx.Response(400, json={"Status": "not_enough_credits"}))
    result = await charge(client_for(api))
    assert (result.call_class, result.response_code, result.http_status) == (
        CallClass.DECLINED,
        "NOT_ENOUGH_CREDITS",
        400,
    )


AMBIGUOUS_REPLIES: list[tuple[str, object, str]] = [
    ("general error", {"status": "GENERAL_ERROR"}, "GENERAL_ERROR (General System Error)"),
    ("failed", {"status": "FAILED"}, "FAILED (Transaction is fail)"),
    ("unknown code", {"status": "SURPRISE"}, "'SURPRISE' (not a documented response code)"),
    ("http 503", httpx.Response(503, json={"status": "PROCESSED"}), "HTTP 503 from the API"),
    ("http 500 html", httpx.Response(500, text="<html>oops</html>"), "HTTP 500 from the API"),
    ("not json", httpx.Response(200, text="<html>gateway</html>"), "not a JSON object"),
    ("a json list", httpx.Response(200, json=["PROCESSED"]), "not a JSON object"),
    ("no status", httpx.Response(200, json={"traceNumber": "T1"}), "without a status"),
    ("empty status", httpx.Response(200, json={"status": "  "}), "without a status"),
    ("read timeout", httpx.ReadTimeout("timed out"), "read timeout"),
    ("server closed", httpx.RemoteProtocolError("Server disconnected"), "closed the connection"),
    ("reset", httpx.ReadError("Connection reset by peer"), "failed while waiting for the answer"),
    ("write error", httpx.WriteError("Broken pipe"), "while the request was being written"),
    ("a bug below us", RuntimeError("boom"), "unexpected RuntimeError"),
]


@pytest.mark.parametrize(
    ("name", "reply", "evidence"), AMBIGUOUS_REPLIES, ids=[r[0] for r in AMBIGUOUS_REPLIES]
)
async def test_an_ambiguous_outcome_is_returned_with_evidence_and_never_re_sent(
    name: str, reply: object, evidence: str
) -> None:
    api, sink = FakeApi(), Recorder()
    api.queue(CHARGE, reply)  # type: ignore[arg-type]
    result = await charge(client_for(api, sink))
    assert result.call_class is CallClass.AMBIGUOUS
    assert evidence in result.evidence
    assert result.sends == 1
    assert api.count(CHARGE) == 1
    assert events_of(sink, RetryScheduled) == []


async def test_a_5xx_keeps_the_code_it_carried_as_evidence() -> None:
    api = FakeApi()
    api.queue(CHARGE, httpx.Response(502, json={"status": "GENERAL_ERROR"}))
    result = await charge(client_for(api))
    assert (result.call_class, result.response_code, result.http_status) == (
        CallClass.AMBIGUOUS,
        "GENERAL_ERROR",
        502,
    )
    assert result.evidence.startswith("HTTP 502 from the API saying GENERAL_ERROR")


async def test_not_sent_is_retried_with_backoff_without_real_sleeping() -> None:
    api, sink, sleep = FakeApi(), Recorder(), SleepRecorder()
    api.queue(CHARGE, httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"))
    result = await charge(client_for(api, sink, sleep))
    assert result.call_class is CallClass.SUCCEEDED
    assert result.sends == 1
    assert api.count(CHARGE) == 3
    assert [e.reason for e in events_of(sink, RetryScheduled)] == ["not_sent", "not_sent"]
    assert len(sleep.delays_s) == 2
    assert all(0 < d <= 5.0 for d in sleep.delays_s)


async def test_not_sent_to_the_end_is_returned_as_not_sent() -> None:
    api, sleep = FakeApi(), SleepRecorder()
    api.queue(CHARGE, *[httpx.ConnectError("Connection refused")] * 10)
    result = await charge(client_for(api, sleep=sleep, not_sent_retry_attempts=3))
    assert result.call_class is CallClass.NOT_SENT
    assert result.sends == 0
    assert result.evidence == "could not connect (Connection refused); the request was not sent"
    assert api.count(CHARGE) == 3
    assert len(sleep.delays_s) == 2


async def test_not_sent_then_ambiguous_stops_there() -> None:
    api = FakeApi()
    api.queue(CHARGE, httpx.ConnectError("refused"), httpx.ReadTimeout("slow"))
    result = await charge(client_for(api))
    assert (result.call_class, result.sends) == (CallClass.AMBIGUOUS, 1)
    assert api.count(CHARGE) == 2


async def test_token_expired_logs_in_again_and_re_sends() -> None:
    api, sink = FakeApi(), Recorder()
    client = client_for(api, sink)
    await client.login()
    api.expire_tokens()
    result = await charge(client)
    assert (result.call_class, result.sends) == (CallClass.SUCCEEDED, 2)
    assert [c.form["token"] for c in api.of(CHARGE)] == api.issued
    assert [e.kind for e in events_of(sink, LoginFinished)] == ["login", "relogin"]


async def test_token_expired_to_the_end_is_not_sent_because_the_server_refused_every_send() -> None:
    api = FakeApi()
    api.queue(CHARGE, *[{"status": "TOKEN_EXPIRED"}] * 20)
    result = await charge(client_for(api, relogin_max=2, not_sent_retry_attempts=2))
    assert result.call_class is CallClass.NOT_SENT
    assert result.response_code == "TOKEN_EXPIRED"
    assert "TOKEN_EXPIRED after 2 fresh logins" in result.evidence
    assert result.sends == api.count(CHARGE) == 2 * 3
    assert api.count(LOGIN) == 1 + 2 * 2


async def test_fifty_concurrent_callers_hitting_token_expired_cause_exactly_one_login() -> None:
    api = FakeApi()
    client = client_for(api)
    await client.login()
    api.expire_tokens()
    results = await asyncio.gather(*(charge(client, f"T{i}") for i in range(50)))
    assert all(r.call_class is CallClass.SUCCEEDED for r in results)
    assert api.count(LOGIN) == 2  # the first, and one re-login for all fifty
    assert {c.form["token"] for c in api.of(CHARGE)[50:]} == {api.issued[1]}


async def test_fifty_concurrent_first_calls_cause_exactly_one_login() -> None:
    api = FakeApi()
    client = client_for(api)
    results = await asyncio.gather(*(charge(client, f"T{i}") for i in range(50)))
    assert all(r.call_class is CallClass.SUCCEEDED for r in results)
    assert api.count(LOGIN) == 1
    assert {c.form["token"] for c in api.of(CHARGE)} == {api.issued[0]}


@pytest.mark.parametrize(
    "code", ["INVALID_CREDENTIAL", "NOT_ALLOWED", "BLOCKED", "USER_NOT_FOUND", "IPG_AUTH_FAILED"]
)
async def test_a_login_refused_for_configuration_raises_fatal_and_the_charge_is_never_sent(code: str) -> None:
    api = FakeApi()
    api.queue(LOGIN, {"status": code})
    client = client_for(api)
    with pytest.raises(FatalConfigError) as caught:
        await charge(client)
    assert caught.value.code == code
    assert code in str(caught.value)
    assert api.count(CHARGE) == 0


async def test_after_a_fatal_login_calls_stop_asking_until_an_explicit_login_works() -> None:
    api = FakeApi()
    api.queue(LOGIN, {"status": "INVALID_CREDENTIAL"})
    client = client_for(api)
    with pytest.raises(FatalConfigError):
        await charge(client, "T1")
    with pytest.raises(FatalConfigError):
        await charge(client, "T2")
    assert api.count(LOGIN) == 1  # the second charge did not try the bad credentials again
    await client.login()  # the operator fixed it
    assert (await charge(client, "T3")).call_class is CallClass.SUCCEEDED


LOGIN_FAILURES: list[tuple[str, object]] = [
    ("refused", httpx.ConnectError("refused")),
    ("read timeout", httpx.ReadTimeout("slow")),
    ("general error", {"status": "GENERAL_ERROR"}),
    ("no token", {"status": "PROCESSED"}),
    ("http 502", httpx.Response(502, text="bad gateway")),
]


@pytest.mark.parametrize(("name", "reply"), LOGIN_FAILURES, ids=[r[0] for r in LOGIN_FAILURES])
async def test_a_failed_login_means_the_charge_was_not_sent(name: str, reply: object) -> None:
    api = FakeApi()
    api.queue(LOGIN, *[reply] * 10)  # type: ignore[arg-type]
    result = await charge(client_for(api, not_sent_retry_attempts=3))
    assert result.call_class is CallClass.NOT_SENT
    assert result.sends == 0
    assert result.evidence.startswith("not sent: login failed")
    assert api.count(CHARGE) == 0
    assert api.count(LOGIN) == 3


async def test_a_failed_login_is_retried_and_then_the_charge_goes_out() -> None:
    api = FakeApi()
    api.queue(LOGIN, httpx.ConnectError("refused"))
    result = await charge(client_for(api))
    assert (result.call_class, result.sends) == (CallClass.SUCCEEDED, 1)
    assert api.count(LOGIN) == 2


async def test_relogin_failure_after_token_expired_is_not_sent() -> None:
    api = FakeApi()
    client = client_for(api, not_sent_retry_attempts=1)
    await client.login()
    api.expire_tokens()
    api.queue(LOGIN, httpx.ConnectError("refused"))
    result = await charge(client)
    assert (result.call_class, result.sends) == (CallClass.NOT_SENT, 1)  # the TOKEN_EXPIRED send went out


async def test_every_exchange_is_an_event_with_its_code_or_class() -> None:
    api, sink = FakeApi(), Recorder()
    api.queue(CHARGE, httpx.ConnectError("refused"), httpx.ReadTimeout("slow"))
    await charge(client_for(api, sink))
    events = [(e.operation, e.code, e.detail) for e in events_of(sink, ApiCallFinished)]
    assert events == [
        ("login", "PROCESSED", ""),
        ("charge", "not_sent", "connect_error"),
        ("charge", "ambiguous", "read_timeout"),
    ]
