"""The sandbox's business rules and wire shapes, with a fake clock and no sockets."""

from __future__ import annotations

import base64
import re
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import SecretStr

from ecash_dev.sandbox.state import (
    AgentConfig,
    DuplicateTracePolicy,
    Reply,
    SandboxConfig,
    SandboxState,
    WalletSpec,
    demo_msisdn,
    money,
    parse_amount,
    rupiah,
)
from worker.clock import FakeClock
from worker.ecash.wire import Operation
from worker.settings import SANDBOX_API_KEY, SANDBOX_CREDENTIALS, SANDBOX_USERNAME

MSISDN = "08131234567"
OTHER = "08139999999"


def make_state(**overrides: Any) -> tuple[SandboxState, FakeClock]:
    clock = FakeClock()
    wallets = [
        WalletSpec(msisdn=MSISDN, balance=Decimal("2300000"), name="Allyssa Soebandono", id="114"),
        WalletSpec(msisdn=OTHER, balance=Decimal("100"), upper_credit_limit=Decimal("1000")),
    ]
    config = SandboxConfig(wallets=wallets, **overrides)
    return SandboxState(config, clock), clock


def call(state: SandboxState, operation: Operation, api_key: str = SANDBOX_API_KEY, **form: str) -> Reply:
    return state.handle(operation, form, api_key=api_key)


def login(state: SandboxState) -> str:
    reply = state.handle(
        Operation.LOGIN,
        {"username": SANDBOX_USERNAME},
        api_key=SANDBOX_API_KEY,
        credentials=SANDBOX_CREDENTIALS,
    )
    assert reply.code == "PROCESSED"
    token = reply.body["token"]
    assert isinstance(token, str)
    return token


def charge(
    state: SandboxState, token: str, trace: str, amount: str = "100000", msisdn: str = MSISDN
) -> Reply:
    return call(state, Operation.CHARGE, msisdn=msisdn, amount=amount, traceNumber=trace, token=token)


def credit(state: SandboxState, token: str, trace: str, amount: str, msisdn: str = MSISDN) -> Reply:
    return call(state, Operation.CREDIT, msisdn=msisdn, amount=amount, traceNumber=trace, token=token)


# --- Login and sessions --------------------------------------------------------------------------


def test_login_answers_a_48_character_token() -> None:
    state, _ = make_state()
    token = login(state)
    assert re.fullmatch(r"[a-z0-9]{48}", token)


@pytest.mark.parametrize(
    ("username", "credentials", "code"),
    [
        (SANDBOX_USERNAME, "wrong", "INVALID_CREDENTIAL"),
        (SANDBOX_USERNAME, None, "INVALID_CREDENTIAL"),
        ("agent99", SANDBOX_CREDENTIALS, "USER_NOT_FOUND"),
        ("", SANDBOX_CREDENTIALS, "INVALID_PARAMETER"),
    ],
)
def test_login_refusals(username: str, credentials: str | None, code: str) -> None:
    state, _ = make_state()
    reply = state.handle(
        Operation.LOGIN, {"username": username}, api_key=SANDBOX_API_KEY, credentials=credentials
    )
    assert reply.body == {"status": code}
    assert "token" not in reply.body


def test_wrong_api_key_is_invalid_credential_with_the_configured_http_status() -> None:
    state, _ = make_state()
    token = login(state)
    reply = call(state, Operation.BALANCE, api_key="nope", msisdn=MSISDN, accountID="6", token=token)
    assert (reply.body, reply.http_status) == ({"status": "INVALID_CREDENTIAL"}, 200)
    state.configure(state.config.model_copy(update={"bad_api_key_http_status": 401}))
    reply = call(state, Operation.BALANCE, api_key="nope", msisdn=MSISDN, accountID="6", token=token)
    assert reply.http_status == 401


def test_token_expires_after_its_lifetime() -> None:
    state, clock = make_state(token_lifetime_s=60)
    token = login(state)
    clock.advance(59)
    assert call(state, Operation.BALANCE, msisdn=MSISDN, accountID="6", token=token).code == "PROCESSED"
    clock.advance(2)
    assert call(state, Operation.BALANCE, msisdn=MSISDN, accountID="6", token=token).code == "TOKEN_EXPIRED"


