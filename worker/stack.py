"""The local stack as real processes, for the chaos run, the demo, the benchmarks and the tests.

    sandbox = SandboxProcess(options=["--seed-wallets", "2000"], log_path=work / "sandbox.log")
    await sandbox.start()                      # returns once GET /admin/health answers
    await sandbox.admin.set_faults(["charge:hang_after_commit:p=0.05"])
    worker = WorkerProcess(settings, work / "worker.log")   # ``ecash-worker run`` with ECASH_* from settings
    await worker.start(); await worker.kill()  # SIGKILL, like a crashed pod
    await produce(bootstrap, settings.commands_topic, commands)
    records = await read_to_end(bootstrap, settings.results_topic)
    await sandbox.stop()

Every child runs ``python -m worker.cli ...`` in a session of its own (a terminal's Ctrl-C reaches only the
parent, which decides how its children end). Children still running when the interpreter exits are killed
(``atexit``); a script should still stop them in a ``finally`` or with ``async with``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from worker.clock import Clock, SystemClock
from worker.settings import Settings, load_settings

ENV_PREFIX = "ECASH_"
T = TypeVar("T")
_POLL_S = 0.05
_LOG_TAIL_LINES = 20


class StackError(Exception):
    """A process of the stack did not start or answer; the message says where to look."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (another process may still take it before you do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def settings_env(settings: Settings | Mapping[str, Any]) -> dict[str, str]:
    """The ``ECASH_*`` environment that makes ``ecash-worker run`` (another process) use these settings.

    A mapping holds field names and values (``{"request_timeout_s": 1.5, ...}``); it is validated as
    ``Settings`` first, so a bad value fails here, in the parent. Unset optional values become ``""``
    (which every optional setting reads as unset), so nothing is inherited by accident.
    """
    if not isinstance(settings, Settings):
        settings = load_settings(**dict(settings))
    env: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            text = ""
        elif isinstance(value, SecretStr):
            text = value.get_secret_value()
        elif isinstance(value, list):
            text = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        env[f"{ENV_PREFIX}{name.upper()}"] = text
    return env


def child_environ(overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without its ``ECASH_*`` variables, plus ``overrides``."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    return {**inherited, **overrides}


def tail(path: Path | None, lines: int = _LOG_TAIL_LINES, max_bytes: int = 64 * 1024) -> str:
    """The last ``lines`` lines of a log file (empty if there is none), for an error message."""
    if path is None:
        return ""
    try:
        with path.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - max_bytes))
            text = log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# --- child processes --------------------------------------------------------------------------------

_LIVE: set[ChildProcess] = set()


def kill_children() -> None:
    """SIGKILL every child of this module still running (registered with ``atexit``)."""
    for child in list(_LIVE):
        child.kill_now()


atexit.register(kill_children)


