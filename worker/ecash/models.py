"""Requests and answers of the nine operations, and the client's result types.

Requests are strict: what we send is checked before it leaves (an amount that would be rounded is
refused). Answers are tolerant, because the document's own examples disagree with it: field names in
any case (``Status``/``status``, ``MSISDN``/``msisdn``, ``Id``/``id``), ``kyc`` as the string ``"true"``,
amounts as ``"2300000.00"`` or ``"Rp -14.500,00"``, dates as ``dd/mm/yyyy``, timestamps with an offset.
A value we cannot read becomes None (the raw text is kept where the format is known to vary); it never
makes the whole answer unreadable. The session adds the token to every request but Login.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from worker.ecash import wire
from worker.ecash.amounts import AmountError, parse_amount, wire_amount
from worker.ecash.codes import CallClass, is_fatal_config_code

__all__ = [
    "WIB",
    "ApiAnswer",
    "BalanceRequest",
    "BalanceResponse",
    "ChargeRequest",
    "ChargeResponse",
    "CreditRequest",
    "CreditResponse",
    "HistoryEntry",
    "HistoryPage",
    "HistoryRequest",
    "HistoryResponse",
    "LoginRequest",
    "LoginResponse",
    "LogoutRequest",
    "LogoutResponse",
    "MoneyCallResult",
    "MoneyResponse",
    "Msisdn",
    "OptionalId",
    "RegisterTicketRequest",
    "RegisterTicketResponse",
    "StatusAnswer",
    "StatusRequest",
    "StatusResponse",
    "Text",
    "TraceNumber",
    "ValidateAccountRequest",
    "ValidateAccountResponse",
    "WireAmount",
    "WireDate",
    "WireFlag",
    "WireModel",
    "WireRequest",
    "WireTimestamp",
    "parse_wire_date",
    "parse_wire_timestamp",
]

WIB = timezone(timedelta(hours=7), "WIB")  # the API's local time, assumed when a timestamp has no offset


# --- tolerant value parsers ----------------------------------------------------------------------------


def _text(value: object) -> object:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    return None


def _amount(value: object) -> Decimal | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, float):
        value = repr(value)  # the API wrote a JSON number; keep its digits, not a binary float
    if not isinstance(value, str | int | Decimal):
        return None
    try:
        return parse_amount(value)
    except AmountError:
        return None


def _flag(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return bool(value)
    if isinstance(value, str):
        folded = value.strip().lower()
        if folded in {"true", "1", "yes", "y"}:
            return True
        if folded in {"false", "0", "no", "n"}:
            return False
    return None


def parse_wire_date(value: object) -> date | None:
    """``"01/07/2016"`` (dd/mm/yyyy, as in history) or ``"2016-07-01"`` -> date; else None."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    for fmt in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).date()  # a calendar date: no time zone
        except ValueError:
            continue
    return None


