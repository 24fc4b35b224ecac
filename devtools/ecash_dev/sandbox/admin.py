"""The sandbox's admin API (JSON under ``/admin``): seed wallets, read the ledger, steer faults.

Test-only: it needs no APIKey and must never be exposed beyond the test host. Money is written as
decimal strings (``"100000.00"``). Errors answer ``{"error": "..."}`` with 400 (bad input) or 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ecash_dev.sandbox.app import Sandbox
from ecash_dev.sandbox.faults import FaultRule, FaultSpecError, rule_from_json, validation_reasons
from ecash_dev.sandbox.state import Execution, SandboxConfig, Wallet, WalletSpec, money
from worker.ecash.wire import Operation

Handler = Callable[[Sandbox, Request], Awaitable[Response]]


class AdminError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def admin_routes(sandbox: Sandbox) -> list[BaseRoute]:
    """The routes, relative to the ``/admin`` mount point."""
    table: list[tuple[str, list[str], Handler]] = [
        ("/health", ["GET"], _health),
        ("/wallets", ["POST"], _put_wallets),
        ("/wallets", ["GET"], _list_wallets),
        ("/wallets/{msisdn}", ["GET"], _get_wallet),
        ("/ledger", ["GET"], _ledger),
        ("/faults", ["GET"], _get_faults),
        ("/faults", ["PUT"], _replace_faults),
        ("/faults", ["POST"], _add_faults),
        ("/faults", ["DELETE"], _clear_faults),
        ("/tokens/expire", ["POST"], _expire_tokens),
        ("/stats", ["GET"], _stats),
        ("/reset", ["POST"], _reset),
        ("/config", ["GET"], _get_config),
        ("/config", ["PUT"], _put_config),
    ]
    return [Route(path, _bind(sandbox, handler), methods=methods) for path, methods, handler in table]


def _bind(sandbox: Sandbox, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(sandbox, request)
        except AdminError as exc:
            return _json({"error": str(exc)}, exc.status)

    return endpoint


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise AdminError(f"the body is not JSON: {exc}") from None


def _invalid(exc: ValidationError) -> AdminError:
    return AdminError(validation_reasons(exc))


def _items(payload: Any, key: str) -> list[Any]:
    """A list, ``{key: [...]}``, or one object: the admin API accepts all three."""
    if isinstance(payload, dict) and key in payload:
        payload = payload[key]
    if payload is None:
        return []
    return payload if isinstance(payload, list) else [payload]


# --- JSON shapes ---------------------------------------------------------------------------------


def wallet_json(wallet: Wallet) -> dict[str, Any]:
    return {
        "msisdn": wallet.msisdn,
        "balance": money(wallet.balance),
        "available": money(wallet.available),
        "upper_credit_limit": money(wallet.upper_credit_limit),
        "reserved_amount": money(wallet.reserved_amount),
        "name": wallet.name,
        "group_id": wallet.group_id,
        "id": wallet.id,
        "kyc": wallet.kyc,
    }


def execution_json(execution: Execution) -> dict[str, Any]:
    return {
        "sequence": execution.sequence,
        "agent": execution.agent,
        "type": execution.type.value,
        "trace_number": execution.trace_number,
        "msisdn": execution.msisdn,
        "amount": money(execution.amount),
        "transaction_number": execution.transaction_number,
        "trx_datetime": execution.trx_datetime.isoformat(timespec="milliseconds"),
        "balance_after": money(execution.balance_after),
        "transfer_type_id": execution.transfer_type_id,
        "description": execution.description,
    }


def stats_json(sandbox: Sandbox) -> dict[str, Any]:
    state = sandbox.state
    stats = state.stats
    executions = state.ledger.executions
    duplicated = state.ledger.duplicated()
    totals = {op: sum((e.amount for e in executions if e.type is op), Decimal(0)) for op in Operation}
    return {
        "calls": dict(stats.calls),
        "codes": {op: dict(codes) for op, codes in stats.codes.items()},
        "faults": dict(stats.faults),
        "logins": stats.logins,
        "login_failures": stats.login_failures,
        "active_tokens": state.active_tokens(),
        "in_flight": stats.in_flight,
        "max_in_flight": stats.max_in_flight,
        "executions": len(executions),
        "duplicate_attempts": stats.duplicate_attempts,
        "duplicate_executions": sum(count - 1 for count in duplicated.values()),
        "duplicated_trace_numbers": duplicated,
        "charged_total": money(totals[Operation.CHARGE]),
        "credited_total": money(totals[Operation.CREDIT]),
    }


def config_json(config: SandboxConfig) -> dict[str, Any]:
    """The configuration without the fault rules (see /admin/faults); secrets are masked."""
    return config.model_dump(mode="json", exclude={"faults"})


def faults_json(sandbox: Sandbox) -> dict[str, Any]:
    return {"random_seed": sandbox.faults.seed, "faults": sandbox.faults.snapshot()}


# --- handlers ------------------------------------------------------------------------------------


async def _health(sandbox: Sandbox, request: Request) -> Response:
    return _json({"status": "ok"})


async def _put_wallets(sandbox: Sandbox, request: Request) -> Response:
    try:
        specs = [WalletSpec.model_validate(item) for item in _items(await _body(request), "wallets")]
    except ValidationError as exc:
        raise _invalid(exc) from None
    wallets = [sandbox.state.put_wallet(spec) for spec in specs]
    return _json({"wallets": [wallet_json(w) for w in wallets]})


async def _list_wallets(sandbox: Sandbox, request: Request) -> Response:
    return _json({"wallets": [wallet_json(w) for w in sandbox.state.wallets.values()]})


async def _get_wallet(sandbox: Sandbox, request: Request) -> Response:
    wallet = sandbox.state.wallets.get(request.path_params["msisdn"])
    if wallet is None:
        raise AdminError("no such wallet", 404)
    return _json(wallet_json(wallet))


async def _ledger(sandbox: Sandbox, request: Request) -> Response:
    trace = request.query_params.get("trace_number")
    msisdn = request.query_params.get("msisdn")
    ledger = sandbox.state.ledger
    executions = ledger.by_msisdn.get(msisdn, []) if msisdn is not None else ledger.executions
    if trace is not None:
        executions = [e for e in executions if e.trace_number == trace]
    return _json({"count": len(executions), "executions": [execution_json(e) for e in executions]})


def _rules(payload: Any) -> list[FaultRule]:
    try:
        return [rule_from_json(item) for item in _items(payload, "faults")]
    except FaultSpecError as exc:
        raise AdminError(str(exc)) from None


async def _get_faults(sandbox: Sandbox, request: Request) -> Response:
    return _json(faults_json(sandbox))


async def _replace_faults(sandbox: Sandbox, request: Request) -> Response:
    sandbox.faults.replace(_rules(await _body(request)))
    return _json(faults_json(sandbox))


async def _add_faults(sandbox: Sandbox, request: Request) -> Response:
    sandbox.faults.add(_rules(await _body(request)))
    return _json(faults_json(sandbox))


async def _clear_faults(sandbox: Sandbox, request: Request) -> Response:
    sandbox.faults.clear()
    return _json(faults_json(sandbox))


async def _expire_tokens(sandbox: Sandbox, request: Request) -> Response:
    return _json({"expired": sandbox.state.expire_all_tokens()})


async def _stats(sandbox: Sandbox, request: Request) -> Response:
    return _json(stats_json(sandbox))


async def _reset(sandbox: Sandbox, request: Request) -> Response:
    sandbox.reset()
    return _json({"status": "reset"})


async def _get_config(sandbox: Sandbox, request: Request) -> Response:
    return _json(config_json(sandbox.config))


async def _put_config(sandbox: Sandbox, request: Request) -> Response:
    patch = await _body(request)
    if not isinstance(patch, dict):
        raise AdminError("expected a JSON object with the settings to change")
    if "faults" in patch:
        raise AdminError("faults are set through /admin/faults")
    if {"wallets", "demo_wallets"} & patch.keys():
        raise AdminError("wallets are seeded at start or through POST /admin/wallets")
    current = sandbox.config.model_dump(exclude={"faults"})
    try:
        config = SandboxConfig.model_validate({**current, **patch, "faults": sandbox.config.faults})
    except ValidationError as exc:
        raise _invalid(exc) from None
    sandbox.configure(config)
    return _json(config_json(config))
