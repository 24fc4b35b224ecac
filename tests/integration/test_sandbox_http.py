"""The sandbox host over a real socket, seen from a client speaking raw httpx: the API, faults, admin."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio

from ecash_dev.sandbox.server import RunningSandbox, sandbox_in_thread, serve_sandbox
from ecash_dev.sandbox.state import SandboxConfig, WalletSpec
from worker.clock import FakeClock
from worker.ecash import wire
from worker.ecash.wire import Operation
from worker.settings import SANDBOX_API_KEY, SANDBOX_CREDENTIALS, SANDBOX_USERNAME

MSISDN = "08131234567"
POOR = "08130000001"  # 100.00, limit 1,000.00
WALLETS = [
    WalletSpec(msisdn=MSISDN, balance=Decimal("2300000"), name="Allyssa Soebandono", id="114"),
    WalletSpec(msisdn=POOR, balance=Decimal("100"), upper_credit_limit=Decimal("1000")),
]


@dataclass
class Api:
    """A bare client: form posts with the APIKey header, the token added for every call but Login."""

    http: httpx.AsyncClient
    sandbox: RunningSandbox
    token: str = ""

    async def login(self) -> str:
        response = await self.http.post(
            wire.PATHS[Operation.LOGIN],
            data={wire.F_USERNAME: SANDBOX_USERNAME},
            headers={wire.HEADER_CREDENTIALS: SANDBOX_CREDENTIALS},
        )
        self.token = response.json()["token"]
        return self.token

    async def send(
        self, operation: Operation, form: dict[str, str], timeout_s: float = 5.0
    ) -> httpx.Response:
        data = {wire.F_TOKEN: self.token, **form}
        return await self.http.post(wire.PATHS[operation], data=data, timeout=timeout_s)

    async def post(self, operation: Operation, *, timeout_s: float = 5.0, **form: str) -> httpx.Response:
        return await self.send(operation, form, timeout_s)

    async def call(self, operation: Operation, **form: str) -> dict[str, Any]:
        response = await self.send(operation, form)
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    async def charge(self, trace: str, amount: str = "1000", msisdn: str = MSISDN) -> dict[str, Any]:
        return await self.call(Operation.CHARGE, msisdn=msisdn, amount=amount, traceNumber=trace)

    async def admin(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        response = await self.http.request(method, self.sandbox.admin_url + path, **kwargs)
        assert response.status_code == expect, response.text
        return response.json()

    async def executions(self, trace: str) -> int:
        ledger = await self.admin("GET", "/ledger", params={"trace_number": trace})
        count: int = ledger["count"]
        return count

    async def balance(self, msisdn: str = MSISDN) -> str:
        wallet = await self.admin("GET", f"/wallets/{msisdn}")
        balance: str = wallet["balance"]
        return balance

    async def faults(self, *specs: str) -> None:
        await self.admin("PUT", "/faults", json=list(specs))


def causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


async def read_until_closed(reader: asyncio.StreamReader, received: list[bytes]) -> None:
    while chunk := await asyncio.wait_for(reader.read(4096), 5.0):
        received.append(chunk)


async def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition did not come true in time")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with serve_sandbox(SandboxConfig(wallets=WALLETS)) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="session")
async def api(sandbox: RunningSandbox) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(
        base_url=sandbox.base_url, headers={wire.HEADER_API_KEY: SANDBOX_API_KEY}, timeout=5.0
    ) as http:
        client = Api(http, sandbox)
        await client.admin("POST", "/reset")
        await client.login()
        yield client


# --- the API -------------------------------------------------------------------------------------


async def test_a_scripted_session_through_all_nine_operations(api: Api) -> None:
    assert api.sandbox.base_url.endswith("/eCashHost")
    validate = await api.call(Operation.VALIDATE_ACCOUNT, msisdn=MSISDN)
    assert validate == {
        "Id": "114",
        "groupID": "149",
        "Status": "PROCESSED",
        "MSISDN": MSISDN,
        "name": "Allyssa Soebandono",
        "kyc": "true",
    }
    balance = await api.call(Operation.BALANCE, msisdn=MSISDN, accountID="6")
    assert balance["accountBalance"] == "2300000.00"
    charged = await api.charge("2016041312050101", amount="14500")
    assert charged["status"] == "PROCESSED"
    assert len(charged["transactionNumber"]) == 20
    assert charged["trxDateTime"].endswith("+07:00")
    credited = await api.call(Operation.CREDIT, msisdn=MSISDN, amount="1000", traceNumber="2016041312050102")
    assert credited["traceNumber"] == "2016041312050102"
    status = await api.call(Operation.STATUS, amount="14500", traceNumber="2016041312050101")
    assert status == {"traceNumber": "2016041312050101", "status": "PROCESSED"}
    history = await api.call(
        Operation.HISTORY,
        msisdn=MSISDN,
        currentPage="0",
        pageSize="15",
        accountID="6",
        startDate="2000-01-01",
        endDate="2100-12-31",
    )
    amounts = [entry["amount"] for entry in history["accountHistoryDetails"]]
    assert amounts == ["Rp 1.000,00", "Rp -14.500,00"]
    assert history["accountHistoryDetails"][1]["traceNumber"] == "agent01-2016041312050101"
    ticket = await api.call(Operation.REGISTER_TICKET, mobileno="08787779080444")
    assert (ticket["status"], ticket["mobileno"]) == ("PROCESSED", "08787779080444")
    assert await api.call(Operation.LOGOUT) == {"status": "PROCESSED"}
    assert (await api.charge("AFTERLOGOUT"))["status"] == "TOKEN_EXPIRED"
    assert await api.balance() == "2286500.00"


@pytest.mark.parametrize(
    ("operation", "form", "code"),
    [
        (Operation.CHARGE, {"msisdn": POOR, "amount": "100.01", "traceNumber": "R1"}, "NOT_ENOUGH_CREDITS"),
        (
            Operation.CREDIT,
            {"msisdn": POOR, "amount": "900.01", "traceNumber": "R2"},
            "RECEIVER_UPPER_CREDIT_LIMIT_REACHED",
        ),
        (Operation.CHARGE, {"msisdn": "0811111111", "amount": "1", "traceNumber": "R3"}, "MEMBER_NOT_FOUND"),
        (Operation.CHARGE, {"msisdn": MSISDN, "amount": "1e5", "traceNumber": "R4"}, "INVALID_PARAMETER"),
        (Operation.CHARGE, {"msisdn": MSISDN, "amount": "5"}, "INVALID_PARAMETER"),
        (
            Operation.CHARGE,
            {"msisdn": MSISDN, "amount": "5", "traceNumber": "R5", "token": "x" * 48},
            "TOKEN_EXPIRED",
        ),
        (Operation.BALANCE, {"msisdn": MSISDN}, "INVALID_PARAMETER"),
        (Operation.STATUS, {"amount": "5", "traceNumber": "NEVER"}, "PAYMENT_NOT_FOUND"),
    ],
)
async def test_business_refusals(api: Api, operation: Operation, form: dict[str, str], code: str) -> None:
    body = await api.call(operation, **form)
    assert body["status"] == code
    stats = await api.admin("GET", "/stats")
    assert stats["executions"] == 0


async def test_login_refusals(api: Api) -> None:
    def login(username: str, credentials: str) -> Any:
        return api.http.post(
            wire.PATHS[Operation.LOGIN],
            data={wire.F_USERNAME: username},
            headers={wire.HEADER_CREDENTIALS: credentials},
        )

    assert (await login("agent99", SANDBOX_CREDENTIALS)).json() == {"status": "USER_NOT_FOUND"}
    assert (await login(SANDBOX_USERNAME, "wrong")).json() == {"status": "INVALID_CREDENTIAL"}
    stats = await api.admin("GET", "/stats")
    assert (stats["logins"], stats["login_failures"]) == (1, 2)


async def test_wrong_api_key_is_invalid_credential_with_a_configurable_http_status(api: Api) -> None:
    headers = {wire.HEADER_API_KEY: "wrong"}
    form = {"msisdn": MSISDN, "accountID": "6", "token": api.token}
    path = wire.PATHS[Operation.BALANCE]
    response = await api.http.post(path, data=form, headers=headers)
    assert (response.status_code, response.json()) == (200, {"status": "INVALID_CREDENTIAL"})
    await api.admin("PUT", "/config", json={"bad_api_key_http_status": 401})
    response = await api.http.post(path, data=form, headers=headers)
    assert (response.status_code, response.json()) == (401, {"status": "INVALID_CREDENTIAL"})


async def test_auto_created_wallets_get_the_default_balance(api: Api) -> None:
    await api.admin("PUT", "/config", json={"auto_create_wallets": True, "default_balance": "750000"})
    assert (await api.charge("A1", amount="50000", msisdn="0857000000001"))["status"] == "PROCESSED"
    assert await api.balance("0857000000001") == "700000.00"


@pytest.mark.parametrize(
    ("policy", "second_status", "executions"),
    [("execute", "PROCESSED", 2), ("reject", "GENERAL_ERROR", 1), ("replay", "PROCESSED", 1)],
)
async def test_duplicate_trace_policies(api: Api, policy: str, second_status: str, executions: int) -> None:
    await api.admin("PUT", "/config", json={"duplicate_trace": policy})
    first = await api.charge("DUP1")
    second = await api.charge("DUP1")
    assert second["status"] == second_status
    assert await api.executions("DUP1") == executions
    if policy == "replay":
        assert second == first
    stats = await api.admin("GET", "/stats")
    assert stats["duplicate_executions"] == executions - 1
    assert stats["duplicate_attempts"] == 1
    assert stats["duplicated_trace_numbers"] == ({"DUP1": 2} if executions == 2 else {})


async def test_unknown_status_code_is_configurable(api: Api) -> None:
    await api.admin("PUT", "/config", json={"unknown_status_code": "NO_TRANSACTION"})
    assert (await api.call(Operation.STATUS, amount="5", traceNumber="NEVER"))["status"] == "NO_TRANSACTION"


# --- faults, seen from the client ----------------------------------------------------------------


async def test_hang_after_commit_times_the_client_out_but_the_charge_happened(api: Api) -> None:
    await api.faults("charge:hang_after_commit:count=1")
    with pytest.raises(httpx.ReadTimeout):
        await api.post(Operation.CHARGE, timeout_s=0.3, msisdn=MSISDN, amount="1000", traceNumber="H1")
    assert await api.executions("H1") == 1
    assert (await api.call(Operation.STATUS, amount="1000", traceNumber="H1"))["status"] == "PROCESSED"


async def test_reset_after_commit_resets_the_connection_but_the_charge_happened(api: Api) -> None:
    await api.faults("charge:reset_after_commit:count=1")
    with pytest.raises(httpx.ReadError) as raised:
        await api.charge("X1")
    assert any(isinstance(cause, ConnectionResetError) for cause in causes(raised.value))
    assert await api.executions("X1") == 1
    assert await api.balance() == "2299000.00"


async def test_reset_is_a_tcp_reset_with_no_response_bytes(api: Api) -> None:
    await api.faults("charge:reset_after_commit:count=1")
    body = f"msisdn={MSISDN}&amount=5&traceNumber=X2&token={api.token}".encode()
    request = (
        f"POST /eCashHost{wire.PATHS[Operation.CHARGE]} HTTP/1.1\r\nHost: sandbox\r\n"
        f"APIKey: {SANDBOX_API_KEY}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    reader, writer = await asyncio.open_connection(api.sandbox.host, api.sandbox.port)
    writer.write(request)
    received: list[bytes] = []
    with pytest.raises(ConnectionResetError):
        await read_until_closed(reader, received)
    writer.close()
    assert received == []
    assert await api.executions("X2") == 1


async def test_5xx_before_commit_moves_nothing(api: Api) -> None:
    await api.faults("charge:http_5xx_before_commit:count=1")
    response = await api.post(Operation.CHARGE, msisdn=MSISDN, amount="1000", traceNumber="F1")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert await api.executions("F1") == 0
    assert await api.balance() == "2300000.00"


async def test_5xx_after_commit_moved_the_money(api: Api) -> None:
    await api.faults("charge:http_5xx_after_commit:count=1,status=503")
    response = await api.post(Operation.CHARGE, msisdn=MSISDN, amount="1000", traceNumber="F2")
    assert response.status_code == 503
    assert await api.executions("F2") == 1


async def test_malformed_json_after_commit(api: Api) -> None:
    await api.faults("charge:malformed_json:count=1")
    response = await api.post(Operation.CHARGE, msisdn=MSISDN, amount="1000", traceNumber="M1")
    assert response.status_code == 200
    with pytest.raises(ValueError, match=r"."):
        response.json()
    assert await api.executions("M1") == 1


async def test_token_expiry_storm_forces_a_new_login(api: Api) -> None:
    expired = await api.admin("POST", "/tokens/expire")
    assert expired == {"expired": 1}
    assert (await api.charge("S1"))["status"] == "TOKEN_EXPIRED"
    await api.login()
    assert (await api.charge("S1"))["status"] == "PROCESSED"


async def test_token_expired_fault_kills_the_session_without_executing(api: Api) -> None:
    await api.faults("charge:token_expired:count=1")
    assert (await api.charge("S2"))["status"] == "TOKEN_EXPIRED"
    assert await api.executions("S2") == 0
    assert (await api.call(Operation.BALANCE, msisdn=MSISDN, accountID="6"))["status"] == "TOKEN_EXPIRED"
    await api.login()
    assert (await api.charge("S2"))["status"] == "PROCESSED"


async def test_latency_delays_every_call(api: Api) -> None:
    await api.faults("*:latency:ms=150")
    started = time.perf_counter()
    assert (await api.call(Operation.BALANCE, msisdn=MSISDN, accountID="6"))["status"] == "PROCESSED"
    assert time.perf_counter() - started >= 0.15


async def test_status_lag_hides_a_fresh_transaction_until_the_lag_has_passed() -> None:
    clock = FakeClock()
    config = SandboxConfig(wallets=WALLETS, faults=[], token_lifetime_s=0)
    async with (
        serve_sandbox(config, clock=clock) as running,
        httpx.AsyncClient(base_url=running.base_url, headers={wire.HEADER_API_KEY: SANDBOX_API_KEY}) as http,
    ):
        client = Api(http, running)
        await client.login()
        await client.faults("status:status_lag:lag_s=30")
        await client.charge("L1", amount="700")
        status = {"amount": "700", "traceNumber": "L1"}
        assert (await client.call(Operation.STATUS, **status))["status"] == "PAYMENT_NOT_FOUND"
        clock.advance(30)
        assert (await client.call(Operation.STATUS, **status))["status"] == "PROCESSED"


async def test_an_answer_takes_about_a_millisecond_not_a_delayed_ack(api: Api) -> None:
    started = time.perf_counter()
    for _ in range(20):
        await api.call(Operation.BALANCE, msisdn=MSISDN, accountID="6")
    assert time.perf_counter() - started < 20 * 0.02  # a Nagle/delayed-ACK stall costs 40 ms each


async def test_hundreds_of_calls_in_flight(api: Api) -> None:
    await api.admin("PUT", "/config", json={"base_latency_ms": 1500, "auto_create_wallets": True})
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
    async with httpx.AsyncClient(
        base_url=api.sandbox.base_url,
        headers={wire.HEADER_API_KEY: SANDBOX_API_KEY},
        limits=limits,
        timeout=30,
    ) as http:
        many = Api(http, api.sandbox, api.token)
        started = time.perf_counter()
        bodies = await asyncio.gather(*(many.charge(f"P{i}", msisdn=f"0856{i:08d}") for i in range(300)))
        elapsed = time.perf_counter() - started
    assert {body["status"] for body in bodies} == {"PROCESSED"}
    stats = await api.admin("GET", "/stats")
    assert stats["executions"] == 300
    assert stats["max_in_flight"] >= 200
    assert elapsed < 300 * 1.5 / 20  # one at a time would take 450 s


# --- the admin API -------------------------------------------------------------------------------


async def test_admin_seeds_and_reads_wallets(api: Api) -> None:
    one = await api.admin("POST", "/wallets", json={"msisdn": "0899000000001", "balance": "10"})
    assert one["wallets"][0]["balance"] == "10.00"
    many = await api.admin(
        "POST", "/wallets", json={"wallets": [{"msisdn": "0899000000002"}, {"msisdn": "0899000000003"}]}
    )
    assert [w["msisdn"] for w in many["wallets"]] == ["0899000000002", "0899000000003"]
    wallet = await api.admin("GET", "/wallets/08131234567")
    assert wallet == {
        "msisdn": MSISDN,
        "balance": "2300000.00",
        "available": "2300000.00",
        "upper_credit_limit": "5000000.00",
        "reserved_amount": "0.00",
        "name": "Allyssa Soebandono",
        "group_id": "149",
        "id": "114",
        "kyc": True,
    }
    assert len((await api.admin("GET", "/wallets"))["wallets"]) == 5
    assert "error" in await api.admin("GET", "/wallets/0800", expect=404)
    assert "msisdn" in (await api.admin("POST", "/wallets", expect=400, json={"msisdn": "abc"}))["error"]


async def test_admin_ledger_lists_every_execution(api: Api) -> None:
    await api.charge("G1", amount="14500")
    await api.call(Operation.CREDIT, msisdn=POOR, amount="5", traceNumber="G2")
    ledger = await api.admin("GET", "/ledger")
    assert [e["trace_number"] for e in ledger["executions"]] == ["G1", "G2"]
    entry = ledger["executions"][0]
    assert (entry["type"], entry["msisdn"], entry["amount"], entry["agent"]) == (
        "charge",
        MSISDN,
        "14500.00",
        SANDBOX_USERNAME,
    )
    assert entry["balance_after"] == "2285500.00"
    only = await api.admin("GET", "/ledger", params={"msisdn": POOR})
    assert [e["trace_number"] for e in only["executions"]] == ["G2"]


async def test_admin_faults_can_be_set_added_read_and_cleared(api: Api) -> None:
    rule = {"operation": "credit", "kind": "malformed_json", "count": 2}
    listed = await api.admin("PUT", "/faults", json={"faults": ["charge:latency:ms=5", rule]})
    assert [(f["operation"], f["kind"], f["remaining"]) for f in listed["faults"]] == [
        ("charge", "latency", None),
        ("credit", "malformed_json", 2),
    ]
    assert isinstance(listed["random_seed"], int)
    added = await api.admin("POST", "/faults", json="status:status_lag:lag_s=1")
    assert len(added["faults"]) == 3
    error = await api.admin("PUT", "/faults", expect=400, json=["charge:explode"])
    assert "explode" in error["error"]
    assert len((await api.admin("GET", "/faults"))["faults"]) == 3
    assert (await api.admin("DELETE", "/faults"))["faults"] == []


async def test_admin_stats_count_calls_faults_and_executions(api: Api) -> None:
    await api.faults("balance:http_5xx_before_commit:count=1")
    await api.post(Operation.BALANCE, msisdn=MSISDN, accountID="6")
    await api.charge("ST1")
    stats = await api.admin("GET", "/stats")
    assert stats["calls"] == {"login": 1, "balance": 1, "charge": 1}
    assert stats["codes"] == {"login": {"PROCESSED": 1}, "charge": {"PROCESSED": 1}}
    assert stats["faults"] == {"http_5xx_before_commit": 1}
    assert (stats["executions"], stats["charged_total"], stats["active_tokens"]) == (1, "1000.00", 1)


async def test_admin_reset_restores_the_start(api: Api) -> None:
    await api.charge("Z1")
    await api.faults("*:latency:ms=1")
    await api.admin("PUT", "/config", json={"duplicate_trace": "reject"})
    await api.admin("POST", "/reset")
    assert await api.balance() == "2300000.00"
    assert (await api.admin("GET", "/ledger"))["count"] == 0
    assert (await api.admin("GET", "/faults"))["faults"] == []
    assert (await api.admin("GET", "/config"))["duplicate_trace"] == "execute"
    assert (await api.charge("Z2"))["status"] == "TOKEN_EXPIRED"


async def test_admin_config_reads_masked_and_validates_changes(api: Api) -> None:
    config = await api.admin("GET", "/config")
    assert config["agents"][0]["username"] == SANDBOX_USERNAME
    assert SANDBOX_API_KEY not in str(config)
    assert SANDBOX_CREDENTIALS not in str(config)
    changed = await api.admin("PUT", "/config", json={"token_lifetime_s": 5, "duplicate_trace": "replay"})
    assert (changed["token_lifetime_s"], changed["duplicate_trace"]) == (5, "replay")
    assert (await api.charge("C1"))["status"] == "PROCESSED"  # the agent still logs in with its secrets
    error = await api.admin("PUT", "/config", expect=400, json={"duplicate_trace": "sometimes"})
    assert "duplicate_trace" in error["error"]
    await api.admin("PUT", "/config", expect=400, json={"faults": []})
    await api.admin("PUT", "/config", expect=400, json={"demo_wallets": 5})
    assert (await api.admin("GET", "/health")) == {"status": "ok"}


# --- running it ----------------------------------------------------------------------------------


async def test_leaving_serve_sandbox_releases_a_hung_call_at_once() -> None:
    config = SandboxConfig(wallets=WALLETS, faults=[])
    headers = {wire.HEADER_API_KEY: SANDBOX_API_KEY}
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:  # outlives the server
        async with serve_sandbox(config) as running:
            http.base_url = httpx.URL(running.base_url)
            client = Api(http, running)
            await client.login()
            await client.faults("charge:hang_after_commit")
            hung = asyncio.create_task(client.charge("HANG"))
            await eventually(lambda: bool(running.state.ledger.executions))
            started = time.perf_counter()
        assert time.perf_counter() - started < 3.0  # not hang_s (an hour)
        with pytest.raises(httpx.TransportError):
            await hung


def test_sandbox_in_thread_serves_synchronous_callers() -> None:
    with (
        sandbox_in_thread(SandboxConfig(wallets=WALLETS)) as running,
        httpx.Client(base_url=running.base_url, headers={wire.HEADER_API_KEY: SANDBOX_API_KEY}) as http,
    ):
        login = http.post(
            wire.PATHS[Operation.LOGIN],
            data={"username": SANDBOX_USERNAME},
            headers={wire.HEADER_CREDENTIALS: SANDBOX_CREDENTIALS},
        )
        token = login.json()["token"]
        form = {"msisdn": MSISDN, "amount": "10", "traceNumber": "TH1", "token": token}
        assert http.post(wire.PATHS[Operation.CHARGE], data=form).json()["status"] == "PROCESSED"
        assert running.admin_url.endswith("/admin")
        assert [e.trace_number for e in running.state.ledger.executions] == ["TH1"]
