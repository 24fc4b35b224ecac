"""The session: one Login for many waiting callers, shared failures, and how answers are judged."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from pydantic import SecretStr

from tests.unit.ecash.fake_api import BASE_URL, FakeApi, make_settings
from worker.clock import FakeClock
from worker.ecash import wire
from worker.ecash.codes import CallClass
from worker.ecash.credentials import CredentialsProvider
from worker.ecash.errors import FatalConfigError, LoginFailed
from worker.ecash.session import ApiSession, read_answer
from worker.events import LoginFinished, Recorder

LOGIN = wire.Operation.LOGIN


def session_for(api: FakeApi, sink: Recorder | None = None) -> ApiSession:
    settings = make_settings()
    http = httpx.AsyncClient(base_url=BASE_URL, transport=api.transport())
    return ApiSession(
        settings,
        http,
        CredentialsProvider.from_settings(settings),
        sink=sink or Recorder(),
        clock=FakeClock(),
    )


async def test_concurrent_callers_without_a_token_share_one_login() -> None:
    api = FakeApi()
    session = session_for(api)
    tokens = await asyncio.gather(*(session.token() for _ in range(20)))
    assert {t.get_secret_value() for t in tokens} == {api.issued[0]}
    assert api.count(LOGIN) == 1


async def test_concurrent_callers_share_a_failed_login_instead_of_each_trying() -> None:
    api = FakeApi()
    api.queue(LOGIN, httpx.ConnectError("refused"))
    session = session_for(api)
    outcomes = await asyncio.gather(*(session.token() for _ in range(20)), return_exceptions=True)
    assert all(isinstance(o, LoginFailed) for o in outcomes)
    assert api.count(LOGIN) == 1
    assert (await session.token()).get_secret_value() == api.issued[0]  # a later call tries again


async def test_a_renewal_for_a_token_already_replaced_makes_no_login() -> None:
    api = FakeApi()
    session = session_for(api)
    old = await session.token()
    new = await session.renew(old)
    assert await session.renew(old) is new
    assert api.count(LOGIN) == 2


async def test_renewals_racing_for_the_same_failed_token_make_one_login() -> None:
    api = FakeApi()
    session = session_for(api)
    old = await session.token()
    renewed = await asyncio.gather(*(session.renew(old) for _ in range(30)))
    assert len({id(t) for t in renewed}) == 1
    assert api.count(LOGIN) == 2


async def test_a_fatal_refusal_is_shared_and_remembered() -> None:
    api, sink = FakeApi(), Recorder()
    api.queue(LOGIN, {"status": "IPG_AUTH_FAILED"})
    session = session_for(api, sink)
    outcomes = await asyncio.gather(*(session.token() for _ in range(5)), return_exceptions=True)
    assert all(isinstance(o, FatalConfigError) for o in outcomes)
    with pytest.raises(FatalConfigError):
        await session.renew(SecretStr("whatever"))
    assert api.count(LOGIN) == 1
    assert sink.of(LoginFinished) == [LoginFinished("login", False, "IPG_AUTH_FAILED")]


def _response(status: int, **kwargs: object) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("POST", BASE_URL), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("response", "failure", "code", "reason"),
    [
        (_response(200, json={"status": "PROCESSED"}), None, "PROCESSED", ""),
        (_response(200, json={"Status": " NOT_ENOUGH_CREDITS "}), None, "NOT_ENOUGH_CREDITS", ""),
        (_response(404, json={"status": "MEMBER_NOT_FOUND"}), None, "MEMBER_NOT_FOUND", ""),
        (_response(500, json={"status": "PROCESSED"}), CallClass.AMBIGUOUS, "PROCESSED", "http_5xx"),
        (_response(404, text="Not Found"), CallClass.AMBIGUOUS, None, "not_json"),
        (_response(200, content=b"\xff\xfe"), CallClass.AMBIGUOUS, None, "not_json"),
        (_response(200, json={"status": 7}), CallClass.AMBIGUOUS, None, "no_status"),
        (_response(200, json={"status": "X" * 500}), None, "X" * 64, ""),
    ],
)
def test_answers_are_judged_by_http_status_shape_and_code(
    response: httpx.Response, failure: CallClass | None, code: str | None, reason: str
) -> None:
    exchange = read_answer(wire.Operation.CHARGE, response)
    assert (exchange.failure, exchange.code, exchange.reason) == (failure, code, reason)
    assert exchange.http_status == response.status_code


async def test_a_finished_call_is_freed_at_once_without_the_cycle_collector() -> None:
    """httpx leaves every sent response in a reference cycle (its stream holds it). The session breaks
    it once the answer is judged: otherwise each call's request, response and headers wait for the
    cycle collector, which at a backlog cost 14% of the worker's CPU (docs/performance.md)."""
    import gc
    import weakref

    api = FakeApi()
    seen: list[weakref.ref[httpx.Response]] = []

    async def remember(response: httpx.Response) -> None:
        seen.append(weakref.ref(response))

    settings = make_settings()
    http = httpx.AsyncClient(
        base_url=BASE_URL, transport=api.transport(), event_hooks={"response": [remember]}
    )
    session = ApiSession(
        settings, http, CredentialsProvider.from_settings(settings), sink=Recorder(), clock=FakeClock()
    )
    gc.collect()
    gc.disable()
    try:
        answer = await session.exchange(LOGIN, {"username": "agent"})
        assert answer.code is not None  # an answer was read from the body before the stream was let go
        assert len(seen) == 1
        assert seen[0]() is None
    finally:
        gc.enable()
        await http.aclose()