def parse_wire_timestamp(value: object) -> datetime | None:
    """``"2016-07-01T16:37:45+07:00"``, ``"2015-08-13T14:05:31.346+07:00"`` -> aware datetime; else None.

    A timestamp without an offset is taken as WIB (+07:00), the API's local time."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=WIB)


Text = Annotated[str | None, BeforeValidator(_text)]
WireAmount = Annotated[Decimal | None, BeforeValidator(_amount)]
WireFlag = Annotated[bool | None, BeforeValidator(_flag)]
WireDate = Annotated[date | None, BeforeValidator(parse_wire_date)]
WireTimestamp = Annotated[datetime | None, BeforeValidator(parse_wire_timestamp)]


# --- answers -------------------------------------------------------------------------------------------


class WireModel(BaseModel):
    """An answer: field names matched whatever their case; unknown fields kept in ``model_extra``."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    # raw-text field -> the wire field it copies (its parsed twin reads the same wire field)
    RAW_COPIES: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _fold_case(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        by_folded = {(f.alias or n).lower(): (f.alias or n) for n, f in cls.model_fields.items()}
        out: dict[str, Any] = {
            k: v for k, v in data.items() if isinstance(k, str) and k in by_folded.values()
        }
        for key, value in data.items():
            if not isinstance(key, str):
                continue
            out.setdefault(by_folded.get(key.lower(), key), value)
        for raw_field, wire_name in cls.RAW_COPIES.items():
            raw = out.get(wire_name)
            out[raw_field] = raw if isinstance(raw, str) else _text(raw)
        return out


class ApiAnswer(WireModel):
    status: Text = None


class LoginResponse(ApiAnswer):
    token: SecretStr | None = None

    @field_validator("token", mode="before")
    @classmethod
    def _token_text(cls, value: object) -> object:
        return value if isinstance(value, str | SecretStr) else None


class LogoutResponse(ApiAnswer):
    pass


class ValidateAccountResponse(ApiAnswer):
    msisdn: Text = None
    group_id: Text = Field(None, alias="groupID")
    name: Text = None
    registration_id: Text = Field(None, alias="id")  # "registration index number"
    kyc: WireFlag = None


class RegisterTicketResponse(ApiAnswer):
    ticket: SecretStr | None = None  # a bearer value for the member's web registration: kept secret
    mobileno: Text = None

    @field_validator("ticket", mode="before")
    @classmethod
    def _ticket_text(cls, value: object) -> object:
        return value if isinstance(value, str | SecretStr) else None


class BalanceResponse(ApiAnswer):
    account_balance: WireAmount = Field(None, alias="accountBalance")
    upper_credit_limit: WireAmount = Field(None, alias="upperCreditLimit")
    reserved_amount: WireAmount = Field(None, alias="reservedAmount")


class HistoryEntry(WireModel):
    """One line of Transaction History. ``trace_number`` comes back as ``<agent>-<our trace number>``."""

    RAW_COPIES: ClassVar[dict[str, str]] = {"amount_raw": "amount", "trx_datetime_raw": "trxDateTime"}

    amount: WireAmount = None
    amount_raw: str | None = None
    username: Text = None
    parent_transaction_number: Text = Field(None, alias="parentTransactionNumber")
    description: Text = None
    transfer_type: Text = Field(None, alias="transferType")
    name: Text = None
    transaction_number: Text = Field(None, alias="transactionNumber")
    transaction_date: WireDate = Field(None, alias="transactionDate")
    trx_datetime: WireTimestamp = Field(None, alias="trxDateTime")
    trx_datetime_raw: str | None = None
    transfer_type_id: Text = Field(None, alias="transferTypeID")
    private_fields: dict[str, Any] = Field(default_factory=dict, alias="privateFields")
    status: Text = None
    trace_number: Text = Field(None, alias="traceNumber")

    @field_validator("private_fields", mode="before")
    @classmethod
    def _object_or_empty(cls, value: object) -> object:
        return value if isinstance(value, Mapping) else {}

    @property
    def trace_suffix(self) -> str | None:
        """The trace number without the agent prefix: ``"001-20160630123472"`` -> ``"20160630123472"``."""
        if self.trace_number is None:
            return None
        _, sep, rest = self.trace_number.partition("-")
        return rest if sep else self.trace_number


class HistoryResponse(ApiAnswer):
    account_history_details: list[HistoryEntry] = Field(default_factory=list, alias="accountHistoryDetails")

    @field_validator("account_history_details", mode="before")
    @classmethod
    def _entries(cls, value: object) -> object:
        if isinstance(value, Mapping):
            return [value]
        if isinstance(value, list):
            return [item for item in value if isinstance(item, Mapping)]
        return []


class StatusResponse(ApiAnswer):
    trace_number: Text = Field(None, alias="traceNumber")


class MoneyResponse(ApiAnswer):
    """The answer to Charge or Credit."""

    RAW_COPIES: ClassVar[dict[str, str]] = {"trx_datetime_raw": "trxDateTime"}

    msisdn: Text = None
    trace_number: Text = Field(None, alias="traceNumber")
    transaction_number: Text = Field(None, alias="transactionNumber")
    trx_datetime: WireTimestamp = Field(None, alias="trxDateTime")
    trx_datetime_raw: str | None = None


class ChargeResponse(MoneyResponse):
    pass


class CreditResponse(MoneyResponse):
    pass


# --- requests ------------------------------------------------------------------------------------------

Msisdn = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^\+?[0-9]+$")]
TraceNumber = Annotated[str, Field(min_length=1, max_length=64)]
OptionalId = Annotated[str, Field(min_length=1, max_length=32)] | None


class WireRequest(BaseModel):
    """A request's own fields; ``form(token)`` adds the session token (every operation but Login)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    operation: ClassVar[wire.Operation]

    def fields(self) -> dict[str, str]:
        raise NotImplementedError

    def form(self, token: SecretStr) -> dict[str, str]:
        return {**self.fields(), wire.F_TOKEN: token.get_secret_value()}


class _MoneyAmount(WireRequest):
    amount: Decimal

    @field_validator("amount", mode="before")
    @classmethod
    def _no_float(cls, value: object) -> object:
        if isinstance(value, float | bool):
            raise ValueError("amount must be a Decimal, an integer or a decimal string, never a float")
        return value

    @field_validator("amount")
    @classmethod
    def _sendable(cls, value: Decimal) -> Decimal:
        wire_amount(value)  # raises with the reason when the API could not be sent this amount as is
        return value


class LoginRequest(WireRequest):
    operation: ClassVar[wire.Operation] = wire.Operation.LOGIN
    username: Annotated[str, Field(min_length=1)]

    def fields(self) -> dict[str, str]:
        return {wire.F_USERNAME: self.username}

    def form(self, token: SecretStr | None = None) -> dict[str, str]:
        return self.fields()  # Login carries the Credentials header instead of a token


class LogoutRequest(WireRequest):
    operation: ClassVar[wire.Operation] = wire.Operation.LOGOUT

    def fields(self) -> dict[str, str]:
        return {}


class ValidateAccountRequest(WireRequest):
    operation: ClassVar[wire.Operation] = wire.Operation.VALIDATE_ACCOUNT
    msisdn: Msisdn

    def fields(self) -> dict[str, str]:
        return {wire.F_MSISDN: self.msisdn}


class RegisterTicketRequest(WireRequest):
    operation: ClassVar[wire.Operation] = wire.Operation.REGISTER_TICKET
    mobileno: Msisdn

    def fields(self) -> dict[str, str]:
        return {wire.F_MOBILENO: self.mobileno}


class BalanceRequest(WireRequest):
    operation: ClassVar[wire.Operation] = wire.Operation.BALANCE
    msisdn: Msisdn
    account_id: Annotated[str, Field(min_length=1)]

    def fields(self) -> dict[str, str]:
        return {wire.F_MSISDN: self.msisdn, wire.F_ACCOUNT_ID: self.account_id}


class HistoryRequest(WireRequest):
    operation: ClassVar[wire.Operation] = wire.Operation.HISTORY
    msisdn: Msisdn
    current_page: Annotated[int, Field(ge=0)]
    page_size: Annotated[int, Field(ge=1, le=10_000)]
    account_id: Annotated[str, Field(min_length=1)]
    start_date: date
    end_date: date

    @model_validator(mode="after")
    def _ordered(self) -> HistoryRequest:
        if self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        return self

    def fields(self) -> dict[str, str]:
        return {
            wire.F_MSISDN: self.msisdn,
            wire.F_CURRENT_PAGE: str(self.current_page),
            wire.F_PAGE_SIZE: str(self.page_size),
            wire.F_ACCOUNT_ID: self.account_id,
            wire.F_START_DATE: self.start_date.isoformat(),
            wire.F_END_DATE: self.end_date.isoformat(),
        }


class StatusRequest(_MoneyAmount):
    operation: ClassVar[wire.Operation] = wire.Operation.STATUS
    trace_number: TraceNumber
    account_type_id: OptionalId = None

    def fields(self) -> dict[str, str]:
        form = {wire.F_AMOUNT: wire_amount(self.amount), wire.F_TRACE_NUMBER: self.trace_number}
        if self.account_type_id is not None:
            form[wire.F_ACCOUNT_TYPE_ID] = self.account_type_id
        return form


class ChargeRequest(_MoneyAmount):
    operation: ClassVar[wire.Operation] = wire.Operation.CHARGE
    msisdn: Msisdn
    trace_number: TraceNumber
    transfer_type_id: OptionalId = None
    description: Annotated[str, Field(max_length=255)] | None = None

    def fields(self) -> dict[str, str]:
        form = {
            wire.F_MSISDN: self.msisdn,
            wire.F_AMOUNT: wire_amount(self.amount),
            wire.F_TRACE_NUMBER: self.trace_number,
        }
        if self.transfer_type_id is not None:
            form[wire.F_CHARGE_TRANSFER_TYPE] = self.transfer_type_id
        if self.description is not None:
            form[wire.F_DESCRIPTION] = self.description
        return form


class CreditRequest(_MoneyAmount):
    operation: ClassVar[wire.Operation] = wire.Operation.CREDIT
    msisdn: Msisdn
    trace_number: TraceNumber
    transfer_type_id: OptionalId = None

    def fields(self) -> dict[str, str]:
        form = {
            wire.F_MSISDN: self.msisdn,
            wire.F_AMOUNT: wire_amount(self.amount),
            wire.F_TRACE_NUMBER: self.trace_number,
        }
        if self.transfer_type_id is not None:
            form[wire.F_CREDIT_TRANSFER_TYPE] = self.transfer_type_id
        return form


# --- what the client returns ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MoneyCallResult:
    """The outcome of one Charge or Credit, after the client's own safe retries.

    ``call_class`` is never ``session_expired`` (re-login happens inside). ``not_sent``: provably never
    executed, safe to send again. ``ambiguous``: the money may have moved; ask Status Inquiry, never
    re-send blindly. ``sends`` counts the requests that may have reached the server.
    """

    call_class: CallClass
    response_code: str | None
    transaction_number: str | None
    trx_datetime: str | None
    evidence: str
    http_status: int | None
    sends: int

    @property
    def fatal_config(self) -> bool:
        """The answer says our configuration is wrong (e.g. NOT_ALLOWED): every call will fail alike."""
        return is_fatal_config_code(self.response_code)


@dataclass(frozen=True)
class StatusAnswer:
    """The answer to one Status Inquiry (after bounded retries).

    ``succeeded`` when PROCESSED; ``declined`` for any other answered code (kept raw in ``code``: the
    caller decides what "not found" is); ``not_sent``/``ambiguous`` when no usable answer came back.
    """

    code: str | None
    call_class: CallClass
    trace_number: str | None  # as echoed by the server
    evidence: str


@dataclass(frozen=True)
class HistoryPage:
    entries: tuple[HistoryEntry, ...]
    current_page: int
    page_size: int
    code: str  # PROCESSED, or NO_TRANSACTION for an empty history

    @property
    def is_last(self) -> bool:
        return len(self.entries) < self.page_size