def test_zero_lifetime_tokens_never_expire() -> None:
    state, clock = make_state(token_lifetime_s=0)
    token = login(state)
    clock.advance(10 * 86_400)
    assert call(state, Operation.BALANCE, msisdn=MSISDN, accountID="6", token=token).code == "PROCESSED"


def test_logout_ends_the_session_and_an_unknown_token_is_expired() -> None:
    state, _ = make_state()
    token = login(state)
    assert call(state, Operation.LOGOUT, token=token).body == {"status": "PROCESSED"}
    assert call(state, Operation.LOGOUT, token=token).code == "TOKEN_EXPIRED"
    assert charge(state, "x" * 48, "T1").code == "TOKEN_EXPIRED"


def test_expire_all_tokens_forces_every_session_to_log_in_again() -> None:
    state, _ = make_state()
    tokens = [login(state), login(state)]
    assert state.expire_all_tokens() == 2
    assert all(charge(state, token, f"T{i}").code == "TOKEN_EXPIRED" for i, token in enumerate(tokens))
    assert state.ledger.executions == []


def test_single_session_per_agent_ends_the_earlier_session() -> None:
    state, _ = make_state(single_session_per_agent=True)
    first = login(state)
    second = login(state)
    assert charge(state, first, "T1").code == "TOKEN_EXPIRED"
    assert charge(state, second, "T2").code == "PROCESSED"


def test_a_token_works_only_with_its_own_agents_api_key() -> None:
    other = AgentConfig(username="agent02", api_key=SecretStr("k2" * 28), credentials=SecretStr("c2"))
    state, _ = make_state(agents=[*SandboxConfig().agents, other])
    token = login(state)
    assert charge(state, token, "T1").code == "PROCESSED"
    reply = call(
        state, Operation.CHARGE, api_key="k2" * 28, msisdn=MSISDN, amount="1", traceNumber="T2", token=token
    )
    assert reply.code == "TOKEN_EXPIRED"


def test_rsa_encrypted_password_is_accepted_as_credentials() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    agent = AgentConfig(username="agent01", api_key=SecretStr(SANDBOX_API_KEY), password=SecretStr("s3cret"))
    state, _ = make_state(agents=[agent], private_key_pem=SecretStr(pem.decode()))

    def credentials_for(password: str) -> str:
        return base64.b64encode(key.public_key().encrypt(password.encode(), padding.PKCS1v15())).decode()

    def login_with(credentials: str) -> str:
        form = {"username": "agent01"}
        return state.handle(Operation.LOGIN, form, api_key=SANDBOX_API_KEY, credentials=credentials).code

    assert login_with(credentials_for("s3cret")) == "PROCESSED"
    assert login_with(credentials_for("s3cret")) == "PROCESSED"  # a fresh (randomised) encryption works too
    assert login_with(credentials_for("wrong")) == "INVALID_CREDENTIAL"
    assert login_with("not-base64!") == "INVALID_CREDENTIAL"


def test_config_repr_hides_secrets() -> None:
    text = repr(SandboxConfig()) + str(SandboxConfig().model_dump(mode="json"))
    assert SANDBOX_API_KEY not in text
    assert SANDBOX_CREDENTIALS not in text


# --- Validate Account, Balance, Register Ticket ----------------------------------------------------


def test_validate_account_answers_with_the_spec_casing() -> None:
    state, _ = make_state()
    reply = call(state, Operation.VALIDATE_ACCOUNT, msisdn=MSISDN, token=login(state))
    assert reply.body == {
        "Id": "114",
        "groupID": "149",
        "Status": "PROCESSED",
        "MSISDN": MSISDN,
        "name": "Allyssa Soebandono",
        "kyc": "true",
    }


def test_unknown_member_is_not_found_unless_wallets_are_auto_created() -> None:
    state, _ = make_state()
    token = login(state)
    reply = call(state, Operation.VALIDATE_ACCOUNT, msisdn="0812000000", token=token)
    assert reply.body == {"Status": "MEMBER_NOT_FOUND", "MSISDN": "0812000000"}
    assert charge(state, token, "T1", msisdn="0812000000").code == "MEMBER_NOT_FOUND"

    state, _ = make_state(auto_create_wallets=True, default_balance=Decimal("5000"))
    reply = call(state, Operation.BALANCE, msisdn="0812000000", accountID="6", token=login(state))
    assert reply.body["accountBalance"] == "5000.00"


