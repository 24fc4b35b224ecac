"""The E-Cash H2H wire format, as the spec prints it (``shared/spec/ecash-h2h-api.md``).

Shared by the client and the sandbox so that the two cannot disagree on a path or a field name.
Every call is POST, ``application/x-www-form-urlencoded``, answered with JSON.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "F_ACCOUNT_ID",
    "F_ACCOUNT_TYPE_ID",
    "F_AMOUNT",
    "F_CHARGE_TRANSFER_TYPE",
    "F_CREDIT_TRANSFER_TYPE",
    "F_CURRENT_PAGE",
    "F_DESCRIPTION",
    "F_END_DATE",
    "F_MOBILENO",
    "F_MSISDN",
    "F_PAGE_SIZE",
    "F_START_DATE",
    "F_TOKEN",
    "F_TRACE_NUMBER",
    "F_USERNAME",
    "HEADER_API_KEY",
    "HEADER_CREDENTIALS",
    "MONEY_OPERATIONS",
    "PATHS",
    "Operation",
]

HEADER_API_KEY = "APIKey"
HEADER_CREDENTIALS = "Credentials"  # on Login only


class Operation(StrEnum):
    LOGIN = "login"
    LOGOUT = "logout"
    VALIDATE_ACCOUNT = "validate_account"
    REGISTER_TICKET = "register_ticket"
    BALANCE = "balance"
    HISTORY = "history"
    STATUS = "status"
    CHARGE = "charge"
    CREDIT = "credit"


# Paths below the base URL (which ends in /eCashHost). Note the lower-case ``getRegisterTicket``.
PATHS: dict[Operation, str] = {
    Operation.LOGIN: "/SessionManager/Login",
    Operation.LOGOUT: "/SessionManager/Logout",
    Operation.VALIDATE_ACCOUNT: "/NonTransactionManager/ValidateAccount",
    Operation.REGISTER_TICKET: "/NonTransactionManager/getRegisterTicket",
    Operation.BALANCE: "/NonTransactionManager/BalanceInquiry",
    Operation.HISTORY: "/NonTransactionManager/TransactionHistory",
    Operation.STATUS: "/NonTransactionManager/Status",
    Operation.CHARGE: "/TransactionManager/Charge",
    Operation.CREDIT: "/TransactionManager/Credit",
}

# Form field names, exactly as printed.
F_USERNAME = "username"
F_TOKEN = "token"  # noqa: S105 - a field name, not a password
F_MSISDN = "msisdn"
F_MOBILENO = "mobileno"
F_ACCOUNT_ID = "accountID"  # Balance Inquiry, Transaction History
F_ACCOUNT_TYPE_ID = "accountTypeId"  # Status Inquiry (optional)
F_AMOUNT = "amount"
F_TRACE_NUMBER = "traceNumber"
F_CURRENT_PAGE = "currentPage"
F_PAGE_SIZE = "pageSize"
F_START_DATE = "startDate"  # yyyy-mm-dd
F_END_DATE = "endDate"
F_DESCRIPTION = "description"  # optional on Charge (v1.3)
F_CHARGE_TRANSFER_TYPE = "charge_transferTypeID"
F_CREDIT_TRANSFER_TYPE = "credit_transferTypeID"

MONEY_OPERATIONS = frozenset({Operation.CHARGE, Operation.CREDIT})
