"""A rejected command's result: built from whatever the message held, never raising, amount only if valid."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson

from worker.contracts import Outcome, Result
from worker.pipeline.intake import Rejection, parse_command
from worker.pipeline.results import rejection_result

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def rejected(message: bytes) -> Result:
    rejection = parse_command(message, max_bytes=16_384)
    assert isinstance(rejection, Rejection)
    result = rejection_result(rejection, partition=1, offset=2, now=NOW)
    assert Result.model_validate_json(result.model_dump_json()) == result  # it can be published
    return result


def test_the_poison_command_of_issue_13_gets_a_rejected_result_without_its_amount() -> None:
    result = rejected(b'{"type":"charge","trace_number":"P1","msisdn":"08131234567","amount":"1e400"}')
    assert result.outcome is Outcome.REJECTED
    assert (result.trace_number, result.msisdn, result.amount) == ("P1", "08131234567", None)
    assert "[amount_exponent]" in result.detail
    assert result.detail.endswith("nothing was sent to the API")


def test_a_valid_amount_is_echoed_on_a_rejection_for_another_reason() -> None:
    result = rejected(orjson.dumps({"type": "credit", "trace_number": "T1", "msisdn": "1", "amount": "15.5"}))
    assert result.amount == Decimal("15.5")
    assert result.model_dump(mode="json")["amount"] == "15.50"
    assert result.msisdn is None  # not a usable MSISDN: the result is keyed by the trace number


def test_hostile_metadata_is_echoed_only_when_it_is_an_object() -> None:
    result = rejected(
        b'{"type":"charge","trace_number":"T1","msisdn":"08131234567","amount":"5","x":1,'
        b'"metadata":{"big":123456789012345678901234567890,"s":"\\u0000\\u202e"}}'
    )
    # metadata values are strings in the contract: others come back as their JSON text
    assert result.metadata == {"big": "123456789012345678901234567890", "s": "\x00\u202e"}
    listed = rejected(
        b'{"type":"charge","trace_number":"T1","msisdn":"08131234567","amount":"5","metadata":[1]}'
    )
    assert listed.metadata == {}