def test_balance_answers_string_amounts() -> None:
    state, _ = make_state()
    reply = call(state, Operation.BALANCE, msisdn=MSISDN, accountID="6", token=login(state))
    assert reply.body == {
        "accountBalance": "2300000.00",
        "status": "PROCESSED",
        "upperCreditLimit": "5000000.00",
        "reservedAmount": "0.00",
    }


def test_register_ticket_echoes_the_mobile_number() -> None:
    state, _ = make_state()
    reply = call(state, Operation.REGISTER_TICKET, mobileno="08787779080444", token=login(state))
    assert reply.body["status"] == "PROCESSED"
    assert reply.body["mobileno"] == "08787779080444"
    assert re.fullmatch(r"[a-z0-9]{49}", reply.body["ticket"])


def test_demo_wallets_are_seeded_and_restored_by_reset() -> None:
    state, _ = make_state(demo_wallets=3)
    assert {demo_msisdn(i) for i in (1, 2, 3)} <= set(state.wallets)
    assert demo_msisdn(1) == "0813000000001"
    charge(state, login(state), "T1", msisdn=demo_msisdn(1))
    state.reset()
    assert state.wallets[demo_msisdn(1)].balance == Decimal("10000000.00")
    assert state.ledger.executions == []


# --- Charge and Credit ---------------------------------------------------------------------------


def test_charge_debits_the_member_and_answers_the_spec_shape() -> None:
    state, _ = make_state()
    reply = charge(state, login(state), "2016041312050101", amount="14500")
    assert set(reply.body) == {"msisdn", "status", "traceNumber", "transactionNumber", "trxDateTime"}
    assert reply.body["status"] == "PROCESSED"
    assert reply.body["traceNumber"] == "2016041312050101"
    assert re.fullmatch(r"[0-9]{20}", reply.body["transactionNumber"])
    # FakeClock starts at 2026-01-01T00:00:00Z, which is 07:00 in WIB.
    assert reply.body["trxDateTime"] == "2026-01-01T07:00:00.000+07:00"
    assert state.wallets[MSISDN].balance == Decimal("2285500.00")


def test_credit_credits_the_member() -> None:
    state, _ = make_state()
    assert credit(state, login(state), "C1", "1500.50").code == "PROCESSED"
    assert state.wallets[MSISDN].balance == Decimal("2301500.50")
    assert state.ledger.executions[0].type is Operation.CREDIT


def test_charge_beyond_the_available_balance_is_refused_and_moves_nothing() -> None:
    state, _ = make_state()
    state.put_wallet(WalletSpec(msisdn=OTHER, balance=Decimal("100"), reserved_amount=Decimal("30")))
    token = login(state)
    reply = charge(state, token, "T1", amount="71", msisdn=OTHER)
    assert reply.body == {"msisdn": OTHER, "status": "NOT_ENOUGH_CREDITS", "traceNumber": "T1"}
    assert charge(state, token, "T2", amount="70", msisdn=OTHER).code == "PROCESSED"
    assert state.wallets[OTHER].balance == Decimal("30.00")
    assert [e.trace_number for e in state.ledger.executions] == ["T2"]


def test_credit_above_the_upper_limit_is_refused() -> None:
    state, _ = make_state()
    token = login(state)
    assert credit(state, token, "C1", "901", msisdn=OTHER).code == "RECEIVER_UPPER_CREDIT_LIMIT_REACHED"
    assert credit(state, token, "C2", "900", msisdn=OTHER).code == "PROCESSED"
    assert state.wallets[OTHER].balance == Decimal("1000.00")


@pytest.mark.parametrize("amount", ["0", "-5", "1e5", "1.234", "abc", "", "1,000", "1" * 13, " 5", "0.00"])
def test_amount_must_be_a_plain_positive_decimal(amount: str) -> None:
    state, _ = make_state()
    reply = charge(state, login(state), "T1", amount=amount)
    assert reply.code == "INVALID_PARAMETER"
    assert state.ledger.executions == []


@pytest.mark.parametrize("missing", ["msisdn", "amount", "traceNumber", "token"])
def test_a_missing_mandatory_field_is_invalid_parameter(missing: str) -> None:
    state, _ = make_state()
    form = {"msisdn": MSISDN, "amount": "1", "traceNumber": "T1", "token": login(state)}
    del form[missing]
    assert state.handle(Operation.CHARGE, form, api_key=SANDBOX_API_KEY).code == "INVALID_PARAMETER"


