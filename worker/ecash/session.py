"""One HTTP exchange with the API, and the agent session (token) that every call but Login needs.

``ApiSession.exchange`` posts one form and reports what came back as an ``Exchange``: an answered code,
or a failure class (``not_sent`` / ``ambiguous``) with the evidence. It emits ``ApiCallFinished``.

The token is fetched lazily and shared. Login is single-flight: however many callers find the token
missing or expired at once, one Login goes out and all of them use its token (or share its failure).
A caller that got TOKEN_EXPIRED says which token failed; if another caller has already replaced that
token, no new Login is made. A Login refused for configuration reasons (``FatalConfigError``) is
remembered: later calls fail at once without asking the server again (repeated wrong credentials can
get an agent blocked) until an explicit ``login()`` succeeds.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr, ValidationError

from worker import tracing
from worker.clock import Clock
from worker.ecash import wire
from worker.ecash.codes import (
    PROCESSED,
    CallClass,
    canonical,
    classify_money_code,
    describe,
    is_fatal_config_code,
)
from worker.ecash.credentials import CredentialsProvider
from worker.ecash.errors import FatalConfigError, LoginFailed
from worker.ecash.lease import LeaseExpired
from worker.ecash.models import LoginRequest, LoginResponse, LogoutRequest
from worker.ecash.transport import (
    classify_transport_error,
    describe_transport_error,
    tls_failure,
    transport_reason,
)
from worker.events import ApiCallFinished, EventSink, LoginFinished, LoginKind
from worker.settings import Settings

__all__ = ["MAX_CODE_CHARS", "ApiSession", "Exchange", "read_answer", "release"]

MAX_CODE_CHARS = 64


@dataclass(frozen=True)
class Exchange:
    """What one POST gave: a usable answer (``failure`` is None) or a failure class with evidence.

    ``code`` is the answer's status as sent (trimmed), also kept on a 5xx that carried one.
    ``reason`` is a short word for metrics: ``read_timeout``, ``http_5xx``, ``not_json``, ...
    """

    operation: wire.Operation
    payload: dict[str, Any] | None
    code: str | None
    http_status: int | None
    failure: CallClass | None
    evidence: str
    reason: str = ""

    @property
    def may_have_arrived(self) -> bool:
        return self.failure is not CallClass.NOT_SENT

    @classmethod
    def not_sent(
        cls, operation: wire.Operation, evidence: str, reason: str, code: str | None = None
    ) -> Exchange:
        return cls(operation, None, code, None, CallClass.NOT_SENT, evidence, reason)


_SPENT = httpx.ByteStream(b"")


def release(response: httpx.Response) -> None:
    """Break the reference cycle httpx leaves in every response it sent: its stream (``BoundAsyncStream``)
    holds the response that holds it. Left alone, each call's ~25 objects (request, response, headers, URL)
    wait for Python's cycle collector instead of being freed at once; at a backlog that collector took 14%
    of the worker's CPU and stopped the event loop for up to 94 ms (docs/performance.md, "Garbage").
    Only for a response whose body has been read: its ``content`` stays readable."""
    response.stream = _SPENT


def _status_of(payload: dict[str, Any]) -> str | None:
    for key, value in payload.items():
        if isinstance(key, str) and key.lower() == "status" and isinstance(value, str) and value.strip():
            return value.strip()[:MAX_CODE_CHARS]
    return None


def read_answer(operation: wire.Operation, response: httpx.Response) -> Exchange:
    """Judge an HTTP response. A 5xx, a body that is not a JSON object, or one without a status: ambiguous."""
    http = response.status_code
    try:
        parsed: object = json.loads(response.content)
    except ValueError:
        parsed = None
    payload = parsed if isinstance(parsed, dict) else None
    code = _status_of(payload) if payload is not None else None
    if http >= 500:
        said = f" saying {describe(code)}" if code else ""
        evidence = f"HTTP {http} from the API{said}; the request reached the server"
        return Exchange(operation, payload, code, http, CallClass.AMBIGUOUS, evidence, "http_5xx")
    if payload is None:
        kind = response.headers.get("content-type", "no content type")[:60]
        evidence = (
            f"HTTP {http} with a body that is not a JSON object ({len(response.content)} bytes, {kind}); "
            "the request reached the server"
        )
        return Exchange(operation, None, None, http, CallClass.AMBIGUOUS, evidence, "not_json")
    if code is None:
        evidence = f"HTTP {http} with a JSON answer without a status; the request reached the server"
        return Exchange(operation, payload, None, http, CallClass.AMBIGUOUS, evidence, "no_status")
    return Exchange(operation, payload, code, http, None, f"answered {describe(code)}")


class ApiSession:
    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        credentials: CredentialsProvider,
        *,
        sink: EventSink,
        clock: Clock,
    ) -> None:
        self._http = http
        self._username = settings.api_username
        self._api_key = settings.api_key
        self._credentials = credentials
        self._sink = sink
        self._clock = clock
        self._token: SecretStr | None = None
        self._lock = asyncio.Lock()
        self._logins_done = 0  # Logins finished (either way): tells a waiter whether one ran meanwhile
        self._last_failure: FatalConfigError | LoginFailed | None = None
        self._fatal: FatalConfigError | None = None

    def __repr__(self) -> str:
        return f"ApiSession(username={self._username!r}, logged_in={self.logged_in})"

    @property
    def logged_in(self) -> bool:
        return self._token is not None

    # --- one exchange ------------------------------------------------------------------------------------

    async def exchange(
        self, operation: wire.Operation, form: dict[str, str], *, credentials: SecretStr | None = None
    ) -> Exchange:
        with tracing.api_call(operation.value, "POST", self._http.base_url, wire.PATHS[operation]) as span:
            result = await self._exchange(operation, form, credentials)
            if span.is_recording():
                tracing.api_call_answered(
                    span,
                    http_status=result.http_status,
                    code=result.code,
                    call_class=_class_of(result),
                    reason=result.reason,
                )
            return result

    async def _exchange(
        self, operation: wire.Operation, form: dict[str, str], credentials: SecretStr | None
    ) -> Exchange:
        if self._http.is_closed:  # a programming error, not an outcome: nothing was sent
            raise RuntimeError("the E-Cash client is closed")
        headers = {wire.HEADER_API_KEY: self._api_key.get_secret_value()}
        if credentials is not None:
            headers[wire.HEADER_CREDENTIALS] = credentials.get_secret_value()
        started_s = self._clock.monotonic_s()
        try:
            response = await self._http.post(wire.PATHS[operation], data=form, headers=headers)
        except LeaseExpired:
            raise  # nothing was sent; the processor writes a fresh intent (lease.py)
        except Exception as exc:  # noqa: BLE001 - whatever it is, it is classified, never lost
            tls = tls_failure(exc)
            if tls is not None:  # our configuration, not the API's health: nothing was sent
                self._fatal = FatalConfigError(
                    None,
                    f"ECASH_API_BASE_URL: TLS with {self._http.base_url} ({tls}); "
                    "see ECASH_API_CA_FILE, ECASH_API_CLIENT_CERT_FILE and ECASH_API_PROXY_URL",
                )
                raise self._fatal from None
            failure = classify_transport_error(exc)
            result = Exchange(
                operation, None, None, None, failure, describe_transport_error(exc), transport_reason(exc)
            )
        else:
            result = read_answer(operation, response)
            release(response)
        event_code = (
            result.failure.value if result.failure is not None else (canonical(result.code) or result.code)
        )
        duration_s = self._clock.monotonic_s() - started_s
        self._sink.emit(
            ApiCallFinished(operation.value, event_code or "ambiguous", duration_s, result.reason)
        )
        return result

    # --- the token -----------------------------------------------------------------------------------------

    async def token(self) -> SecretStr:
        """The current token, logging in first if there is none."""
        if self._fatal is not None:
            raise self._fatal
        token = self._token
        if token is not None:
            return token
        return await self._login_single_flight(self._logins_done, "login")

    async def renew(self, failed: SecretStr) -> SecretStr:
        """A token to replace ``failed`` (it got TOKEN_EXPIRED): a new Login, unless one replaced it."""
        if self._fatal is not None:
            raise self._fatal
        seen = self._logins_done
        current = self._token
        if current is not None and current is not failed:
            return current
        return await self._login_single_flight(seen, "relogin")

    async def login(self) -> SecretStr:
        """An explicit Login (also after a fatal refusal: it is how an operator's fix is noticed)."""
        return await self._login_single_flight(self._logins_done, "login", explicit=True)

    async def logout(self) -> Exchange | None:
        """Forget the token and tell the server; None when there was no session."""
        token, self._token = self._token, None
        if token is None:
            return None
        return await self.exchange(wire.Operation.LOGOUT, LogoutRequest().form(token))

    async def _login_single_flight(self, seen: int, kind: LoginKind, *, explicit: bool = False) -> SecretStr:
        async with self._lock:
            if self._logins_done != seen:  # a Login finished while we waited: share its outcome
                if self._token is not None:
                    return self._token
                if self._last_failure is not None and not explicit:
                    raise self._last_failure
            try:
                token = await self._login(kind)
            except (FatalConfigError, LoginFailed) as exc:
                self._token, self._last_failure = None, exc
                raise
            finally:
                self._logins_done += 1
            self._token, self._last_failure, self._fatal = token, None, None
            return token

    async def _login(self, kind: LoginKind) -> SecretStr:
        form = LoginRequest(username=self._username).form()
        answer = await self.exchange(wire.Operation.LOGIN, form, credentials=self._credentials.header_value())
        if answer.failure is not None:
            self._sink.emit(LoginFinished(kind, False, answer.failure.value))
            raise LoginFailed(answer.code, answer.evidence, answer.failure)
        code = canonical(answer.code) or answer.code
        if is_fatal_config_code(code, login=True):
            assert code is not None
            self._sink.emit(LoginFinished(kind, False, code))
            self._fatal = FatalConfigError.login_refused(code)
            raise self._fatal
        token = _token_of(answer.payload)
        if code != PROCESSED or token is None:
            self._sink.emit(LoginFinished(kind, False, code or "ambiguous"))
            detail = "without a token" if code == PROCESSED else ""
            raise LoginFailed(code, f"login answered {describe(code)} {detail}".strip())
        self._sink.emit(LoginFinished(kind, True, PROCESSED))
        return token


def _class_of(result: Exchange) -> str:
    """The exchange's class for its span: the transport's failure, a money call's class, or answered."""
    if result.failure is not None:
        return result.failure.value
    if result.operation in (wire.Operation.CHARGE, wire.Operation.CREDIT):
        return classify_money_code(canonical(result.code) or result.code).value
    return "answered"


def _token_of(payload: dict[str, Any] | None) -> SecretStr | None:
    try:
        token = LoginResponse.model_validate(payload or {}).token
    except ValidationError:
        return None
    return token if token is not None and token.get_secret_value().strip() else None
