"""The sandbox's bank: agents, sessions, wallets and a ledger, answering in the spec's wire shapes.

Pure: no I/O, time from an injected ``worker.clock.Clock``. ``SandboxState.handle`` takes one API call
(operation, form fields, headers) and returns the ``Reply`` the real host would send. Every method is
synchronous, so a call is atomic on the event loop: no locks are needed.

Decisions where the spec is silent (documented in docs/sandbox.md):
- a wrong or missing APIKey answers INVALID_CREDENTIAL (HTTP status ``bad_api_key_http_status``, 200);
- an unknown or expired token answers TOKEN_EXPIRED; a missing or malformed field INVALID_PARAMETER;
- a repeated trace number follows ``duplicate_trace``; Status of an unknown trace number, or with a
  different amount, answers ``unknown_status_code``;
- trace numbers are scoped per agent (History shows them as ``<agent>-<trace>``).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import string
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ecash_dev.sandbox.faults import FaultRule
from worker.clock import Clock
from worker.contracts import MSISDN_PATTERN, TRACE_NUMBER_PATTERN
from worker.ecash import wire
from worker.ecash.wire import Operation
from worker.settings import SANDBOX_API_KEY, SANDBOX_CREDENTIALS, SANDBOX_USERNAME

WIB = timezone(timedelta(hours=7), "WIB")  # the host's clock: trxDateTime carries +07:00
CENTS = Decimal("0.01")

PROCESSED = "PROCESSED"
INVALID_CREDENTIAL = "INVALID_CREDENTIAL"
INVALID_PARAMETER = "INVALID_PARAMETER"
USER_NOT_FOUND = "USER_NOT_FOUND"
TOKEN_EXPIRED = "TOKEN_EXPIRED"  # noqa: S105 (a response code, not a secret)
MEMBER_NOT_FOUND = "MEMBER_NOT_FOUND"
NOT_ENOUGH_CREDITS = "NOT_ENOUGH_CREDITS"
RECEIVER_UPPER_CREDIT_LIMIT_REACHED = "RECEIVER_UPPER_CREDIT_LIMIT_REACHED"
NO_TRANSACTION = "NO_TRANSACTION"

_AMOUNT = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,2})?$")
_MSISDN = re.compile(MSISDN_PATTERN)
_TRACE = re.compile(TRACE_NUMBER_PATTERN)
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_TOKEN_ALPHABET = string.ascii_lowercase + string.digits
TOKEN_LENGTH = 48
TICKET_LENGTH = 49  # as long as the spec's example ticket

_MONEY_FIELDS = (wire.F_MSISDN, wire.F_AMOUNT, wire.F_TRACE_NUMBER, wire.F_TOKEN)
MANDATORY_FIELDS: dict[Operation, tuple[str, ...]] = {
    Operation.LOGIN: (wire.F_USERNAME,),
    Operation.LOGOUT: (wire.F_TOKEN,),
    Operation.VALIDATE_ACCOUNT: (wire.F_MSISDN, wire.F_TOKEN),
    Operation.REGISTER_TICKET: (wire.F_MOBILENO, wire.F_TOKEN),
    Operation.BALANCE: (wire.F_MSISDN, wire.F_ACCOUNT_ID, wire.F_TOKEN),
    Operation.HISTORY: (
        *(wire.F_MSISDN, wire.F_TOKEN, wire.F_CURRENT_PAGE, wire.F_PAGE_SIZE),
        *(wire.F_ACCOUNT_ID, wire.F_START_DATE, wire.F_END_DATE),
    ),
    Operation.STATUS: (wire.F_TOKEN, wire.F_AMOUNT, wire.F_TRACE_NUMBER),
    Operation.CHARGE: _MONEY_FIELDS,
    Operation.CREDIT: _MONEY_FIELDS,
}


class DuplicateTracePolicy(StrEnum):
    EXECUTE = "execute"  # run it again: the worst case, the ledger shows every execution
    REJECT = "reject"  # answer duplicate_reject_code, move nothing
    REPLAY = "replay"  # answer the first execution's result again, move nothing


# --- configuration ----------------------------------------------------------------------------


class AgentConfig(BaseModel):
    """An agent the host knows. Credentials match when equal to ``credentials`` or, with a private key
    configured, when they are Base64 of ``password`` RSA-encrypted (PKCS#1 v1.5) with its public key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: Annotated[str, Field(min_length=1, max_length=64)]
    api_key: SecretStr
    credentials: SecretStr | None = None
    password: SecretStr | None = None


Money = Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=2)]