def test_malformed_msisdn_and_trace_number_are_invalid_parameter() -> None:
    state, _ = make_state()
    token = login(state)
    assert charge(state, token, "T1", msisdn="0813-123").code == "INVALID_PARAMETER"
    assert charge(state, token, "T-1").code == "INVALID_PARAMETER"
    assert charge(state, token, "T" * 33).code == "INVALID_PARAMETER"


def test_duplicate_trace_execute_policy_moves_money_twice_and_the_ledger_shows_it() -> None:
    state, _ = make_state()
    token = login(state)
    first = charge(state, token, "T1", amount="1000")
    second = charge(state, token, "T1", amount="1000")
    assert first.code == second.code == "PROCESSED"
    assert first.body["transactionNumber"] != second.body["transactionNumber"]
    assert state.wallets[MSISDN].balance == Decimal("2298000.00")
    assert state.ledger.duplicated() == {"T1": 2}
    assert state.stats.duplicate_attempts == 1


def test_duplicate_trace_reject_policy_answers_the_configured_code() -> None:
    state, _ = make_state(duplicate_trace=DuplicateTracePolicy.REJECT)
    token = login(state)
    charge(state, token, "T1", amount="1000")
    reply = charge(state, token, "T1", amount="1000")
    assert reply.body == {"msisdn": MSISDN, "status": "GENERAL_ERROR", "traceNumber": "T1"}
    state.configure(state.config.model_copy(update={"duplicate_reject_code": "INVALID_PARAMETER"}))
    assert charge(state, token, "T1", amount="1000").code == "INVALID_PARAMETER"
    assert len(state.ledger.executions) == 1
    assert state.wallets[MSISDN].balance == Decimal("2299000.00")


def test_duplicate_trace_replay_policy_answers_the_first_result_without_moving_money() -> None:
    state, _ = make_state(duplicate_trace=DuplicateTracePolicy.REPLAY)
    token = login(state)
    first = charge(state, token, "T1", amount="1000")
    assert charge(state, token, "T1", amount="1000").body == first.body
    assert len(state.ledger.executions) == 1


def test_a_refused_attempt_does_not_make_the_trace_number_a_duplicate() -> None:
    state, _ = make_state(duplicate_trace=DuplicateTracePolicy.REJECT)
    token = login(state)
    assert charge(state, token, "T1", amount="200", msisdn=OTHER).code == "NOT_ENOUGH_CREDITS"
    assert charge(state, token, "T1", amount="50", msisdn=OTHER).code == "PROCESSED"


# --- Status Inquiry ------------------------------------------------------------------------------


def status(state: SandboxState, token: str, trace: str, amount: str) -> Reply:
    return call(state, Operation.STATUS, token=token, amount=amount, traceNumber=trace)


def test_status_finds_a_committed_transaction() -> None:
    state, _ = make_state()
    token = login(state)
    charge(state, token, "100005", amount="100000")
    assert status(state, token, "100005", "100000.00").body == {
        "traceNumber": "100005",
        "status": "PROCESSED",
    }


def test_status_of_an_unknown_trace_or_a_different_amount_answers_the_configured_code() -> None:
    state, _ = make_state()
    token = login(state)
    charge(state, token, "T1", amount="100000")
    assert status(state, token, "T2", "100000").body == {"traceNumber": "T2", "status": "PAYMENT_NOT_FOUND"}
    assert status(state, token, "T1", "99999").code == "PAYMENT_NOT_FOUND"
    state.configure(state.config.model_copy(update={"unknown_status_code": "NO_TRANSACTION"}))
    assert status(state, token, "T2", "100000").code == "NO_TRANSACTION"


def test_status_lag_hides_a_transaction_until_it_is_old_enough() -> None:
    state, clock = make_state()
    token = login(state)
    charge(state, token, "T1", amount="5")
    form = {"token": token, "amount": "5", "traceNumber": "T1"}
    assert (
        state.handle(Operation.STATUS, form, api_key=SANDBOX_API_KEY, status_lag_s=10).code
        == "PAYMENT_NOT_FOUND"
    )
    clock.advance(10)
    assert state.handle(Operation.STATUS, form, api_key=SANDBOX_API_KEY, status_lag_s=10).code == "PROCESSED"


