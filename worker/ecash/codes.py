"""The response codes of section 3 and what each one means for money. Pure data and functions.

Every Charge/Credit answer, and every transport failure, ends up as one ``CallClass``:

- ``succeeded``: ``PROCESSED``, the money moved.
- ``declined``: a definite refusal with a reason; the money did not move.
- ``session_expired``: ``TOKEN_EXPIRED``, the server refused the call; log in again and re-send.
- ``not_sent``: the request provably never reached the server (connect failed); safe to send again.
- ``ambiguous``: the money may or may not have moved; only a Status Inquiry can tell.

The reasoning behind each code's class is written out in ``docs/response-codes.md``. The rule of thumb:
a code is ``declined`` only when its description names a reason the transfer *cannot* happen; generic
failures, success-like words and "already ..." codes are ``ambiguous``, because calling them declined
when the money did move is the one mistake that loses money. An unknown code is ``ambiguous``, never an
error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CATALOGUE",
    "GENERAL_ERROR",
    "LOGIN_FATAL_CODES",
    "NO_TRANSACTION",
    "PROCESSED",
    "TOKEN_EXPIRED",
    "CallClass",
    "CodeInfo",
    "canonical",
    "classify_money_code",
    "describe",
    "is_fatal_config_code",
    "is_known",
    "lookup",
]


class CallClass(StrEnum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    SESSION_EXPIRED = "session_expired"
    NOT_SENT = "not_sent"
    AMBIGUOUS = "ambiguous"


S = CallClass.SUCCEEDED
D = CallClass.DECLINED
X = CallClass.SESSION_EXPIRED
A = CallClass.AMBIGUOUS

PROCESSED = "PROCESSED"
TOKEN_EXPIRED = "TOKEN_EXPIRED"  # noqa: S105 - a response code, not a password
GENERAL_ERROR = "GENERAL_ERROR"
NO_TRANSACTION = "NO_TRANSACTION"


@dataclass(frozen=True)
class CodeInfo:
    """One code of section 3: ``row`` is its number there (row 48 holds two codes)."""

    row: int
    code: str  # the wire spelling, as printed
    description: str
    money_class: CallClass  # what it means as the answer to a Charge or a Credit
    fatal_config: bool = False  # our configuration is wrong: no call will succeed until it is fixed


_ROWS: tuple[CodeInfo, ...] = (
    CodeInfo(1, "ALREADY_REGISTERED", "Member is already registered in the system", A),
    CodeInfo(2, "BLOCKED", "Agent/member PIN is blocked by system", D),
    CodeInfo(3, "BLOCKED_GROUPID", "The current group id is blocked", D),
    CodeInfo(4, "FAILED", "Transaction is fail", A),
    CodeInfo(5, "GENERAL_ERROR", "General System Error", A),
    CodeInfo(6, "GROUP_ALREADY_UPDATED", "Current Member is already registered to destination group", A),
    CodeInfo(7, "INVALID", "Agent/member PIN is invalid", D),
    CodeInfo(8, "INVALID_CHANNELID", "Wrong channel ID", D, fatal_config=True),
    CodeInfo(9, "INVALID_CREDENTIAL", "Wrong Credentials", D, fatal_config=True),
    CodeInfo(10, "INVALID_NAME_OR_SECRETWORD", "Wrong name or Secretword", D, fatal_config=True),
    CodeInfo(11, "INVALID_OTP", "Wrong OTP", D),
    CodeInfo(12, "INVALID_PARAMETER", "Incomplete request parameter", D),
    CodeInfo(13, "INVALID_VERSION", "Wrong version", D, fatal_config=True),
    CodeInfo(14, "IPG_AUTH_FAILED", "IPG credentials failed", D, fatal_config=True),
    CodeInfo(
        15, "MAX_DAILY_AMOUNT_RECEIVER_EXCEEDED", "Receiver's Daily Credit of transaction reach limit", D
    ),
    CodeInfo(16, "MEMBER_ALREADY_REGISTERED", "Member is already registered in the system", A),
    CodeInfo(17, "MEMBER_NOT_FOUND", "Member is not registered in the system", D),
    CodeInfo(18, "MEMBER_NOT_REGISTERED", "Member is not registered in the system", D),
    CodeInfo(19, "MERCHANT_NOT_FOUND", "Merchant is not registered in the system", D),
    CodeInfo(20, "NO_TRANSACTION", "Transaction history is empty", A),
    CodeInfo(21, "NOT_ALLOWED", "Agent is not allowed to access the feature", D, fatal_config=True),
    CodeInfo(22, "NOT_ENOUGH_CREDITS", "Member has not enough credits to do transaction", D),
    CodeInfo(23, "OTP_REQUEST_FAILED_MEMBER_NOT_FOUND", "Member is not registered in the system", D),
    CodeInfo(24, "OTP_REQUEST_PROCESSED", "OTP has been succesfully created", A),
    CodeInfo(25, "OTP_VALIDATION_FAILED_INVALID_OTP", "Wrong OTP", D),
    CodeInfo(26, "OTP_VALIDATION_FAILED_OTP_ALREADY_VALIDATED", "OTP has been used", A),
    CodeInfo(27, "OTP_VALIDATION_FAILED_PHONE_NO_MISMATCH", "Wrong MSISDN on validating OTP", D),
    CodeInfo(28, "OTP_VALIDATION_PROCESSED", "OTP has been succesfully validated", A),
    CodeInfo(29, "PAYMENT_NOT_FOUND", "No payment record to reverse", A),
    CodeInfo(30, "PROCESSED", "Transaction is success", S),
    CodeInfo(31, "PROFILE_UPGRADE_FAILED", "Member upgrade is failed", A),
    CodeInfo(32, "PROVIDER_NOT_SUPPORTED", "Member telco provider is not supported", D),
    CodeInfo(
        33,
        "RECEIVER_UPPER_CREDIT_LIMIT_REACHED",
        "Destination account has reach the account limit for transfer",
        D,
    ),
    CodeInfo(34, "REQUEST_RECEIVED", "OTP has been succesfully created", A),
    CodeInfo(35, "TICKET_EXPIRED", "IPG Ticket has expired", D),
    CodeInfo(36, "TO_NOT_FOUND", "Member is not registered in the system", D),
    CodeInfo(37, "TOKEN_EXPIRED", "Agent transaction session has expired", X),
    CodeInfo(38, "TRXTYPE_NOT_FOUND", "Transaction type is not registered in the system", D),
    CodeInfo(39, "UNKNOWN_GROUPID", "Group ID is not registered in the system", D),
    CodeInfo(40, "UNKNOWN_TRXTYPE", "Transaction type is not registered in the system", D),
    CodeInfo(41, "UNREGISTERED_SERVICE", "Member is not bind to the agent", D),
    CodeInfo(42, "UNSUPPORTED PROVIDER", "Provider not exist", D),
    CodeInfo(43, "USER_NOT_FOUND", "Agent/user is not registered in the system", D),
    CodeInfo(44, "VALID", "Successfull PIN challenge", A),
    CodeInfo(45, "VALIDATION_FAILED", "Validation process failed", D),
    CodeInfo(
        46,
        "MAX_MONTH_AMOUNT_EXCEEDED",
        "Destination/member account has reach the account limit for transfer/transaction",
        D,
    ),
    CodeInfo(47, "CHANNEL_BLOCKED", "Member access channel is blocked", D),
    CodeInfo(48, "TRANSFER_TYPE_NOT_ALLOWED", "Invalid Transfer Type", D),
    CodeInfo(48, "INVALID_PARAMETERS", "Invalid user group access", D),
    CodeInfo(49, "FROM_INVALID_CHANNEL", "Invalid source channel", D),
    CodeInfo(50, "TO_INVALID_CHANEL", "Invalid destination channel", D),
    CodeInfo(51, "FROM_NOT_FOUND", "Source transfer not found", D),
)

# Other spellings the server may really use for a printed code.
_ALIASES: dict[str, str] = {
    "UNSUPPORTED_PROVIDER": "UNSUPPORTED PROVIDER",  # printed with a space
    "TO_INVALID_CHANNEL": "TO_INVALID_CHANEL",  # printed "CHANEL"
}

CATALOGUE: Mapping[str, CodeInfo] = {info.code: info for info in _ROWS}

# Codes that, as the answer to Login, mean the agent's configuration is wrong. BLOCKED and USER_NOT_FOUND
# are here but not fatal on a money call: there they may be about the member, not the agent.
LOGIN_FATAL_CODES = frozenset(
    {
        "INVALID_CREDENTIAL",
        "USER_NOT_FOUND",
        "NOT_ALLOWED",
        "IPG_AUTH_FAILED",
        "BLOCKED",
        "INVALID_NAME_OR_SECRETWORD",
        "INVALID_CHANNELID",
        "INVALID_VERSION",
    }
)


def canonical(code: str | None) -> str | None:
    """The catalogue's spelling of ``code`` (trimmed, upper-cased, aliases resolved), or None if unknown."""
    if code is None:
        return None
    key = code.strip().upper()
    key = _ALIASES.get(key, key)
    return key if key in CATALOGUE else None


def lookup(code: str | None) -> CodeInfo | None:
    key = canonical(code)
    return None if key is None else CATALOGUE[key]


def is_known(code: str | None) -> bool:
    return canonical(code) is not None


def classify_money_code(code: str | None) -> CallClass:
    """What the answer ``code`` to a Charge or a Credit means. Missing or unknown: ambiguous."""
    info = lookup(code)
    return CallClass.AMBIGUOUS if info is None else info.money_class


def is_fatal_config_code(code: str | None, *, login: bool = False) -> bool:
    """True when ``code`` says our configuration is wrong (credentials, agent rights), not the command.

    With ``login=True``, for the answer to Login, where every refusal is about the agent.
    """
    key = canonical(code)
    if key is None:
        return False
    if login:
        return key in LOGIN_FATAL_CODES
    return CATALOGUE[key].fatal_config


def describe(code: str | None) -> str:
    """A human sentence for ``code``, for evidence and logs. Never raises."""
    if code is None:
        return "no response code"
    info = lookup(code)
    if info is None:
        shown = code.strip()[:64]
        return f"{shown!r} (not a documented response code)"
    return f"{info.code} ({info.description})"
