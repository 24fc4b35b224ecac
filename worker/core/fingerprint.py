"""The fingerprint of a command: a hash of exactly the parameters that move money.

Stored in the journal with the trace number; a later command with the same trace number and a different
fingerprint is refused (``trace_reused``) instead of being mistaken for a redelivery.
"""

from __future__ import annotations

import hashlib
import json

from worker.contracts import Command, format_amount

__all__ = ["FINGERPRINT_HEX_CHARS", "FINGERPRINT_VERSION", "fingerprint"]

FINGERPRINT_VERSION = 1
FINGERPRINT_HEX_CHARS = 32


def fingerprint(command: Command) -> str:
    """sha256 (first 32 hex chars) of type, MSISDN, amount, transfer type and account type.

    The amount is normalized (``100000`` == ``100000.00``). Description, metadata, expires_at and the
    trace number itself are left out: changing them does not change what money moves.
    """
    money = {
        "v": FINGERPRINT_VERSION,
        "type": command.type.value,
        "msisdn": command.msisdn,
        "amount": format_amount(command.amount),
        "transfer_type_id": command.transfer_type_id,
        "account_type_id": command.account_type_id,
    }
    canonical = json.dumps(money, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()[:FINGERPRINT_HEX_CHARS]