class ChildProcess:
    """``python -m worker.cli <argv...>`` in its own session, stdout and stderr appended to a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self.argv = [sys.executable, "-m", "worker.cli", *argv]
        self.env = dict(env) if env is not None else child_environ({})
        self.log_path = log_path
        self.clock: Clock = clock or SystemClock()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit code of the last run (negative: killed by that signal); None while running."""
        return self.process.poll() if self.process is not None else None

    def spawn(self) -> None:
        """Start the process (no readiness check: see the subclasses' ``start``)."""
        if self.running:
            raise StackError(f"{self.name} is already running (pid {self.pid})")
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as files:
            out: Any = subprocess.DEVNULL
            if self.log_path is not None:
                out = files.enter_context(self.log_path.open("ab"))
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        _LIVE.add(self)

    async def wait(self, timeout_s: float) -> int | None:
        """The exit code once the process has ended, or None if it still runs after ``timeout_s``."""
        deadline_s = self.clock.monotonic_s() + timeout_s
        while self.process is not None:
            code = self.process.poll()
            if code is not None:
                _LIVE.discard(self)
                return code
            if self.clock.monotonic_s() >= deadline_s:
                return None
            await self.clock.sleep_s(_POLL_S)
        return None

    async def kill(self) -> int:
        """SIGKILL (no clean shutdown, like a crash) and reap; returns the exit code (-9)."""
        self.kill_now()
        code = await self.wait(10.0)
        if code is None:
            raise StackError(f"{self.name} (pid {self.pid}) survived SIGKILL")
        return code

    async def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, wait up to ``timeout_s`` for a clean exit, then SIGKILL; returns the exit code."""
        if self.process is None:
            raise StackError(f"{self.name} was never started")
        if self.running:
            self._signal(signal.SIGTERM)
        code = await self.wait(timeout_s)
        if code is None:
            return await self.kill()
        return code

    def detach(self) -> None:
        """Leave the process running when this interpreter exits (no ``atexit`` kill)."""
        _LIVE.discard(self)

    def kill_now(self) -> None:
        """Synchronous SIGKILL: for cleanup paths that cannot await."""
        if self.running:
            self._signal(signal.SIGKILL)
            assert self.process is not None
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5.0)
        if not self.running:
            _LIVE.discard(self)

    def _signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, sig)  # its own session: the group id is its pid
        except ProcessLookupError:
            pass
        except PermissionError:
            self.process.send_signal(sig)

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return tail(self.log_path, lines)


class WorkerProcess(ChildProcess):
    """``ecash-worker run`` with the ``ECASH_*`` environment of ``settings`` (JSON logs to ``log_path``).

    ``start`` may be called again after ``kill``/``terminate``: the same settings, the log appended.
    """

    def __init__(
        self,
        settings: Settings | Mapping[str, Any],
        log_path: Path,
        *,
        name: str = "worker",
        extra_env: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        overrides = {**settings_env(settings), f"{ENV_PREFIX}LOG_FORMAT": "json", **(extra_env or {})}
        super().__init__(name, ["run"], env=child_environ(overrides), log_path=log_path, clock=clock)

    async def start(self) -> None:
        """Spawn the worker. It joins its group on its own; readiness is up to the caller to judge."""
        self.spawn()


class SandboxAdmin:
    """The sandbox's admin API (docs/sandbox.md), one method per call; money as decimal strings."""

    def __init__(self, admin_url: str, *, timeout_s: float = 30.0) -> None:
        self.admin_url = admin_url
        self._http = httpx.AsyncClient(base_url=admin_url, timeout=timeout_s, trust_env=False)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        content = None if body is None else orjson.dumps(body)
        headers = {"content-type": "application/json"} if content is not None else None
        response = await self._http.request(method, path, content=content, headers=headers, params=params)
        if response.status_code >= 400:
            raise StackError(f"sandbox admin {method} {path}: HTTP {response.status_code} {response.text}")
        return orjson.loads(response.content)

    async def healthy(self, timeout_s: float = 2.0) -> bool:
        try:
            response = await self._http.get("/health", timeout=timeout_s)
            return response.status_code == 200 and bool(orjson.loads(response.content).get("status") == "ok")
        except (httpx.HTTPError, orjson.JSONDecodeError, AttributeError):
            return False

    async def seed_wallets(self, wallets: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Create (or replace) wallets: ``{"msisdn", "balance"?, "upper_credit_limit"?, ...}``."""
        answer = await self._call("POST", "/wallets", {"wallets": list(wallets)})
        return list(answer["wallets"])

    async def wallet(self, msisdn: str) -> dict[str, Any]:
        return dict(await self._call("GET", f"/wallets/{msisdn}"))

    async def set_faults(self, rules: Sequence[str | Mapping[str, Any]]) -> dict[str, Any]:
        """Replace the fault rules (compact strings or objects); answers ``{"random_seed", "faults"}``."""
        return dict(await self._call("PUT", "/faults", {"faults": list(rules)}))

    async def add_faults(self, rules: Sequence[str | Mapping[str, Any]]) -> dict[str, Any]:
        return dict(await self._call("POST", "/faults", {"faults": list(rules)}))

    async def clear_faults(self) -> dict[str, Any]:
        return dict(await self._call("DELETE", "/faults"))

    async def faults(self) -> dict[str, Any]:
        return dict(await self._call("GET", "/faults"))

    async def ledger(
        self, *, trace_number: str | None = None, msisdn: str | None = None
    ) -> list[dict[str, Any]]:
        """Every execution (duplicates included), oldest first."""
        params = {k: v for k, v in (("trace_number", trace_number), ("msisdn", msisdn)) if v is not None}
        return list((await self._call("GET", "/ledger", **params))["executions"])

    async def stats(self) -> dict[str, Any]:
        return dict(await self._call("GET", "/stats"))

    async def config(self) -> dict[str, Any]:
        return dict(await self._call("GET", "/config"))

    async def set_config(self, patch: Mapping[str, Any]) -> dict[str, Any]:
        return dict(await self._call("PUT", "/config", dict(patch)))

    async def expire_tokens(self) -> int:
        """End every session now (a token expiry storm); returns how many ended."""
        return int((await self._call("POST", "/tokens/expire"))["expired"])


class SandboxProcess(ChildProcess):
    """``ecash-worker sandbox --host H --port P <options>``; ``start`` returns once it answers.

    ``options`` are the CLI's own (``--seed-wallets 2000``, ``--fault SPEC``, ``--random-seed 7``...).
    """

    def __init__(
        self,
        *,
        options: Sequence[str] = (),
        port: int | None = None,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        argv = ["sandbox", "--host", host, "--port", str(self.port), *options]
        super().__init__("sandbox", argv, log_path=log_path, clock=clock)
        self.admin = SandboxAdmin(self.admin_url)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What the worker's ``api_base_url`` takes."""
        return f"{self.url}/eCashHost"

    @property
    def admin_url(self) -> str:
        return f"{self.url}/admin"

    async def start(self, timeout_s: float = 30.0) -> None:
        """Spawn and wait for ``GET /admin/health``; a sandbox that exits or stays silent is an error."""
        self.spawn()
        deadline_s = self.clock.monotonic_s() + timeout_s
        while not (self.running and await self.admin.healthy()):
            if not self.running:
                raise StackError(f"the sandbox exited with {self.returncode}:\n{self.log_tail()}")
            if self.clock.monotonic_s() >= deadline_s:
                self.kill_now()
                raise StackError(f"the sandbox did not answer on {self.url} in {timeout_s:g} s")
            await self.clock.sleep_s(0.1)

    async def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM (then SIGKILL); returns the exit code, None if it was not running."""
        code = await self.terminate(timeout_s) if self.running else None
        await self.admin.aclose()
        return code

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


# --- Kafka: produce fast, read to the end ------------------------------------------------------------


def command_bytes(message: Mapping[str, Any] | bytes, key: bytes | None = None) -> tuple[bytes, bytes | None]:
    """(value, key) of a command message: a dict is JSON with its MSISDN as key; bytes go as they are."""
    if isinstance(message, bytes):
        return message, key
    msisdn = message.get("msisdn")
    return orjson.dumps(dict(message)), (str(msisdn).encode() if msisdn else key)


class CommandProducer:
    """An idempotent ``acks=all`` producer that rides out a broker restart (``delivery_timeout_s``).

    ``send`` hands a message to the producer's batches and returns at once; ``flush`` waits for every
    message sent so far to be acknowledged (and raises if one failed).
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        client_kwargs: Mapping[str, Any] | None = None,
        linger_ms: int = 5,
        delivery_timeout_s: float = 120.0,
    ) -> None:
        self.topic = topic
        self.sent = 0
        self._pending: list[asyncio.Future[Any]] = []
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            max_batch_size=256 * 1024,
            request_timeout_ms=int(delivery_timeout_s * 1000),
            client_id="ecash-stack-producer",
            **dict(client_kwargs or {}),
        )

    async def __aenter__(self) -> Self:
        await self._producer.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                await self.flush()
        finally:
            await self._producer.stop()

    async def send(self, message: Mapping[str, Any] | bytes, key: bytes | None = None) -> None:
        value, msg_key = command_bytes(message, key)
        self._pending.append(await self._producer.send(self.topic, value=value, key=msg_key))
        self.sent += 1

    async def send_many(self, messages: Iterable[Mapping[str, Any] | bytes], key: bytes | None = None) -> int:
        """Send and flush; returns how many were sent."""
        count = 0
        for message in messages:
            await self.send(message, key)
            count += 1
        await self.flush()
        return count

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)


