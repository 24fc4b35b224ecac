"""The typed async E-Cash client: the nine operations, with the retries that are safe and no others.

Money calls (``charge``, ``credit``) return a ``MoneyCallResult`` and raise only ``FatalConfigError``
(Login refused) or a validation error for arguments that cannot be sent. Inside, the client re-logs in
on TOKEN_EXPIRED and re-sends (the server refused the call), and retries with backoff while the request
provably never left (``not_sent``). An ``ambiguous`` outcome is never re-sent: it is returned with its
evidence, for the caller to settle with Status Inquiry.

Reads (status, balance, history, ...) are safe to repeat: they are retried on ``not_sent`` and on
``ambiguous`` alike, then raise ``ApiUnavailable``; an answer other than PROCESSED raises ``ApiError``.
``status`` never raises for the API's sake: every outcome is a ``StatusAnswer``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from decimal import Decimal
from types import TracebackType
from typing import TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from worker.clock import Clock, SystemClock
from worker.ecash import wire
from worker.ecash.codes import (
    NO_TRANSACTION,
    PROCESSED,
    TOKEN_EXPIRED,
    CallClass,
    canonical,
    classify_money_code,
)
from worker.ecash.credentials import CredentialsProvider
from worker.ecash.errors import ApiError, ApiUnavailable, LoginFailed
from worker.ecash.models import (
    BalanceRequest,
    BalanceResponse,
    ChargeRequest,
    CreditRequest,
    HistoryEntry,
    HistoryPage,
    HistoryRequest,
    HistoryResponse,
    MoneyCallResult,
    MoneyResponse,
    RegisterTicketRequest,
    RegisterTicketResponse,
    StatusAnswer,
    StatusRequest,
    StatusResponse,
    ValidateAccountRequest,
    ValidateAccountResponse,
    WireRequest,
)
from worker.ecash.retry import RetryPolicy, Sleep, retry_while
from worker.ecash.session import ApiSession, Exchange
from worker.ecash.transport import LeanAsyncClient, api_network, make_transport
from worker.events import NULL_SINK, EventSink
from worker.settings import Settings

__all__ = ["EcashClient", "HistoryPage", "MoneyCallResult", "StatusAnswer"]

M = TypeVar("M", bound=BaseModel)


class EcashClient:
    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sink: EventSink = NULL_SINK,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self._settings = settings
        self._sink = sink
        self._clock: Clock = clock or SystemClock()
        self._sleep: Sleep = sleep or self._clock.sleep_s
        self._policy = RetryPolicy.not_sent(settings)
        credentials = CredentialsProvider.from_settings(settings)  # a bad key file stops the start here
        if transport is None:
            transport = make_transport(
                settings.http_transport,
                settings.max_in_flight,
                settings.connect_timeout_s,
                network=api_network(settings),
            )
        self._http = LeanAsyncClient(
            base_url=settings.api_base_url,
            transport=transport,
            timeout=httpx.Timeout(settings.request_timeout_s, connect=settings.connect_timeout_s),
            follow_redirects=False,
            trust_env=False,
        )
        self._session = ApiSession(settings, self._http, credentials, sink=sink, clock=self._clock)

    def __repr__(self) -> str:
        return (
            f"EcashClient(base_url={self._settings.api_base_url!r}, "
            f"username={self._settings.api_username!r}, logged_in={self.logged_in})"
        )

    @property
    def logged_in(self) -> bool:
        return self._session.logged_in

    # --- money -------------------------------------------------------------------------------------------

    async def charge(
        self,
        *,
        msisdn: str,
        amount: Decimal,
        trace_number: str,
        transfer_type_id: str | None = None,
        description: str | None = None,
    ) -> MoneyCallResult:
        request = ChargeRequest(
            msisdn=msisdn,
            amount=amount,
            trace_number=trace_number,
            transfer_type_id=transfer_type_id,
            description=description,
        )
        return await self._money(request)

    async def credit(
        self, *, msisdn: str, amount: Decimal, trace_number: str, transfer_type_id: str | None = None
    ) -> MoneyCallResult:
        request = CreditRequest(
            msisdn=msisdn, amount=amount, trace_number=trace_number, transfer_type_id=transfer_type_id
        )
        return await self._money(request)

    async def _money(self, request: WireRequest) -> MoneyCallResult:
        sends = 0

        async def attempt() -> MoneyCallResult:
            nonlocal sends
            exchange, arrived = await self._with_session(request)
            sends += arrived
            return _money_result(exchange, sends)

        # The first attempt runs outside tenacity: almost every call ends there, and building the retry
        # machinery per call costs more CPU than the call's own bookkeeping. A call that must be retried
        # hands its first result to retry_while, which then behaves exactly as if it had made that attempt.
        first = await attempt()
        if first.call_class is not CallClass.NOT_SENT:
            return first
        primed = [first]

        async def attempt_after_first() -> MoneyCallResult:
            return primed.pop() if primed else await attempt()

        return await retry_while(
            attempt_after_first,
            should_retry=lambda result: result.call_class is CallClass.NOT_SENT,
            policy=self._policy,
            operation=request.operation.value,
            reason="not_sent",
            sink=self._sink,
            sleep=self._sleep,
        )

    # --- reads ---------------------------------------------------------------------------------------------

    async def status(
        self, *, trace_number: str, amount: Decimal, account_type_id: str | None = None
    ) -> StatusAnswer:
        request = StatusRequest(trace_number=trace_number, amount=amount, account_type_id=account_type_id)
        exchange = await self._read(request)
        if exchange.failure is not None:
            return StatusAnswer(exchange.code, exchange.failure, None, exchange.evidence)
        answer = _parse(StatusResponse, exchange)
        code = canonical(exchange.code) or exchange.code
        call_class = CallClass.SUCCEEDED if code == PROCESSED else CallClass.DECLINED
        return StatusAnswer(code, call_class, answer.trace_number if answer else None, exchange.evidence)

    async def validate_account(self, msisdn: str) -> ValidateAccountResponse:
        return await self._read_model(ValidateAccountRequest(msisdn=msisdn), ValidateAccountResponse)

    async def register_ticket(self, mobileno: str) -> RegisterTicketResponse:
        return await self._read_model(RegisterTicketRequest(mobileno=mobileno), RegisterTicketResponse)

    async def balance(self, msisdn: str, account_id: str | None = None) -> BalanceResponse:
        request = BalanceRequest(msisdn=msisdn, account_id=account_id or self._settings.api_account_id)
        return await self._read_model(request, BalanceResponse)

    async def history_page(
        self,
        msisdn: str,
        start_date: date,
        end_date: date,
        current_page: int,
        page_size: int,
        account_id: str | None = None,
    ) -> HistoryPage:
        """One page (``current_page`` counts from 0, as in the spec's example). NO_TRANSACTION: empty."""
        request = HistoryRequest(
            msisdn=msisdn,
            start_date=start_date,
            end_date=end_date,
            current_page=current_page,
            page_size=page_size,
            account_id=account_id or self._settings.api_account_id,
        )
        exchange = await self._read(request)
        code = _answered_code(exchange, wire.Operation.HISTORY, allowed=(PROCESSED, NO_TRANSACTION))
        answer = _parse(HistoryResponse, exchange)
        entries = tuple(answer.account_history_details) if answer and code == PROCESSED else ()
        return HistoryPage(entries, current_page, page_size, code)

    async def history(
        self,
        msisdn: str,
        start_date: date,
        end_date: date,
        page_size: int = 50,
        account_id: str | None = None,
        max_pages: int = 1000,
    ) -> AsyncIterator[HistoryEntry]:
        """Every entry, page after page, until a short or empty page. Raises ``ApiError`` if the server
        serves the same page twice (it ignores ``currentPage``) or there are more than ``max_pages``."""
        previous: tuple[tuple[str | None, str | None], ...] | None = None
        for current_page in range(max_pages):
            page = await self.history_page(msisdn, start_date, end_date, current_page, page_size, account_id)
            keys = tuple((entry.transaction_number, entry.trace_number) for entry in page.entries)
            if keys and keys == previous:
                raise ApiError(wire.Operation.HISTORY, page.code, "the same page came back twice")
            for entry in page.entries:
                yield entry
            if page.is_last:
                return
            previous = keys
        raise ApiError(wire.Operation.HISTORY, None, f"more than {max_pages} pages of {page_size}")

    # --- session -----------------------------------------------------------------------------------------

    async def login(self) -> None:
        """Log in now (a fresh token). Raises FatalConfigError, ApiError or ApiUnavailable."""
        try:
            await self._session.login()
        except LoginFailed as exc:
            if exc.call_class is not None:
                raise ApiUnavailable(wire.Operation.LOGIN, exc.call_class, exc.evidence) from None
            raise ApiError(wire.Operation.LOGIN, exc.code, exc.evidence) from None

    async def logout(self) -> bool:
        """End the session (the token is forgotten either way). True when the server answered PROCESSED."""
        exchange = await self._session.logout()
        return exchange is not None and exchange.failure is None and canonical(exchange.code) == PROCESSED

    async def aclose(self) -> None:
        """Log out (best effort) and close the connections."""
        with contextlib.suppress(Exception):  # closing must not fail because the API is down
            await self.logout()
        await self._http.aclose()

    async def __aenter__(self) -> EcashClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- the machinery -------------------------------------------------------------------------------------

    async def _with_session(self, request: WireRequest) -> tuple[Exchange, int]:
        """Send ``request`` with the session token, logging in again on TOKEN_EXPIRED (at most
        ``relogin_max`` times). Returns the last exchange and how many sends may have reached the server.
        A failed Login, or TOKEN_EXPIRED to the end, is ``not_sent``: the server never executed the call."""
        operation = request.operation
        failed: SecretStr | None = None
        arrived = 0
        for _ in range(self._settings.relogin_max + 1):
            try:
                token = await (self._session.token() if failed is None else self._session.renew(failed))
            except LoginFailed as exc:
                return Exchange.not_sent(operation, f"not sent: {exc}", "login_failed"), arrived
            exchange = await self._session.exchange(operation, request.form(token))
            arrived += exchange.may_have_arrived
            if exchange.failure is not None or canonical(exchange.code) != TOKEN_EXPIRED:
                return exchange, arrived
            failed = token
        evidence = (
            f"TOKEN_EXPIRED after {self._settings.relogin_max} fresh logins; "
            "the server refused the call every time, so it was not executed"
        )
        return Exchange.not_sent(operation, evidence, "token_expired", code=TOKEN_EXPIRED), arrived

    async def _read(self, request: WireRequest) -> Exchange:
        async def attempt() -> Exchange:
            exchange, _ = await self._with_session(request)
            return exchange

        return await retry_while(
            attempt,
            should_retry=lambda exchange: exchange.failure is not None,
            policy=self._policy,
            operation=request.operation.value,
            reason="read_retry",
            sink=self._sink,
            sleep=self._sleep,
        )

    async def _read_model(self, request: WireRequest, model: type[M]) -> M:
        exchange = await self._read(request)
        _answered_code(exchange, request.operation, allowed=(PROCESSED,))
        answer = _parse(model, exchange)
        if answer is None:
            raise ApiError(request.operation, PROCESSED, "the answer could not be read")
        return answer


def _answered_code(exchange: Exchange, operation: wire.Operation, *, allowed: tuple[str, ...]) -> str:
    if exchange.failure is not None:
        raise ApiUnavailable(operation, exchange.failure, exchange.evidence)
    code = canonical(exchange.code)
    if code is None or code not in allowed:
        raise ApiError(operation, code or exchange.code)
    return code


def _parse(model: type[M], exchange: Exchange) -> M | None:
    try:
        return model.model_validate(exchange.payload or {})
    except ValidationError:
        return None


def _money_result(exchange: Exchange, sends: int) -> MoneyCallResult:
    code = canonical(exchange.code) or exchange.code
    if exchange.failure is not None:
        return MoneyCallResult(
            exchange.failure, code, None, None, exchange.evidence, exchange.http_status, sends
        )
    call_class = classify_money_code(code)
    answer = _parse(MoneyResponse, exchange)
    evidence = exchange.evidence
    if call_class is CallClass.AMBIGUOUS:
        evidence += "; it does not say whether the money moved"
    return MoneyCallResult(
        call_class,
        code,
        answer.transaction_number if answer else None,
        answer.trx_datetime_raw if answer else None,
        evidence,
        exchange.http_status,
        sends,
    )
