"""The hostile-input run's messages and what each must get back. Pure and seeded.

Half of the messages (by default) are hostile: every kind below, drawn at random; the other half are valid
charges and credits over the demo wallets, each with its own trace number. Each message carries the
answer it must get: ``succeeded``, ``rejected`` naming a rule, or a dead letter with a reason.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from ecash_dev.sandbox.state import demo_msisdn
from worker.pipeline.key_rule import key_problem

MAX_BYTES = 16_384  # the worker's default ECASH_COMMAND_MAX_BYTES


@dataclass(frozen=True)
class Expect:
    answer: str  # "result" | "dead_letter"
    outcome: str | None = None  # succeeded | rejected (a result)
    label: str | None = None  # the rejection's rule, or the dead letter's reason
    resolved_by: str | None = None  # "journal": answered from the journal, nothing sent

    def describe(self) -> str:
        if self.answer == "dead_letter":
            return f"dead letter {self.label}"
        by = f" by {self.resolved_by}" if self.resolved_by else ""
        return f"{self.outcome}" + (f" [{self.label}]" if self.label else "") + by


@dataclass(frozen=True)
class Message:
    kind: str  # "valid" or the hostile kind
    trace_number: str  # ours, for matching; the message may not carry it
    key: bytes | None
    value: bytes | None
    expect: Expect
    headers: tuple[tuple[str, bytes], ...] = ()
    addressed_as: str | None = None  # the trace number its result carries (None: a dead letter is due)

    @property
    def hostile(self) -> bool:
        return self.kind != "valid"

    @property
    def must_execute(self) -> bool:
        """Its charge or credit must reach the API's ledger exactly once."""
        return self.expect.outcome == "succeeded" and self.expect.resolved_by is None


SUCCEEDED = Expect("result", "succeeded")


def rejected(rule: str) -> Expect:
    return Expect("result", "rejected", rule)


def dead(reason: str) -> Expect:
    return Expect("dead_letter", label=reason)


Fields = dict[str, object]
Hostile = Callable[[random.Random, str, str], tuple[bytes | None, Expect]]


def _command(trace: str, msisdn: str, changes: Fields | None = None) -> Fields:
    fields: Fields = {"type": "charge", "trace_number": trace, "msisdn": msisdn, "amount": "100"}
    fields.update(changes or {})
    return {k: v for k, v in fields.items() if v is not _DROP}


_DROP = object()


def _json(fields: object) -> bytes:
    return orjson.dumps(fields)


def _raw_amount(trace: str, msisdn: str, literal: str) -> bytes:
    return f'{{"type":"charge","trace_number":"{trace}","msisdn":"{msisdn}","amount":{literal}}}'.encode()


def _with(rule: str, **changes: object) -> Hostile:
    return lambda rng, trace, msisdn: (_json(_command(trace, msisdn, changes)), rejected(rule))


def _with_outcome(outcome: str, **changes: object) -> Hostile:
    return lambda rng, trace, msisdn: (_json(_command(trace, msisdn, changes)), Expect("result", outcome))


def _nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