async def produce(
    bootstrap: str,
    topic: str,
    messages: Iterable[Mapping[str, Any] | bytes],
    *,
    key: bytes | None = None,
    client_kwargs: Mapping[str, Any] | None = None,
) -> int:
    """Send every message (dicts as JSON keyed by MSISDN, bytes as they are with ``key``); wait for acks."""
    async with CommandProducer(bootstrap, topic, client_kwargs=client_kwargs) as producer:
        return await producer.send_many(messages, key)


@dataclass(frozen=True)
class TopicRecord:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None

    def json(self) -> Any:
        return orjson.loads(self.value) if self.value is not None else None


async def read_to_end(
    bootstrap: str,
    topic: str,
    *,
    client_kwargs: Mapping[str, Any] | None = None,
    timeout_s: float = 120.0,
    clock: Clock | None = None,
) -> list[TopicRecord]:
    """Every record of ``topic``, from the beginning to the end offsets taken when the read starts.

    Raises ``StackError`` if the topic does not exist or the end is not reached within ``timeout_s``.
    """
    partitions = [TopicPartition(topic, p) for p in await partition_ids(bootstrap, topic, client_kwargs)]
    clock = clock or SystemClock()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="ecash-stack-reader",
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **dict(client_kwargs or {}),
    )
    await consumer.start()
    try:
        return await _read_assigned(consumer, partitions, timeout_s, clock)
    finally:
        await consumer.stop()


