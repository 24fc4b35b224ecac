"""``JournalRecord.resolution`` is a typed model (``ResolutionRecord``) with the JSON it had as a ``dict``.

The records below were written by the worker before the change (``JournalRecord.model_dump_json()`` with
``resolution=state.to_dict()``, at commit 06dc19c): a resolution just started (nulls, no history), one
after a resubmit with a not-found streak, and one whose last answer was an uncorroborated PROCESSED
(``evidence``, and ``("other", "PROCESSED")`` in the history). A record in the journal today must read
back to the same state and be written back byte for byte.

A corrupt resolution is now refused when the record is read (``Journal.get``), where it used to be
refused when the resolution resumed (``ResolutionState.from_dict``): no worker writes one.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from worker.core.resolution import (
    ResolutionPolicy,
    ResolutionRecord,
    ResolutionState,
    StatusObservation,
    apply_answer,
    uncorroborated,
)
from worker.pipeline.journal import JournalRecord

_HEAD = (
    '{"trace_number":"T1","fingerprint":"ffffffffffffffff","state":"resolving","command":{"schema_version":1,'
    '"type":"charge","trace_number":"T1","msisdn":"08131234567","amount":"100000","transfer_type_id":null,'
    '"account_type_id":null,"description":null,"expires_at":null,"metadata":{}},"partition":3,"offset":42,'
    '"timestamp_ms":null,"sends":1,'
)
_TAIL = ',"result":null,"updated_at":"2026-12-06T22:00:00Z"}'
T0 = 1765000000.25

JUST_STARTED = (
    _HEAD + '"resubmits":0,"attempts":[],"resolution":{"v":1,"started_at_s":1765000000.25,"inquiries":0,'
    '"consecutive_not_found":0,"first_not_found_at_s":null,"resubmits":0,"last_answer":null,"history":[]}'
    + _TAIL
)
NOT_FOUND_AFTER_RESUBMIT = (
    _HEAD + '"resubmits":1,"attempts":[],"resolution":{"v":1,"started_at_s":1765000000.25,"inquiries":2,'
    '"consecutive_not_found":1,"first_not_found_at_s":1765000020.75,"resubmits":1,"last_answer":"not_found",'
    '"history":[[1765000015.75,"ambiguous",null],[1765000020.75,"not_found","PAYMENT_NOT_FOUND"]]}' + _TAIL
)
UNCORROBORATED = (
    _HEAD + '"resubmits":1,"attempts":[],"resolution":{"v":1,"started_at_s":1765000040.25,"inquiries":1,'
    '"consecutive_not_found":0,"first_not_found_at_s":null,"resubmits":1,"last_answer":"other",'
    '"history":[[1765000016.25,"not_found","NO_TRANSACTION"],[1765000056.25,"other","PROCESSED"]],'
    '"evidence":"History shows no transaction T1 for 08131234567"}' + _TAIL
)
EVIDENCE = "History shows no transaction T1 for 08131234567"

WRITTEN_BEFORE = {
    "just_started": (JUST_STARTED, ResolutionState(started_at_s=T0)),
    "not_found_after_resubmit": (
        NOT_FOUND_AFTER_RESUBMIT,
        ResolutionState(
            started_at_s=T0,
            inquiries=2,
            consecutive_not_found=1,
            first_not_found_at_s=T0 + 20.5,
            resubmits=1,
            last_answer="not_found",
            history=((T0 + 15.5, "ambiguous", None), (T0 + 20.5, "not_found", "PAYMENT_NOT_FOUND")),
        ),
    ),
    "uncorroborated": (
        UNCORROBORATED,
        ResolutionState(
            started_at_s=T0 + 40,
            inquiries=1,
            resubmits=1,
            # a journaled PROCESSED is never believed on resume: it reads back as uncorroborated
            last_answer="uncorroborated",
            history=((T0 + 16, "not_found", "NO_TRANSACTION"), (T0 + 56, "uncorroborated", "PROCESSED")),
            evidence=EVIDENCE,
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(WRITTEN_BEFORE))
def test_a_record_written_before_reads_back_to_its_state(name: str) -> None:
    text, expected = WRITTEN_BEFORE[name]
    record = JournalRecord.model_validate_json(text)
    assert isinstance(record.resolution, ResolutionRecord)
    assert ResolutionState.from_record(record.resolution) == expected
    assert ResolutionState.from_dict(record.resolution.model_dump(mode="json")) == expected


@pytest.mark.parametrize("name", sorted(WRITTEN_BEFORE))
def test_a_record_written_before_is_written_back_byte_for_byte(name: str) -> None:
    text, expected = WRITTEN_BEFORE[name]
    assert JournalRecord.model_validate_json(text).model_dump_json() == text
    # and the state it reads back to journals the same resolution again
    record = JournalRecord.model_validate_json(text)
    assert record.model_copy(update={"resolution": expected.to_record()}).model_dump_json() == text


def _states() -> list[ResolutionState]:
    policy = ResolutionPolicy(not_found_policy="resubmit", resubmit_max=2)
    started = ResolutionState.start(T0, resubmits=2)
    one, _ = apply_answer(policy, started, StatusObservation("not_sent", None), T0 + 15)
    two, _ = apply_answer(policy, one, StatusObservation("not_found", "NO_TRANSACTION"), T0 + 16)
    three, _ = apply_answer(policy, two, uncorroborated(EVIDENCE), T0 + 26)
    again = three.resubmitted(T0 + 60)
    return [started, one, two, three, again]


@pytest.mark.parametrize("index", range(5))
def test_a_state_round_trips_through_a_journal_record(index: int) -> None:
    state = _states()[index]
    record = JournalRecord.model_validate_json(JUST_STARTED).model_copy(
        update={"resolution": state.to_record()}
    )
    text = record.model_dump_json()
    back = JournalRecord.model_validate_json(text)
    assert back.resolution is not None
    assert ResolutionState.from_record(back.resolution) == state
    assert back.model_dump_json() == text
    assert back.resolution.model_dump(mode="json") == state.to_dict()


def test_no_resolution_is_null_and_evidence_is_left_out_when_there_is_none() -> None:
    record = JournalRecord.model_validate_json(JUST_STARTED).model_copy(update={"resolution": None})
    assert '"resolution":null' in record.model_dump_json()
    assert "evidence" not in ResolutionState.start(T0).to_dict()
    assert ResolutionState.start(T0).to_dict()["first_not_found_at_s"] is None


def test_a_key_this_worker_does_not_know_is_kept() -> None:
    newer = JUST_STARTED.replace('"history":[]', '"history":[],"from_a_newer_worker":7')
    assert JournalRecord.model_validate_json(newer).model_dump_json() == newer


@pytest.mark.parametrize(
    "corrupt",
    ['"started_at_s":"yesterday"', '"inquiries":true', '"inquiries":-1', '"last_answer":"maybe"'],
)
def test_a_corrupt_resolution_is_refused_when_the_record_is_read(corrupt: str) -> None:
    key = corrupt.split(":")[0]
    original = next(part for part in JUST_STARTED.split(",") if part.startswith(key))
    with pytest.raises(ValidationError, match=r"resolution\.\w+"):
        JournalRecord.model_validate_json(JUST_STARTED.replace(original, corrupt, 1))