HOSTILE: dict[str, Hostile] = {
    # absurd amounts: never a Decimal exception, always a rejection naming the rule
    "amount_1e400": _with("amount_exponent", amount="1e400"),
    "amount_1e30": _with("amount_exponent", amount="1e30"),
    "amount_30_digits": _with("amount_too_long", amount="123456789012345678901234567890"),
    "amount_30_digit_integer": lambda r, t, m: (
        _raw_amount(t, m, "123456789012345678901234567890"),
        rejected("amount_too_large"),
    ),
    "amount_10k_digits": _with("amount_too_long", amount="9" * 10_000),
    "amount_5000_digit_literal": lambda r, t, m: (_raw_amount(t, m, "9" * 5000), dead("number_too_large")),
    "amount_1e400_literal": lambda r, t, m: (_raw_amount(t, m, "1e400"), dead("number_too_large")),
    "amount_nan": _with("amount_not_finite", amount="NaN"),
    "amount_nan_literal": lambda r, t, m: (_raw_amount(t, m, "NaN"), dead("not_json")),
    "amount_infinity": _with("amount_not_finite", amount="-Infinity"),
    "amount_float": _with("amount_float", amount=1500.5),
    "amount_negative": _with("amount_sign", amount="-5"),
    "amount_zero": _with("amount_not_positive", amount="0.00"),
    "amount_three_decimals": _with("amount_scale", amount="1.001"),
    "amount_too_large": _with("amount_too_large", amount="1000000000"),
    "amount_comma": _with("amount_format", amount="1,500"),
    "amount_arabic_digits": _with("amount_format", amount="\u0661\u0660\u0660"),
    "amount_boolean": _with("amount_type", amount=True),
    "amount_object": _with("amount_type", amount={"value": "100"}),
    "amount_missing": _with("missing", amount=_DROP),
    # wrong types and odd values in the other fields
    "msisdn_integer": _with("string_type", msisdn=8131234567),
    "msisdn_arabic_digits": _with("string_pattern_mismatch", msisdn="\u0660\u0668\u0661\u0663" * 3),
    "msisdn_nul": _with("string_pattern_mismatch", msisdn="0813\x001234567"),
    "type_refund": _with("enum", type="refund"),
    "type_list": _with("enum", type=["charge"]),
    "trace_with_dash": lambda r, t, m: (_json(_command(f"{t}-x", m)), rejected("string_pattern_mismatch")),
    "trace_64_chars": lambda r, t, m: (
        _json(_command(t + "X" * (64 - len(t)), m)),
        rejected("string_pattern_mismatch"),
    ),
    "description_too_long": _with("string_too_long", description="d" * 256),
    "description_rtl_and_unknown_field": _with(
        "unknown_field", description="\u202e\u200b\U0001f4b8\x00", note="\ufeff"
    ),
    "expires_at_naive": _with("value_error", expires_at="2026-01-01T00:00:00"),
    "expires_at_year_99999": _with("datetime_from_date_parsing", expires_at="99999-01-01T00:00:00Z"),
    "metadata_list": _with("dict_type", metadata=[1, 2]),
    "unknown_field": _with("unknown_field", amount_cents=500),
    "unknown_field_10kb": _with("unknown_field", blob="b" * 10_000),
    # ambiguous JSON
    "duplicate_amount": lambda r, t, m: (
        f'{{"type":"charge","trace_number":"{t}","msisdn":"{m}","amount":"100","amount":"900"}}'.encode(),
        rejected("duplicate_key"),
    ),
    "duplicate_nested": lambda r, t, m: (
        f'{{"type":"charge","trace_number":"{t}","msisdn":"{m}","amount":"100",'
        f'"metadata":{{"order":1,"order":2}}}}'.encode(),
        rejected("duplicate_key"),
    ),
    "duplicate_trace_differing": lambda r, t, m: (
        f'{{"type":"charge","trace_number":"{t}","msisdn":"{m}","amount":"100","trace_number":"{t}Z"}}'.encode(),
        dead("duplicate_keys"),
    ),
    # depth and size
    "nested_40": lambda r, t, m: (
        f'{{"type":"charge","trace_number":"{t}","msisdn":"{m}","amount":"100","metadata":{_nested(40)}}}'.encode(),
        dead("too_deep"),
    ),
    "nested_5000": lambda r, t, m: (b"[" * 5000 + b"]" * 5000, dead("too_deep")),
    "metadata_big_integer": lambda r, t, m: (
        f'{{"type":"charge","trace_number":"{t}","msisdn":"{m}","amount":"100",'
        f'"metadata":{{"n":{"7" * 60}}}}}'.encode(),
        dead("number_too_large"),
    ),
    "oversize": lambda r, t, m: (
        _json(_command(t, m, {"description": "o" * (MAX_BYTES + 10)})),
        dead("oversize"),
    ),
    # not JSON, not a command, nobody to answer
    "invalid_utf8": lambda r, t, m: (b'{"type":"charge","trace_number":"\xff\xfe"}', dead("not_json")),
    "lone_surrogate": lambda r, t, m: (
        f'{{"type":"charge","trace_number":"{t}","msisdn":"{m}","amount":"100","description":"\\ud800"}}'.encode(),
        dead("not_json"),
    ),
    "bom": lambda r, t, m: (b"\xef\xbb\xbf" + _json(_command(t, m)), dead("not_json")),
    "random_bytes": lambda r, t, m: (b"\x00" + r.randbytes(r.randint(1, 200)), dead("not_json")),
    "empty": lambda r, t, m: (b"", dead("not_json")),
    "trailing_garbage": lambda r, t, m: (_json(_command(t, m)) + b" {}", dead("not_json")),
    "tombstone": lambda r, t, m: (None, dead("not_a_command")),
    "json_array": lambda r, t, m: (_json([_command(t, m)]), dead("not_a_command")),
    "json_null": lambda r, t, m: (b"null", dead("not_a_command")),
    "json_number": lambda r, t, m: (b"1e5", dead("not_a_command")),
    "no_trace_number": lambda r, t, m: (
        _json(_command(t, m, {"trace_number": _DROP})),
        dead("no_trace_number"),
    ),
    "trace_number_integer": lambda r, t, m: (
        _json(_command(t, m, {"trace_number": 12345})),
        dead("no_trace_number"),
    ),
    "trace_odd_unicode": lambda r, t, m: (
        _json(_command(t + "\u0661", m)),
        dead("no_trace_number"),
    ),
    # odd but legal: these are valid commands and must move money once (or be declined, or expire)
    "legal_odd_unicode": _with_outcome(
        "succeeded",
        description="\u202e\u200b\U0001f4b8 \x00 end",
        metadata={"\u043a\u043b\u044e\u0447": "\u503c\x00", "\ufeff": "\U0001f4b8"},
    ),
    "legal_deep_metadata": lambda r, t, m: (
        f'{{"type":"credit","trace_number":"{t}","msisdn":"{m}","amount":"100",'
        f'"metadata":{_nested(30)}}}'.encode(),
        Expect("result", "succeeded"),
    ),
    "legal_big_metadata_numbers": lambda r, t, m: (
        f'{{"type":"credit","trace_number":"{t}","msisdn":"{m}","amount":"100",'
        f'"metadata":{{"n":{"7" * 40},"f":1.7976931348623157e308,"z":-0.0}}}}'.encode(),
        Expect("result", "succeeded"),
    ),
    "legal_long_metadata": _with_outcome("succeeded", metadata={"note": "n" * 10_000}),
    "legal_integer_amount": _with_outcome("succeeded", amount=1500),
    "legal_far_future_expiry": _with_outcome("succeeded", expires_at="9999-12-31T23:59:59+14:00"),
    "legal_expired": _with_outcome("failed", expires_at="2000-01-01T00:00:00Z"),
    "legal_max_amount_declined": _with_outcome("declined", amount="999999999.99"),
    # review-decision-shaped junk
    "decision_missing_fields": lambda r, t, m: (
        _json({"type": "review_decision", "trace_number": t}),
        dead("invalid_review_decision"),
    ),
    "decision_bad_outcome": lambda r, t, m: (
        _json(
            {"type": "review_decision", "trace_number": t, "msisdn": m, "outcome": "maybe"}
            | {"decided_by": "x", "reason": "y"}
        ),
        dead("invalid_review_decision"),
    ),
    "decision_duplicate_outcome": lambda r, t, m: (
        f'{{"type":"review_decision","trace_number":"{t}","msisdn":"{m}","outcome":"failed",'
        f'"outcome":"succeeded","decided_by":"x","reason":"y"}}'.encode(),
        dead("duplicate_keys"),
    ),
    "decision_for_nothing": lambda r, t, m: (
        _json(
            {"type": "review_decision", "trace_number": t, "msisdn": m, "outcome": "succeeded"}
            | {"decided_by": "hostile", "reason": "no such command"}
        ),
        dead("review_decision_wrong_topic"),  # decisions are read from their own topic only
    ),
}