class WalletSpec(BaseModel):
    """A wallet to create or replace (admin API, config). Money as decimal strings or integers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    msisdn: Annotated[str, Field(pattern=MSISDN_PATTERN)]
    balance: Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=2)] = Decimal("0.00")
    upper_credit_limit: Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=2)] = Decimal(
        "5000000.00"
    )
    reserved_amount: Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=2)] = Decimal("0.00")
    name: Annotated[str, Field(max_length=100)] = "Sandbox Member"
    group_id: Annotated[str, Field(max_length=16)] = "149"
    id: Annotated[str, Field(max_length=16)] | None = None  # "Id" in Validate Account; assigned if absent
    kyc: bool = True


def _default_agents() -> list[AgentConfig]:
    return [
        AgentConfig(
            username=SANDBOX_USERNAME,
            api_key=SecretStr(SANDBOX_API_KEY),
            credentials=SecretStr(SANDBOX_CREDENTIALS),
        )
    ]


class SandboxConfig(BaseModel):
    """Everything the sandbox can be told. ``faults`` and ``random_seed`` feed the fault injector."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agents: list[AgentConfig] = Field(default_factory=_default_agents, min_length=1)
    wallets: list[WalletSpec] = Field(default_factory=list)
    demo_wallets: int = Field(0, ge=0, le=1_000_000, description="Create N wallets named by demo_msisdn(i)")
    token_lifetime_s: float = Field(3600.0, ge=0, description="0 = tokens never expire")
    single_session_per_agent: bool = False  # a Login ends the agent's other sessions
    duplicate_trace: DuplicateTracePolicy = DuplicateTracePolicy.EXECUTE
    duplicate_reject_code: Annotated[str, Field(min_length=1, max_length=64)] = "GENERAL_ERROR"
    unknown_status_code: Annotated[str, Field(min_length=1, max_length=64)] = "PAYMENT_NOT_FOUND"
    base_latency_ms: float = Field(0.0, ge=0, le=600_000)
    auto_create_wallets: bool = False
    default_balance: Money = Decimal("10000000.00")
    default_upper_credit_limit: Money = Decimal("1000000000.00")
    bad_api_key_http_status: int = Field(200, ge=200, le=599)
    hang_s: float = Field(3600.0, gt=0, description="How long hang_after_commit holds a call")
    max_page_size: int = Field(100, ge=1, le=10_000)
    random_seed: int | None = None
    private_key_pem: SecretStr | None = None
    faults: list[FaultRule] = Field(default_factory=list)


def demo_msisdn(index: int) -> str:
    """The MSISDN of demo wallet ``index`` (1-based): 13 digits, ``0813`` then the zero-padded index."""
    return f"0813{index:09d}"


# --- wire value helpers (pure) -----------------------------------------------------------------


def parse_amount(text: str) -> Decimal | None:
    """A plain positive decimal (``100000``, ``1500.5``, at most 12 + 2 digits), else None."""
    if not _AMOUNT.match(text):
        return None
    value = Decimal(text)
    return value if value > 0 else None


