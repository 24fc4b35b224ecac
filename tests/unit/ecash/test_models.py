"""Every literal example of the spec (shared/spec/ecash-h2h-api.md), as requests built and answers read."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import SecretStr, ValidationError

from worker.ecash.models import (
    BalanceRequest,
    BalanceResponse,
    ChargeRequest,
    ChargeResponse,
    CreditRequest,
    CreditResponse,
    HistoryEntry,
    HistoryRequest,
    HistoryResponse,
    LoginRequest,
    LoginResponse,
    LogoutRequest,
    LogoutResponse,
    RegisterTicketRequest,
    RegisterTicketResponse,
    StatusRequest,
    StatusResponse,
    ValidateAccountRequest,
    ValidateAccountResponse,
    parse_wire_date,
    parse_wire_timestamp,
)

WIB = timezone(timedelta(hours=7))
LOGIN_TOKEN = "esr5656hka2osxj73f9s8jcw53b1d3ertqf43k8xq2xsypvk"
EXAMPLE_TOKEN = SecretStr("v4rp0v0f0idcxslliug8k64gh80eaxe88npc1gryq2cyn6qo")

# --- requests ---------------------------------------------------------------------------------------------


def test_login_request_sends_only_the_username() -> None:
    assert LoginRequest(username="agent01").form() == {"username": "agent01"}


def test_logout_request_sends_only_the_token() -> None:
    assert LogoutRequest().form(SecretStr(LOGIN_TOKEN)) == {"token": LOGIN_TOKEN}


def test_validate_account_request() -> None:
    form = ValidateAccountRequest(msisdn="08131234567").form(EXAMPLE_TOKEN)
    assert form == {"msisdn": "08131234567", "token": EXAMPLE_TOKEN.get_secret_value()}


def test_register_ticket_request_accepts_the_examples_14_digit_number() -> None:
    form = RegisterTicketRequest(mobileno="08787779080444").form(EXAMPLE_TOKEN)
    assert form["mobileno"] == "08787779080444"


def test_balance_request() -> None:
    form = BalanceRequest(msisdn="08131234567", account_id="6").form(EXAMPLE_TOKEN)
    assert form == {"msisdn": "08131234567", "accountID": "6", "token": EXAMPLE_TOKEN.get_secret_value()}


def test_history_request_writes_dates_as_yyyy_mm_dd() -> None:
    request = HistoryRequest(
        msisdn="08131234567",
        current_page=0,
        page_size=15,
        account_id="6",
        start_date=date(2016, 1, 1),
        end_date=date(2016, 2, 1),
    )
    assert request.form(EXAMPLE_TOKEN) == {
        "msisdn": "08131234567",
        "currentPage": "0",
        "pageSize": "15",
        "accountID": "6",
        "startDate": "2016-01-01",
        "endDate": "2016-02-01",
        "token": EXAMPLE_TOKEN.get_secret_value(),
    }


def test_history_request_refuses_an_end_before_the_start() -> None:
    with pytest.raises(ValidationError):
        HistoryRequest(
            msisdn="1",
            current_page=0,
            page_size=1,
            account_id="6",
            start_date=date(2016, 2, 1),
            end_date=date(2016, 1, 1),
        )


def test_status_request_sends_account_type_only_when_given() -> None:
    plain = StatusRequest(amount=Decimal("100000"), trace_number="10005").form(SecretStr(LOGIN_TOKEN))
    assert plain == {"amount": "100000", "traceNumber": "10005", "token": LOGIN_TOKEN}
    typed = StatusRequest(amount=Decimal("100000"), trace_number="10005", account_type_id="3").fields()
    assert typed["accountTypeId"] == "3"


def test_charge_request() -> None:
    request = ChargeRequest(
        msisdn="08131234567",
        amount=Decimal("100000"),
        trace_number="2016041312050101",
        transfer_type_id="42",
        description="order 7",
    )
    assert request.form(EXAMPLE_TOKEN) == {
        "msisdn": "08131234567",
        "amount": "100000",
        "traceNumber": "2016041312050101",
        "charge_transferTypeID": "42",
        "description": "order 7",
        "token": EXAMPLE_TOKEN.get_secret_value(),
    }


def test_credit_request_uses_its_own_transfer_type_field_and_has_no_description() -> None:
    request = CreditRequest(
        msisdn="08131234567", amount=Decimal("1E+5"), trace_number="001002", transfer_type_id="9"
    )
    assert request.fields() == {
        "msisdn": "08131234567",
        "amount": "100000",
        "traceNumber": "001002",
        "credit_transferTypeID": "9",
    }
    with pytest.raises(ValidationError):
        CreditRequest(msisdn="1", amount=Decimal(1), trace_number="t", description="x")  # type: ignore[call-arg]


def test_optional_fields_are_left_out_when_not_given() -> None:
    fields = ChargeRequest(msisdn="08131234567", amount=Decimal("1500.50"), trace_number="T1").fields()
    assert fields == {"msisdn": "08131234567", "amount": "1500.50", "traceNumber": "T1"}


@pytest.mark.parametrize("amount", [Decimal("1.005"), Decimal("0"), Decimal("-5"), 100000.0, "abc"])
def test_an_amount_that_cannot_be_sent_as_is_is_refused_before_sending(amount: object) -> None:
    with pytest.raises(ValidationError):
        ChargeRequest(msisdn="08131234567", amount=amount, trace_number="T1")


def test_the_token_goes_into_the_form_at_send_time_and_never_into_the_request() -> None:
    request = StatusRequest(amount=Decimal(1), trace_number="T")
    assert request.form(SecretStr(LOGIN_TOKEN))["token"] == LOGIN_TOKEN
    assert LOGIN_TOKEN not in repr(request) + str(request.model_dump())


# --- answers ----------------------------------------------------------------------------------------------


def test_login_response() -> None:
    answer = LoginResponse.model_validate_json(f'{{"status":"PROCESSED","token":"{LOGIN_TOKEN}"}}')
    assert answer.status == "PROCESSED"
    assert answer.token is not None
    assert answer.token.get_secret_value() == LOGIN_TOKEN
    assert LOGIN_TOKEN not in repr(answer)


def test_logout_response() -> None:
    assert LogoutResponse.model_validate_json('{"status":"PROCESSED"}').status == "PROCESSED"


def test_validate_account_response_with_the_examples_field_case_and_string_kyc() -> None:
    answer = ValidateAccountResponse.model_validate_json(
        '{"Id":"114","groupID":"149","Status":"PROCESSED","MSISDN":"08131234567",'
        '"name":"Allyssa Soebandono","kyc":"true"}'
    )
    assert answer.status == "PROCESSED"
    assert answer.registration_id == "114"
    assert answer.group_id == "149"
    assert answer.msisdn == "08131234567"
    assert answer.name == "Allyssa Soebandono"
    assert answer.kyc is True


@pytest.mark.parametrize(
    ("kyc", "value"), [("false", False), (True, True), ("1", True), ("maybe", None), (None, None)]
)
def test_kyc_flags(kyc: object, value: bool | None) -> None:
    assert ValidateAccountResponse.model_validate({"status": "PROCESSED", "kyc": kyc}).kyc is value


def test_register_ticket_response_keeps_the_ticket_secret() -> None:
    answer = RegisterTicketResponse.model_validate_json(
        '{"ticket":"k5grvj9j9ptsuvg5ysumf75sfpkd78uc31ts5yrpuywnmoxhc","status":"PROCESSED",'
        '"mobileno":"08787779080444"}'
    )
    assert answer.ticket is not None
    assert answer.ticket.get_secret_value() == "k5grvj9j9ptsuvg5ysumf75sfpkd78uc31ts5yrpuywnmoxhc"
    assert answer.mobileno == "08787779080444"
    assert "k5grvj" not in repr(answer)


def test_balance_response_amounts_are_decimals() -> None:
    answer = BalanceResponse.model_validate_json(
        '{"accountBalance":"2300000.00","status":"PROCESSED","upperCreditLimit":"5000000.00","reservedAmount":"0.00"}'
    )
    assert answer.account_balance == Decimal("2300000.00")
    assert answer.upper_credit_limit == Decimal("5000000.00")
    assert answer.reserved_amount == Decimal("0.00")


def test_an_unreadable_amount_becomes_none_and_the_answer_is_still_read() -> None:
    answer = BalanceResponse.model_validate(
        {"status": "PROCESSED", "accountBalance": "lots", "reservedAmount": 12.5}
    )
    assert answer.status == "PROCESSED"
    assert answer.account_balance is None
    assert answer.reserved_amount == Decimal("12.5")


def test_status_response_with_the_examples_echoed_trace_number() -> None:
    answer = StatusResponse.model_validate_json('{"traceNumber":"100005","status":"PROCESSED"}')
    assert (answer.status, answer.trace_number) == ("PROCESSED", "100005")


@pytest.mark.parametrize("model", [ChargeResponse, CreditResponse])
def test_charge_and_credit_responses_with_millisecond_timestamps(model: type[ChargeResponse]) -> None:
    answer = model.model_validate_json(
        '{"msisdn":"08131234567","status":"PROCESSED","traceNumber":"001002",'
        '"transactionNumber":"20151234560989110928","trxDateTime":"2015-08-13T14:05:31.346+07:00"}'
    )
    assert answer.status == "PROCESSED"
    assert answer.msisdn == "08131234567"
    assert answer.trace_number == "001002"
    assert answer.transaction_number == "20151234560989110928"
    assert answer.trx_datetime_raw == "2015-08-13T14:05:31.346+07:00"
    assert answer.trx_datetime == datetime(2015, 8, 13, 14, 5, 31, 346000, tzinfo=WIB)


# The history example of the document is not well-formed JSON: its first entry is garbled beyond
# recovery; these are the entries that can be read back from it.
HISTORY_ENTRY_2 = (
    '{"parentTransactionNumber": "", "status": "PROCESSED", "transferType": "Kirim e-cash", '
    '"transferTypeID": "362", "transactionDate": "01/07/2016", "amount": "Rp -5.000,00", '
    '"username": "0899109987492", "traceNumber": "001-12346203022209089", "privateFields": {}, '
    '"description": "Transfer 12346203022209089", "name": "Risma", "transactionNumber": '
    '"20160701234992163745", "trxDateTime": "2016-07-01T16:37:45+07:00"}'
)
HISTORY_ENTRY_TAIL = (
    '{"transferTypeID": "283", "transactionDate": "30/06/2016", "amount": "Rp 1.000,00", '
    '"username": "001", "traceNumber": "001-20160630123472", "privateFields": {}, "description": '
    '"Credit 123472", "name": "", "transactionNumber": "20160630233950114331", '
    '"trxDateTime": "2016-06-30T11:43:31+07:00"}'
)
HISTORY_ENTRY_1_FRAGMENTS = {
    "parentTransactionNumber": "",
    "transactionDate": "01/07/2016",
    "amount": "Rp -14.500,00",
    "transferTypeID": "258",
    "privateFields": {"nama_rek_tujuan_bank_transfer": "KOKO", "norekbanktujuan": "123456789"},
    "description": "Kirim ke Rekening Mandiri",
}


def test_history_page_of_the_example_once_its_missing_brackets_are_closed() -> None:
    text = '{"status": "PROCESSED", "accountHistoryDetails": [' + HISTORY_ENTRY_2 + "]}"
    answer = HistoryResponse.model_validate_json(text)
    assert answer.status == "PROCESSED"
    (entry,) = answer.account_history_details
    assert entry.amount == Decimal("-5000.00")
    assert entry.amount_raw == "Rp -5.000,00"
    assert entry.transfer_type == "Kirim e-cash"
    assert entry.transfer_type_id == "362"
    assert entry.transaction_date == date(2016, 7, 1)
    assert entry.trx_datetime == datetime(2016, 7, 1, 16, 37, 45, tzinfo=WIB)
    assert entry.trx_datetime_raw == "2016-07-01T16:37:45+07:00"
    assert entry.username == "0899109987492"
    assert entry.name == "Risma"
    assert entry.parent_transaction_number == ""
    assert entry.trace_number == "001-12346203022209089"
    assert entry.trace_suffix == "12346203022209089"
    assert entry.private_fields == {}


def test_history_entry_whose_head_was_lost_in_the_document() -> None:
    entry = HistoryEntry.model_validate(json.loads(HISTORY_ENTRY_TAIL))
    assert entry.amount == Decimal("1000.00")
    assert entry.transaction_date == date(2016, 6, 30)
    assert entry.trace_suffix == "20160630123472"
    assert entry.description == "Credit 123472"
    assert entry.transaction_number == "20160630233950114331"
    assert entry.transfer_type is None  # lost with the head


def test_history_entry_with_the_garbled_first_entrys_readable_fields() -> None:
    entry = HistoryEntry.model_validate(HISTORY_ENTRY_1_FRAGMENTS)
    assert entry.amount == Decimal("-14500.00")
    assert entry.private_fields["nama_rek_tujuan_bank_transfer"] == "KOKO"
    assert entry.private_fields["norekbanktujuan"] == "123456789"
    assert entry.description == "Kirim ke Rekening Mandiri"


def test_history_tolerates_a_missing_list_a_single_object_and_junk_items() -> None:
    assert HistoryResponse.model_validate({"status": "NO_TRANSACTION"}).account_history_details == []
    assert (
        HistoryResponse.model_validate({"status": "X", "accountHistoryDetails": None}).account_history_details
        == []
    )
    single = HistoryResponse.model_validate({"accountHistoryDetails": json.loads(HISTORY_ENTRY_TAIL)})
    assert len(single.account_history_details) == 1
    mixed = HistoryResponse.model_validate(
        {"accountHistoryDetails": [1, "x", json.loads(HISTORY_ENTRY_TAIL)]}
    )
    assert len(mixed.account_history_details) == 1


def test_trace_suffix_splits_at_the_first_dash_only() -> None:
    assert HistoryEntry.model_validate({"traceNumber": "001-ABC-9"}).trace_suffix == "ABC-9"
    assert HistoryEntry.model_validate({"traceNumber": "20160630123472"}).trace_suffix == "20160630123472"
    assert HistoryEntry.model_validate({}).trace_suffix is None


def test_field_names_match_in_any_case_and_the_exact_spelling_wins() -> None:
    answer = StatusResponse.model_validate({"STATUS": "PROCESSED", "TRACENUMBER": "7"})
    assert (answer.status, answer.trace_number) == ("PROCESSED", "7")
    both = StatusResponse.model_validate({"Status": "GENERAL_ERROR", "status": "PROCESSED"})
    assert both.status == "PROCESSED"


def test_unknown_fields_are_kept_not_refused() -> None:
    answer = StatusResponse.model_validate({"status": "PROCESSED", "newField": 1})
    assert answer.model_extra == {"newField": 1}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("01/07/2016", date(2016, 7, 1)),
        ("2016-07-01", date(2016, 7, 1)),
        ("31/02/2016", None),
        ("yesterday", None),
        (None, None),
    ],
)
def test_wire_dates(text: str | None, value: date | None) -> None:
    assert parse_wire_date(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2016-07-01T16:37:45+07:00", datetime(2016, 7, 1, 16, 37, 45, tzinfo=WIB)),
        ("2015-08-13T14:05:31.346+07:00", datetime(2015, 8, 13, 14, 5, 31, 346000, tzinfo=WIB)),
        ("2016-07-01T16:37:45", datetime(2016, 7, 1, 16, 37, 45, tzinfo=WIB)),
        ("2016-07-01T09:37:45Z", datetime(2016, 7, 1, 9, 37, 45, tzinfo=UTC)),
        ("not a time", None),
        ("", None),
    ],
)
def test_wire_timestamps_are_aware_and_default_to_wib(text: str, value: datetime | None) -> None:
    assert parse_wire_timestamp(text) == value