# Hostile kinds that reuse an earlier valid command's trace number (same key, so the same partition and
# lane, after it): a replay is answered from the journal; other parameters are refused. Neither executes.
REPLAYS: dict[str, Expect] = {
    "replay_of_valid": Expect("result", "succeeded", resolved_by="journal"),
    "trace_reused_other_amount": Expect("result", "rejected", resolved_by="journal"),
}


def _replay(kind: str, rng: random.Random, earlier: list[Message]) -> Message:
    original = rng.choice(earlier)
    fields = orjson.loads(original.value or b"{}")
    if kind == "trace_reused_other_amount":
        fields["amount"] = "99.99"
    return Message(
        kind, original.trace_number, original.key, _json(fields), REPLAYS[kind], (), original.trace_number
    )


def _odd_key(rng: random.Random, msisdn: str) -> bytes | None:
    return rng.choice([None, b"", b"\xff\xfe\x00", msisdn.encode(), b"k" * 1000])


def plan_messages(count: int, msisdns: int, seed: int, hostile_share: float = 0.5) -> list[Message]:
    """``count`` messages, ``hostile_share`` of them hostile (every kind at least once when there is room)."""
    rng = random.Random(seed)
    kinds = sorted([*HOSTILE, *REPLAYS])
    hostile_count = round(count * hostile_share)
    chosen = [kinds[i % len(kinds)] for i in range(min(hostile_count, len(kinds)))]
    chosen += [rng.choice(kinds) for _ in range(hostile_count - len(chosen))]
    slots = ["valid"] * (count - hostile_count) + chosen
    rng.shuffle(slots)
    messages = []
    for index, kind in enumerate(slots):
        trace = f"{'V' if kind == 'valid' else 'H'}{seed % 1000:03d}N{index:07d}"
        msisdn = demo_msisdn(rng.randint(1, msisdns))
        if kind == "valid":
            fields = {
                "type": rng.choice(("charge", "credit")),
                "trace_number": trace,
                "msisdn": msisdn,
                "amount": str(rng.randint(100, 5_000)) + rng.choice(("", ".50", ".05")),
            }
            messages.append(Message(kind, trace, msisdn.encode(), _json(fields), SUCCEEDED, (), trace))
            continue
        if kind in REPLAYS:
            earlier = [m for m in messages if not m.hostile]
            if earlier:
                messages.append(_replay(kind, rng, earlier))
                continue
            kind = "json_null"  # nothing to replay yet
        value, expect = HOSTILE[kind](rng, trace, msisdn)
        headers = (("x-hostile", rng.randbytes(8)),) if rng.random() < 0.2 else ()
        addressed_as = (
            str(orjson.loads(value or b"{}")["trace_number"]) if expect.answer == "result" else None
        )
        key = _odd_key(rng, msisdn)
        if value is None and key is None:
            key = msisdn.encode()  # Kafka takes no record without both (a tombstone has a key)
        if expect.outcome not in (None, "rejected") and (problem := key_problem(key, msisdn)) is not None:
            expect = rejected(problem[0])  # a valid command whose key is not its MSISDN (key_rule.py)
        messages.append(Message(kind, trace, key, value, expect, headers, addressed_as))
    return messages