async def partition_ids(
    bootstrap: str, topic: str, client_kwargs: Mapping[str, Any] | None = None
) -> list[int]:
    """The partition numbers of ``topic``; ``StackError`` if it does not exist (it is never created:
    only a listed topic is described, so a cluster that auto-creates topics does not make it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **dict(client_kwargs or {}))
    try:
        await admin.start()
        described = await admin.describe_topics([topic]) if topic in await admin.list_topics() else []
    finally:
        await admin.close()
    for entry in described:
        if entry["topic"] == topic and entry["error_code"] == 0 and entry["partitions"]:
            return sorted(int(p["partition"]) for p in entry["partitions"])
    raise StackError(f"topic {topic} does not exist")


async def _read_assigned(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], timeout_s: float, clock: Clock
) -> list[TopicRecord]:
    ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    records: list[TopicRecord] = []
    deadline_s = clock.monotonic_s() + timeout_s
    pending = {tp for tp in partitions if ends[tp] > 0}
    while pending:
        if clock.monotonic_s() >= deadline_s:
            raise StackError(f"reading {partitions[0].topic}: the end was not reached in {timeout_s:g} s")
        batch = await consumer.getmany(*pending, timeout_ms=200, max_records=10_000)
        for tp, messages in batch.items():
            records.extend(
                TopicRecord(m.partition, m.offset, m.key, m.value, m.timestamp)
                for m in messages
                if m.offset < ends[tp]
            )
        for tp in list(pending):
            if await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)
    return records


class ResultTail:
    """Follows a results topic from its beginning in the background: which trace numbers are answered.

    ``results`` maps trace number -> event id -> result (JSON). Survives a broker restart (the consumer
    reconnects by itself). Use ``async with`` or ``start``/``stop``.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        client_kwargs: Mapping[str, Any] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.topic = topic
        self._bootstrap = bootstrap
        self._client_kwargs = dict(client_kwargs or {})
        self.results: dict[str, dict[str, dict[str, Any]]] = {}
        self.records = 0
        self._clock: Clock = clock or SystemClock()
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        ids = await partition_ids(self._bootstrap, self.topic, self._client_kwargs)
        tps = [TopicPartition(self.topic, p) for p in ids]
        self._consumer = consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="ecash-stack-tail",
            **self._client_kwargs,
        )
        await consumer.start()
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._follow(consumer), name=f"tail-{self.topic}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def answered(self, traces: Iterable[str]) -> int:
        """How many of ``traces`` have at least one result."""
        return sum(1 for trace in traces if trace in self.results)

    async def wait_for(self, traces: Iterable[str], timeout_s: float) -> bool:
        """True once every one of ``traces`` has a result; False when ``timeout_s`` passes first."""
        wanted = set(traces)
        deadline_s = self._clock.monotonic_s() + timeout_s
        while not wanted <= self.results.keys():
            if self._clock.monotonic_s() >= deadline_s:
                return False
            await self._clock.sleep_s(0.1)
        return True

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
            except KafkaError:
                await self._clock.sleep_s(0.5)
                continue
            for messages in batch.values():
                for message in messages:
                    self._add(message.value)

    def _add(self, value: bytes | None) -> None:
        self.records += 1
        try:
            result = orjson.loads(value or b"null")
            trace, event_id = str(result["trace_number"]), str(result["event_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        self.results.setdefault(trace, {})[event_id] = result


async def cancelled_by_sigterm(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` so that SIGTERM cancels it as Ctrl-C does (its ``finally`` blocks stop the stack)."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