def parse_date(text: str) -> date | None:
    if not _DATE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def parse_count(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def money(value: Decimal) -> str:
    """``2300000.00``: the Balance Inquiry format."""
    return f"{value.quantize(CENTS):f}"


def rupiah(value: Decimal) -> str:
    """``Rp -14.500,00``: the History format (``.`` thousands, ``,`` decimals, sign after ``Rp``)."""
    sign = "-" if value < 0 else ""
    grouped = f"{abs(value).quantize(CENTS):,.2f}".translate(str.maketrans(",.", ".,"))
    return f"Rp {sign}{grouped}"


def _random_word(length: int) -> str:
    return "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(length))


# --- data ---------------------------------------------------------------------------------------


@dataclass
class Wallet:
    msisdn: str
    balance: Decimal
    upper_credit_limit: Decimal
    reserved_amount: Decimal
    name: str
    group_id: str
    id: str
    kyc: bool

    @property
    def available(self) -> Decimal:
        return self.balance - self.reserved_amount


@dataclass(frozen=True)
class Execution:
    """One movement of money: every Charge/Credit that executed, duplicates included."""

    sequence: int
    agent: str
    type: Operation  # CHARGE (debits the member) or CREDIT (credits the member)
    trace_number: str
    msisdn: str
    amount: Decimal
    transaction_number: str
    trx_datetime: datetime  # in WIB
    committed_mono_s: float
    balance_after: Decimal
    transfer_type_id: str | None = None
    description: str | None = None

    @property
    def signed_amount(self) -> Decimal:
        """From the member's perspective: a Charge takes money away."""
        return -self.amount if self.type is Operation.CHARGE else self.amount


@dataclass(frozen=True)
class Reply:
    code: str
    body: dict[str, Any]
    http_status: int = 200


@dataclass
class _Session:
    agent: str
    expires_mono_s: float | None


@dataclass
class Ledger:
    executions: list[Execution] = field(default_factory=list)
    by_trace: dict[tuple[str, str], list[Execution]] = field(default_factory=dict)
    by_msisdn: dict[str, list[Execution]] = field(default_factory=dict)

    def record(self, execution: Execution) -> None:
        self.executions.append(execution)
        self.by_trace.setdefault((execution.agent, execution.trace_number), []).append(execution)
        self.by_msisdn.setdefault(execution.msisdn, []).append(execution)

    def find(self, agent: str, trace_number: str) -> list[Execution]:
        return self.by_trace.get((agent, trace_number), [])

    def duplicated(self) -> dict[str, int]:
        """Trace numbers executed more than once, with how often (``agent-trace`` if not the only agent)."""
        agents = {agent for agent, _ in self.by_trace}
        return {
            trace if len(agents) == 1 else f"{agent}-{trace}": len(runs)
            for (agent, trace), runs in self.by_trace.items()
            if len(runs) > 1
        }


@dataclass
class Stats:
    calls: Counter[str] = field(default_factory=Counter)  # per operation, counted by the app
    codes: dict[str, Counter[str]] = field(default_factory=dict)  # per operation, the answered code
    faults: Counter[str] = field(default_factory=Counter)  # per fault kind applied
    logins: int = 0
    login_failures: int = 0
    duplicate_attempts: int = 0  # Charge/Credit calls that repeated a known trace number
    in_flight: int = 0  # API calls inside the handler now (latency included), kept by the app
    max_in_flight: int = 0

    def answered(self, operation: Operation, code: str) -> None:
        self.codes.setdefault(operation.value, Counter())[code] += 1


Decoder = Callable[[str], str | None]


def rsa_password_decoder(private_key_pem: bytes) -> Decoder:
    """Credentials (Base64 of an RSA PKCS#1 v1.5 ciphertext) to the password, or None if they are not."""
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the sandbox private key must be an RSA key")

    def decode(credentials: str) -> str | None:
        try:
            plain = key.decrypt(base64.b64decode(credentials, validate=True), padding.PKCS1v15())
            return plain.decode()
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None

    return decode


# --- the host -----------------------------------------------------------------------------------


class SandboxState:
    """The host's memory and rules. ``handle`` is the API; the other public methods serve the admin API."""

    def __init__(self, config: SandboxConfig, clock: Clock) -> None:
        self.clock = clock
        self.config = config
        self._agents_by_name: dict[str, AgentConfig] = {}
        self._agents_by_key: dict[str, AgentConfig] = {}
        self._decode: Decoder | None = None
        self.wallets: dict[str, Wallet] = {}
        self.ledger = Ledger()
        self.stats = Stats()
        self._sessions: dict[str, _Session] = {}
        self._next_wallet_id = 100
        self.configure(config)
        self._seed_wallets()

    # --- admin ------------------------------------------------------------------------------

    def configure(self, config: SandboxConfig) -> None:
        """Take a new configuration; wallets, ledger and sessions stay as they are."""
        pem = config.private_key_pem
        self._decode = rsa_password_decoder(pem.get_secret_value().encode()) if pem is not None else None
        self.config = config
        self._agents_by_name = {agent.username: agent for agent in config.agents}
        self._agents_by_key = {agent.api_key.get_secret_value(): agent for agent in config.agents}

    def reset(self) -> None:
        """Forget wallets, ledger, sessions and stats; seed the configured wallets again."""
        self.wallets.clear()
        self.ledger = Ledger()
        self.stats = Stats()
        self._sessions.clear()
        self._next_wallet_id = 100
        self._seed_wallets()

    def put_wallet(self, spec: WalletSpec) -> Wallet:
        """Create or replace a wallet."""
        wallet = Wallet(
            msisdn=spec.msisdn,
            balance=spec.balance.quantize(CENTS),
            upper_credit_limit=spec.upper_credit_limit.quantize(CENTS),
            reserved_amount=spec.reserved_amount.quantize(CENTS),
            name=spec.name,
            group_id=spec.group_id,
            id=spec.id or self._new_wallet_id(),
            kyc=spec.kyc,
        )
        self.wallets[spec.msisdn] = wallet
        return wallet

    def expire_all_tokens(self) -> int:
        count = len(self._sessions)
        self._sessions.clear()
        return count

    def expire_token(self, token: str | None) -> None:
        if token is not None:
            self._sessions.pop(token, None)

    def active_tokens(self) -> int:
        now = self.clock.monotonic_s()
        return sum(1 for s in self._sessions.values() if s.expires_mono_s is None or s.expires_mono_s > now)

    def _seed_wallets(self) -> None:
        for index in range(1, self.config.demo_wallets + 1):
            self.put_wallet(self._default_spec(demo_msisdn(index), name=f"Demo Member {index}"))
        for spec in self.config.wallets:
            self.put_wallet(spec)

    def _default_spec(self, msisdn: str, *, name: str) -> WalletSpec:
        return WalletSpec(
            msisdn=msisdn,
            balance=self.config.default_balance,
            upper_credit_limit=self.config.default_upper_credit_limit,
            name=name,
        )

    def _new_wallet_id(self) -> str:
        self._next_wallet_id += 1
        return str(self._next_wallet_id)

    # --- the API ------------------------------------------------------------------------------

    def handle(
        self,
        operation: Operation,
        form: Mapping[str, str],
        *,
        api_key: str | None,
        credentials: str | None = None,
        status_lag_s: float = 0.0,
    ) -> Reply:
        """Answer one API call as the host would. ``status_lag_s`` hides younger transactions from Status."""
        reply = self._dispatch(operation, form, api_key, credentials, status_lag_s)
        self.stats.answered(operation, reply.code)
        return reply

    def _dispatch(  # noqa: C901 - one flat case per API operation
        self,
        operation: Operation,
        form: Mapping[str, str],
        api_key: str | None,
        credentials: str | None,
        status_lag_s: float,
    ) -> Reply:
        agent = self._agents_by_key.get(api_key or "")
        if agent is None:
            return refusal(operation, INVALID_CREDENTIAL, form, self.config.bad_api_key_http_status)
        if not fields_valid(operation, form):
            return refusal(operation, INVALID_PARAMETER, form)
        if operation is Operation.LOGIN:
            return self._login(agent, form[wire.F_USERNAME], credentials)
        if not self._session_valid(form[wire.F_TOKEN], agent.username):
            return refusal(operation, TOKEN_EXPIRED, form)
        if operation is Operation.LOGOUT:
            self._sessions.pop(form[wire.F_TOKEN], None)
            return Reply(PROCESSED, {"status": PROCESSED})
        if operation is Operation.REGISTER_TICKET:
            ticket = _random_word(TICKET_LENGTH)
            mobileno = form[wire.F_MOBILENO]
            return Reply(PROCESSED, {"ticket": ticket, "status": PROCESSED, "mobileno": mobileno})
        if operation is Operation.STATUS:
            return self._status(agent.username, form, status_lag_s)
        if operation in wire.MONEY_OPERATIONS:
            return self._move(agent.username, operation, form)
        wallet = self._wallet(form[wire.F_MSISDN])
        if wallet is None:
            return refusal(operation, MEMBER_NOT_FOUND, form)
        if operation is Operation.VALIDATE_ACCOUNT:
            return _validate_account_reply(wallet)
        if operation is Operation.BALANCE:
            return _balance_reply(wallet)
        return self._history(wallet, form)

    def _login(self, agent: AgentConfig, username: str, credentials: str | None) -> Reply:
        named = self._agents_by_name.get(username)
        if named is None:
            code = USER_NOT_FOUND
        elif named is not agent or not self._credentials_match(agent, credentials):
            code = INVALID_CREDENTIAL
        else:
            code = PROCESSED
        if code != PROCESSED:
            self.stats.login_failures += 1
            return Reply(code, {"status": code})
        self.stats.logins += 1
        self._purge_sessions(agent.username if self.config.single_session_per_agent else None)
        token = _random_word(TOKEN_LENGTH)
        lifetime_s = self.config.token_lifetime_s
        expires = self.clock.monotonic_s() + lifetime_s if lifetime_s > 0 else None
        self._sessions[token] = _Session(agent=agent.username, expires_mono_s=expires)
        return Reply(PROCESSED, {"status": PROCESSED, "token": token})

    def _credentials_match(self, agent: AgentConfig, presented: str | None) -> bool:
        if not presented:
            return False
        expected = agent.credentials.get_secret_value() if agent.credentials is not None else None
        if expected is not None and secrets.compare_digest(presented.encode(), expected.encode()):
            return True
        if self._decode is None or agent.password is None:
            return False
        password = self._decode(presented)
        return password is not None and secrets.compare_digest(
            password.encode(), agent.password.get_secret_value().encode()
        )

    def _purge_sessions(self, agent: str | None) -> None:
        """Drop expired sessions, and every session of ``agent`` if given."""
        now = self.clock.monotonic_s()
        for token, session in list(self._sessions.items()):
            expired = session.expires_mono_s is not None and session.expires_mono_s <= now
            if expired or session.agent == agent:
                del self._sessions[token]

    def _session_valid(self, token: str, agent: str) -> bool:
        session = self._sessions.get(token)
        if session is None or session.agent != agent:
            return False
        if session.expires_mono_s is not None and session.expires_mono_s <= self.clock.monotonic_s():
            del self._sessions[token]
            return False
        return True

    def _wallet(self, msisdn: str) -> Wallet | None:
        wallet = self.wallets.get(msisdn)
        if wallet is None and self.config.auto_create_wallets:
            wallet = self.put_wallet(self._default_spec(msisdn, name=f"Member {msisdn[-4:]}"))
        return wallet

    def _move(self, agent: str, operation: Operation, form: Mapping[str, str]) -> Reply:
        trace = form[wire.F_TRACE_NUMBER]
        earlier = self.ledger.find(agent, trace)
        if earlier:
            self.stats.duplicate_attempts += 1
            if self.config.duplicate_trace is DuplicateTracePolicy.REPLAY:
                return _money_reply(earlier[0])
            if self.config.duplicate_trace is DuplicateTracePolicy.REJECT:
                return refusal(operation, self.config.duplicate_reject_code, form)
        wallet = self._wallet(form[wire.F_MSISDN])
        if wallet is None:
            return refusal(operation, MEMBER_NOT_FOUND, form)
        amount = Decimal(form[wire.F_AMOUNT]).quantize(CENTS)
        if operation is Operation.CHARGE and wallet.available < amount:
            return refusal(operation, NOT_ENOUGH_CREDITS, form)
        if operation is Operation.CREDIT and wallet.balance + amount > wallet.upper_credit_limit:
            return refusal(operation, RECEIVER_UPPER_CREDIT_LIMIT_REACHED, form)
        return _money_reply(self._execute(agent, operation, wallet, amount, form))

    def _execute(
        self, agent: str, operation: Operation, wallet: Wallet, amount: Decimal, form: Mapping[str, str]
    ) -> Execution:
        """Move the money and write it in the ledger: the one place a balance changes."""
        wallet.balance += -amount if operation is Operation.CHARGE else amount
        sequence = len(self.ledger.executions) + 1
        now = self.clock.now().astimezone(WIB)
        transfer_field = (
            wire.F_CHARGE_TRANSFER_TYPE if operation is Operation.CHARGE else wire.F_CREDIT_TRANSFER_TYPE
        )
        execution = Execution(
            sequence=sequence,
            agent=agent,
            type=operation,
            trace_number=form[wire.F_TRACE_NUMBER],
            msisdn=wallet.msisdn,
            amount=amount,
            transaction_number=f"{now:%Y%m%d}{sequence:012d}",
            trx_datetime=now,
            committed_mono_s=self.clock.monotonic_s(),
            balance_after=wallet.balance,
            transfer_type_id=form.get(transfer_field) or None,
            description=form.get(wire.F_DESCRIPTION) or None,
        )
        self.ledger.record(execution)
        return execution

    def _status(self, agent: str, form: Mapping[str, str], lag_s: float) -> Reply:
        trace = form[wire.F_TRACE_NUMBER]
        amount = Decimal(form[wire.F_AMOUNT])
        visible_before = self.clock.monotonic_s() - lag_s
        for execution in self.ledger.find(agent, trace):
            if execution.amount == amount and execution.committed_mono_s <= visible_before:
                return Reply(PROCESSED, {"traceNumber": trace, "status": PROCESSED})
        return refusal(Operation.STATUS, self.config.unknown_status_code, form)

    def _history(self, wallet: Wallet, form: Mapping[str, str]) -> Reply:
        start = parse_date(form[wire.F_START_DATE])
        end = parse_date(form[wire.F_END_DATE])
        page = parse_count(form[wire.F_CURRENT_PAGE])
        size = parse_count(form[wire.F_PAGE_SIZE])
        if start is None or end is None or page is None or size is None:
            return refusal(Operation.HISTORY, INVALID_PARAMETER, form)
        if start > end or not 1 <= size <= self.config.max_page_size:
            return refusal(Operation.HISTORY, INVALID_PARAMETER, form)
        runs = self.ledger.by_msisdn.get(wallet.msisdn, [])
        matching = [e for e in reversed(runs) if start <= e.trx_datetime.date() <= end]
        shown = matching[page * size : (page + 1) * size]
        if not shown:
            return Reply(NO_TRANSACTION, {"status": NO_TRANSACTION})
        details = [_history_entry(e, wallet) for e in shown]
        return Reply(PROCESSED, {"status": PROCESSED, "accountHistoryDetails": details})


def refusal(operation: Operation, code: str, form: Mapping[str, str], http_status: int = 200) -> Reply:
    """A non-PROCESSED answer in the operation's shape, echoing the request's identifying fields."""
    echo: tuple[tuple[str, str], ...] = ()
    if operation in wire.MONEY_OPERATIONS:
        echo = ((wire.F_MSISDN, wire.F_MSISDN), (wire.F_TRACE_NUMBER, wire.F_TRACE_NUMBER))
    elif operation is Operation.STATUS:
        echo = ((wire.F_TRACE_NUMBER, wire.F_TRACE_NUMBER),)
    elif operation is Operation.REGISTER_TICKET:
        echo = ((wire.F_MOBILENO, wire.F_MOBILENO),)
    elif operation is Operation.VALIDATE_ACCOUNT:
        echo = (("MSISDN", wire.F_MSISDN),)
    status_key = "Status" if operation is Operation.VALIDATE_ACCOUNT else "status"
    body: dict[str, Any] = {status_key: code}
    body.update((out, form[name]) for out, name in echo if name in form)
    return Reply(code, body, http_status)


def fields_valid(operation: Operation, form: Mapping[str, str]) -> bool:
    """Every mandatory field present and non-empty, and the ones with a known shape well-formed."""
    for name in MANDATORY_FIELDS[operation]:
        value = form.get(name)
        if not value or not _field_value_valid(name, value):
            return False
    return True


def _field_value_valid(name: str, value: str) -> bool:
    if name in (wire.F_MSISDN, wire.F_MOBILENO):
        return _MSISDN.match(value) is not None
    if name == wire.F_AMOUNT:
        return parse_amount(value) is not None
    if name == wire.F_TRACE_NUMBER:
        return _TRACE.match(value) is not None
    if name == wire.F_TOKEN:
        return len(value) <= 128
    return len(value) <= 64


def _money_reply(execution: Execution) -> Reply:
    return Reply(
        PROCESSED,
        {
            "msisdn": execution.msisdn,
            "status": PROCESSED,
            "traceNumber": execution.trace_number,
            "transactionNumber": execution.transaction_number,
            "trxDateTime": execution.trx_datetime.isoformat(timespec="milliseconds"),
        },
    )


def _validate_account_reply(wallet: Wallet) -> Reply:
    body = {
        "Id": wallet.id,
        "groupID": wallet.group_id,
        "Status": PROCESSED,
        "MSISDN": wallet.msisdn,
        "name": wallet.name,
        "kyc": "true" if wallet.kyc else "false",
    }
    return Reply(PROCESSED, body)


def _balance_reply(wallet: Wallet) -> Reply:
    body = {
        "accountBalance": money(wallet.balance),
        "status": PROCESSED,
        "upperCreditLimit": money(wallet.upper_credit_limit),
        "reservedAmount": money(wallet.reserved_amount),
    }
    return Reply(PROCESSED, body)


def _history_entry(execution: Execution, wallet: Wallet) -> dict[str, Any]:
    is_charge = execution.type is Operation.CHARGE
    kind = "Charge" if is_charge else "Credit"
    return {
        "amount": rupiah(execution.signed_amount),
        "username": execution.agent,
        "parentTransactionNumber": "",
        "description": execution.description or f"{kind} {execution.trace_number}",
        "transferType": "Pembayaran e-cash" if is_charge else "Kirim e-cash",
        "name": wallet.name,
        "transactionNumber": execution.transaction_number,
        "transactionDate": f"{execution.trx_datetime:%d/%m/%Y}",
        "trxDateTime": execution.trx_datetime.isoformat(timespec="seconds"),
        "transferTypeID": execution.transfer_type_id or ("361" if is_charge else "362"),
        "privateFields": {},
        "status": PROCESSED,
        "traceNumber": f"{execution.agent}-{execution.trace_number}",
    }
