"""A scriptable in-memory E-Cash API behind ``httpx.MockTransport``: no sockets, every call recorded.

By default it behaves like the spec's examples: Login issues a fresh token, every other call with a
current token is PROCESSED. ``queue(operation, reply, ...)`` scripts the next replies of an operation: a
JSON dict, an ``httpx.Response``, an exception to raise (a transport failure), or a callable taking the
call. ``expire_tokens()`` makes every issued token answer TOKEN_EXPIRED.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar
from urllib.parse import parse_qsl

import httpx

from worker.ecash import wire
from worker.events import Recorder
from worker.settings import Settings

BASE_URL = "http://ecash.test/eCashHost"
API_KEY = "unit-test-api-key-0123456789abcdef0123456789abcdef012345"
CREDENTIALS = "unit-test-pre-encrypted-credentials"

OPERATION_BY_PATH = {"/eCashHost" + path: op for op, path in wire.PATHS.items()}


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "api_base_url": BASE_URL,
        "api_key": API_KEY,
        "api_credentials": CREDENTIALS,
        "api_username": "agent01",
        "not_sent_retry_attempts": 4,
        "relogin_max": 2,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@dataclass
class Call:
    operation: wire.Operation
    form: dict[str, str]
    headers: httpx.Headers


Reply = Mapping[str, object] | httpx.Response | Exception | Callable[["Call"], "Reply"]


@dataclass
class FakeApi:
    api_key: str = API_KEY
    calls: list[Call] = field(default_factory=list)
    valid_tokens: set[str] = field(default_factory=set)
    issued: list[str] = field(default_factory=list)
    scripts: dict[wire.Operation, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))
    yield_each_call: bool = True

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def queue(self, operation: wire.Operation, *replies: Reply) -> None:
        self.scripts[operation].extend(replies)

    def expire_tokens(self) -> None:
        self.valid_tokens.clear()

    def of(self, operation: wire.Operation) -> list[Call]:
        return [call for call in self.calls if call.operation is operation]

    def count(self, operation: wire.Operation) -> int:
        return len(self.of(operation))

    async def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        operation = OPERATION_BY_PATH[request.url.path]
        call = Call(operation, dict(parse_qsl((await request.aread()).decode())), request.headers)
        self.calls.append(call)
        if self.yield_each_call:
            await asyncio.sleep(0)  # let concurrent callers interleave, as over a network
        script = self.scripts[operation]
        reply: Reply = script.popleft() if script else self._default
        while callable(reply):
            reply = reply(call)
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, httpx.Response):
            return reply
        return httpx.Response(200, json=dict(reply))

    def _default(self, call: Call) -> dict[str, object]:
        if call.headers.get(wire.HEADER_API_KEY) != self.api_key:
            return {"status": "INVALID_CREDENTIAL"}
        if call.operation is wire.Operation.LOGIN:
            token = f"token-{len(self.issued) + 1:042d}"
            self.issued.append(token)
            self.valid_tokens.add(token)
            return {"status": "PROCESSED", "token": token}
        if call.form.get(wire.F_TOKEN) not in self.valid_tokens:
            return {"status": "TOKEN_EXPIRED"}
        return ANSWERS[call.operation](call)


def _money(call: Call) -> dict[str, object]:
    return {
        "msisdn": call.form[wire.F_MSISDN],
        "status": "PROCESSED",
        "traceNumber": call.form[wire.F_TRACE_NUMBER],
        "transactionNumber": "20151234560989110928",
        "trxDateTime": "2015-08-13T14:05:31.346+07:00",
    }


ANSWERS: dict[wire.Operation, Callable[[Call], dict[str, object]]] = {
    wire.Operation.LOGOUT: lambda call: {"status": "PROCESSED"},
    wire.Operation.VALIDATE_ACCOUNT: lambda call: {
        "Id": "114",
        "groupID": "149",
        "Status": "PROCESSED",
        "MSISDN": call.form[wire.F_MSISDN],
        "name": "Allyssa Soebandono",
        "kyc": "true",
    },
    wire.Operation.REGISTER_TICKET: lambda call: {
        "ticket": "k5grvj9j9ptsuvg5ysumf75sfpkd78uc31ts5yrpuywnmoxhc",
        "status": "PROCESSED",
        "mobileno": call.form[wire.F_MOBILENO],
    },
    wire.Operation.BALANCE: lambda call: {
        "accountBalance": "2300000.00",
        "status": "PROCESSED",
        "upperCreditLimit": "5000000.00",
        "reservedAmount": "0.00",
    },
    wire.Operation.HISTORY: lambda call: {"status": "NO_TRANSACTION"},
    wire.Operation.STATUS: lambda call: {
        "traceNumber": call.form[wire.F_TRACE_NUMBER],
        "status": "PROCESSED",
    },
    wire.Operation.CHARGE: _money,
    wire.Operation.CREDIT: _money,
}


def history_entry(trace: str, amount: str = "Rp 1.000,00") -> dict[str, object]:
    return {
        "status": "PROCESSED",
        "traceNumber": f"001-{trace}",
        "amount": amount,
        "transactionNumber": f"TX{trace}",
        "transactionDate": "30/06/2016",
        "trxDateTime": "2016-06-30T11:43:31+07:00",
        "privateFields": {},
    }


E = TypeVar("E")


def events_of(sink: Recorder, kind: type[E]) -> list[E]:
    return [event for event in sink.events if isinstance(event, kind)]


async def no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


class SleepRecorder:
    def __init__(self) -> None:
        self.delays_s: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays_s.append(seconds)
        await asyncio.sleep(0)


AMOUNT = Decimal("100000")