def test_trace_numbers_are_scoped_per_agent() -> None:
    other = AgentConfig(username="agent02", api_key=SecretStr("k2" * 28), credentials=SecretStr("c2"))
    state, _ = make_state(agents=[*SandboxConfig().agents, other])
    charge(state, login(state), "T1", amount="5")
    reply = state.handle(Operation.LOGIN, {"username": "agent02"}, api_key="k2" * 28, credentials="c2")
    token2 = reply.body["token"]
    form = {"token": token2, "amount": "5", "traceNumber": "T1"}
    assert state.handle(Operation.STATUS, form, api_key="k2" * 28).code == "PAYMENT_NOT_FOUND"


# --- Transaction History -------------------------------------------------------------------------


def history(state: SandboxState, token: str, page: str = "0", size: str = "15", **dates: str) -> Reply:
    form = {
        "msisdn": MSISDN,
        "token": token,
        "currentPage": page,
        "pageSize": size,
        "accountID": "6",
        "startDate": dates.get("start", "2026-01-01"),
        "endDate": dates.get("end", "2026-01-31"),
    }
    return state.handle(Operation.HISTORY, form, api_key=SANDBOX_API_KEY)


def test_history_entries_use_the_spec_formats_newest_first() -> None:
    state, clock = make_state(token_lifetime_s=0)
    token = login(state)
    charge(state, token, "20160630123471", amount="14500")
    clock.advance(3600)
    credit(state, token, "20160630123472", "1000")
    reply = history(state, token)
    assert reply.code == "PROCESSED"
    newest, oldest = reply.body["accountHistoryDetails"]
    assert newest["amount"] == "Rp 1.000,00"
    assert oldest["amount"] == "Rp -14.500,00"
    assert newest["traceNumber"] == "agent01-20160630123472"
    assert newest["transactionDate"] == "01/01/2026"
    assert newest["trxDateTime"] == "2026-01-01T08:00:00+07:00"
    assert newest["description"] == "Credit 20160630123472"
    assert newest["privateFields"] == {}
    expected_keys = {
        "amount",
        "username",
        "parentTransactionNumber",
        "description",
        "transferType",
        "name",
        "transactionNumber",
        "transactionDate",
        "trxDateTime",
        "transferTypeID",
        "privateFields",
        "status",
        "traceNumber",
    }
    assert set(newest) == expected_keys


def test_history_pages_from_zero_and_filters_by_inclusive_dates() -> None:
    state, clock = make_state(token_lifetime_s=0)
    token = login(state)
    for day in range(5):  # 2026-01-01 .. 2026-01-05 (WIB)
        charge(state, token, f"D{day}", amount="1")
        clock.advance(86_400)
    traces = [e["traceNumber"] for e in history(state, token, size="2").body["accountHistoryDetails"]]
    assert traces == ["agent01-D4", "agent01-D3"]
    page2 = history(state, token, page="2", size="2").body["accountHistoryDetails"]
    assert [e["traceNumber"] for e in page2] == ["agent01-D0"]
    assert history(state, token, page="3", size="2").body == {"status": "NO_TRANSACTION"}
    window = history(state, token, start="2026-01-02", end="2026-01-03").body["accountHistoryDetails"]
    assert [e["traceNumber"] for e in window] == ["agent01-D2", "agent01-D1"]


def test_history_without_transactions_and_with_bad_dates() -> None:
    state, _ = make_state()
    token = login(state)
    assert history(state, token).body == {"status": "NO_TRANSACTION"}
    assert history(state, token, start="2026-02-01", end="2026-01-01").code == "INVALID_PARAMETER"
    assert history(state, token, start="01/01/2026").code == "INVALID_PARAMETER"
    assert history(state, token, size="0").code == "INVALID_PARAMETER"


# --- formatting helpers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("-14500", "Rp -14.500,00"),
        ("1000", "Rp 1.000,00"),
        ("1234567.5", "Rp 1.234.567,50"),
        ("0.5", "Rp 0,50"),
    ],
)
def test_rupiah_formatting(value: str, text: str) -> None:
    assert rupiah(Decimal(value)) == text


def test_money_and_amount_parsing() -> None:
    assert money(Decimal("2300000")) == "2300000.00"
    assert parse_amount("100000") == Decimal("100000")
    assert parse_amount("1500.5") == Decimal("1500.5")
    assert parse_amount("0") is None
