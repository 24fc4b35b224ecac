"""Status Inquiry and the other reads: retried when no usable answer came back, typed answers otherwise."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import httpx
import pytest

from tests.unit.ecash.fake_api import AMOUNT, FakeApi, SleepRecorder, events_of, history_entry, make_settings
from worker.ecash import wire
from worker.ecash.client import EcashClient, StatusAnswer
from worker.ecash.codes import CallClass
from worker.ecash.errors import ApiError, ApiUnavailable, FatalConfigError
from worker.events import Recorder, RetryScheduled

STATUS = wire.Operation.STATUS
HISTORY = wire.Operation.HISTORY
LOGIN = wire.Operation.LOGIN


def client_for(api: FakeApi, sink: Recorder | None = None, **settings: object) -> EcashClient:
    return EcashClient(
        make_settings(**settings), transport=api.transport(), sink=sink or Recorder(), sleep=SleepRecorder()
    )


# --- Status Inquiry ---------------------------------------------------------------------------------------


async def test_status_processed_succeeds_and_echoes_the_trace_number() -> None:
    api = FakeApi()
    answer = await client_for(api).status(trace_number="10005", amount=AMOUNT)
    assert answer == StatusAnswer(
        "PROCESSED", CallClass.SUCCEEDED, "10005", "answered PROCESSED (Transaction is success)"
    )
    (sent,) = api.of(STATUS)
    assert sent.form == {"amount": "100000", "traceNumber": "10005", "token": api.issued[0]}


async def test_status_sends_the_account_type_when_given() -> None:
    api = FakeApi()
    await client_for(api).status(trace_number="10005", amount=Decimal("1500.5"), account_type_id="2")
    assert api.of(STATUS)[0].form["accountTypeId"] == "2"
    assert api.of(STATUS)[0].form["amount"] == "1500.50"


@pytest.mark.parametrize("code", ["PAYMENT_NOT_FOUND", "GENERAL_ERROR", "FAILED", "SOMETHING_NEW"])
async def test_any_other_answered_code_is_reported_raw_with_the_declined_class(code: str) -> None:
    api = FakeApi()
    api.queue(STATUS, {"status": code, "traceNumber": "T1"})
    answer = await client_for(api).status(trace_number="T1", amount=AMOUNT)
    assert (answer.code, answer.call_class) == (code, CallClass.DECLINED)
    assert api.count(STATUS) == 1


async def test_status_is_retried_on_ambiguous_and_not_sent_alike() -> None:
    api, sink = FakeApi(), Recorder()
    api.queue(
        STATUS, httpx.ReadTimeout("slow"), httpx.Response(503, text="busy"), httpx.ConnectError("refused")
    )
    answer = await client_for(api, sink).status(trace_number="T1", amount=AMOUNT)
    assert answer.call_class is CallClass.SUCCEEDED
    assert api.count(STATUS) == 4
    assert [e.reason for e in events_of(sink, RetryScheduled)] == ["read_retry"] * 3


@pytest.mark.parametrize(
    ("reply", "call_class"),
    [(httpx.ReadTimeout("slow"), CallClass.AMBIGUOUS), (httpx.ConnectError("refused"), CallClass.NOT_SENT)],
)
async def test_status_without_a_usable_answer_after_its_retries_says_so(
    reply: Exception, call_class: CallClass
) -> None:
    api = FakeApi()
    api.queue(STATUS, *[reply] * 10)
    answer = await client_for(api, not_sent_retry_attempts=3).status(trace_number="T1", amount=AMOUNT)
    assert (answer.code, answer.call_class, answer.trace_number) == (None, call_class, None)
    assert api.count(STATUS) == 3


async def test_status_logs_in_again_on_token_expired() -> None:
    api = FakeApi()
    client = client_for(api)
    await client.login()
    api.expire_tokens()
    answer = await client.status(trace_number="T1", amount=AMOUNT)
    assert answer.call_class is CallClass.SUCCEEDED
    assert api.count(LOGIN) == 2


async def test_status_raises_only_for_a_fatal_login() -> None:
    api = FakeApi()
    api.queue(LOGIN, {"status": "INVALID_CREDENTIAL"})
    with pytest.raises(FatalConfigError):
        await client_for(api).status(trace_number="T1", amount=AMOUNT)


# --- the other reads --------------------------------------------------------------------------------------


async def test_validate_account_reads_the_examples_odd_field_case() -> None:
    api = FakeApi()
    answer = await client_for(api).validate_account("08131234567")
    assert (answer.registration_id, answer.group_id, answer.msisdn, answer.kyc) == (
        "114",
        "149",
        "08131234567",
        True,
    )
    assert api.of(wire.Operation.VALIDATE_ACCOUNT)[0].form["msisdn"] == "08131234567"


async def test_register_ticket() -> None:
    api = FakeApi()
    answer = await client_for(api).register_ticket("08787779080444")
    assert answer.ticket is not None
    assert answer.mobileno == "08787779080444"
    assert api.of(wire.Operation.REGISTER_TICKET)[0].form["mobileno"] == "08787779080444"


async def test_balance_uses_the_configured_account_unless_told_otherwise() -> None:
    api = FakeApi()
    client = client_for(api, api_account_id="6")
    answer = await client.balance("08131234567")
    assert answer.account_balance == Decimal("2300000.00")
    await client.balance("08131234567", account_id="9")
    assert [c.form["accountID"] for c in api.of(wire.Operation.BALANCE)] == ["6", "9"]


async def test_a_read_answered_with_a_refusal_raises_api_error_with_the_code() -> None:
    api = FakeApi()
    api.queue(wire.Operation.VALIDATE_ACCOUNT, {"status": "MEMBER_NOT_FOUND"})
    with pytest.raises(ApiError) as caught:
        await client_for(api).validate_account("08131234567")
    assert (caught.value.operation, caught.value.code) == ("validate_account", "MEMBER_NOT_FOUND")
    assert not caught.value.fatal_config
    assert api.count(wire.Operation.VALIDATE_ACCOUNT) == 1


async def test_a_read_without_a_usable_answer_raises_api_unavailable_after_its_retries() -> None:
    api = FakeApi()
    api.queue(wire.Operation.BALANCE, *[httpx.Response(502, text="bad gateway")] * 10)
    with pytest.raises(ApiUnavailable) as caught:
        await client_for(api, not_sent_retry_attempts=2).balance("08131234567")
    assert caught.value.call_class is CallClass.AMBIGUOUS
    assert "HTTP 502" in caught.value.evidence
    assert api.count(wire.Operation.BALANCE) == 2


async def test_history_page_reads_entries_and_sends_the_page_parameters() -> None:
    api = FakeApi()
    api.queue(
        HISTORY, {"status": "PROCESSED", "accountHistoryDetails": [history_entry("A"), history_entry("B")]}
    )
    page = await client_for(api).history_page("08131234567", date(2016, 1, 1), date(2016, 2, 1), 0, 15)
    assert [e.trace_suffix for e in page.entries] == ["A", "B"]
    assert page.is_last
    form = api.of(HISTORY)[0].form
    assert (form["currentPage"], form["pageSize"], form["accountID"]) == ("0", "15", "6")
    assert (form["startDate"], form["endDate"]) == ("2016-01-01", "2016-02-01")


async def test_no_transaction_is_an_empty_page_not_an_error() -> None:
    page = await client_for(FakeApi()).history_page("08131234567", date(2016, 1, 1), date(2016, 2, 1), 0, 15)
    assert (page.entries, page.code) == ((), "NO_TRANSACTION")


async def test_history_walks_the_pages_until_a_short_one() -> None:
    api = FakeApi()
    api.queue(
        HISTORY,
        {"status": "PROCESSED", "accountHistoryDetails": [history_entry("1"), history_entry("2")]},
        {"status": "PROCESSED", "accountHistoryDetails": [history_entry("3"), history_entry("4")]},
        {"status": "PROCESSED", "accountHistoryDetails": [history_entry("5")]},
    )
    client = client_for(api)
    entries = [
        e async for e in client.history("08131234567", date(2016, 1, 1), date(2016, 2, 1), page_size=2)
    ]
    assert [e.trace_suffix for e in entries] == ["1", "2", "3", "4", "5"]
    assert [c.form["currentPage"] for c in api.of(HISTORY)] == ["0", "1", "2"]


async def test_history_ends_on_no_transaction_after_full_pages() -> None:
    api = FakeApi()
    api.queue(
        HISTORY, {"status": "PROCESSED", "accountHistoryDetails": [history_entry("1"), history_entry("2")]}
    )
    entries = [e async for e in client_for(api).history("1", date(2016, 1, 1), date(2016, 1, 2), page_size=2)]
    assert len(entries) == 2
    assert api.count(HISTORY) == 2


async def test_history_refuses_a_server_that_ignores_the_page_number() -> None:
    api = FakeApi()
    same = {"status": "PROCESSED", "accountHistoryDetails": [history_entry("1"), history_entry("2")]}
    api.queue(HISTORY, same, same, same)
    with pytest.raises(ApiError, match="the same page came back twice"):
        _ = [e async for e in client_for(api).history("1", date(2016, 1, 1), date(2016, 1, 2), page_size=2)]


async def test_history_gives_up_after_max_pages() -> None:
    api = FakeApi()
    api.queue(
        HISTORY,
        *({"status": "PROCESSED", "accountHistoryDetails": [history_entry(str(i))]} for i in range(5)),
    )
    with pytest.raises(ApiError, match="more than 3 pages"):
        _ = [
            e
            async for e in client_for(api).history(
                "1", date(2016, 1, 1), date(2016, 1, 2), page_size=1, max_pages=3
            )
        ]


# --- session operations -------------------------------------------------------------------------------------


async def test_explicit_login_reports_transport_failure_and_refusal_distinctly() -> None:
    api = FakeApi()
    api.queue(LOGIN, httpx.ConnectError("refused"), {"status": "GENERAL_ERROR"}, {"status": "NOT_ALLOWED"})
    client = client_for(api)
    with pytest.raises(ApiUnavailable) as unavailable:
        await client.login()
    assert unavailable.value.call_class is CallClass.NOT_SENT
    with pytest.raises(ApiError) as refused:
        await client.login()
    assert refused.value.code == "GENERAL_ERROR"
    with pytest.raises(FatalConfigError, match="NOT_ALLOWED"):
        await client.login()
    assert not client.logged_in


async def test_logout_ends_the_session_with_the_token() -> None:
    api = FakeApi()
    client = client_for(api)
    await client.login()
    assert await client.logout() is True
    assert not client.logged_in
    assert api.of(wire.Operation.LOGOUT)[0].form == {"token": api.issued[0]}
    assert await client.logout() is False  # nothing to end
    assert api.count(wire.Operation.LOGOUT) == 1


async def test_closing_logs_out_and_survives_an_unreachable_api() -> None:
    api = FakeApi()
    async with client_for(api) as client:
        await client.login()
        api.queue(wire.Operation.LOGOUT, httpx.ConnectError("refused"))
    assert not client.logged_in
    assert api.count(wire.Operation.LOGOUT) == 1


async def test_closing_without_a_session_sends_nothing() -> None:
    api = FakeApi()
    await client_for(api).aclose()
    assert api.calls == []


async def test_a_closed_client_refuses_to_send_instead_of_inventing_an_outcome() -> None:
    api = FakeApi()
    client = client_for(api)
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.charge(msisdn="08131234567", amount=AMOUNT, trace_number="T1")
    assert api.calls == []
