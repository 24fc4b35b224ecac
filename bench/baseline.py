"""The naive design, for comparison: what a team writes first. Benchmark-only; never run it against money.

    python -m bench.baseline          # same ECASH_* environment as ``ecash-worker run``

An aiokafka consumer in a group. Each fetched batch is split by partition; the partitions of a batch run
side by side (``asyncio.gather``), and inside a partition the messages run one after another: parse the
command, call Charge/Credit with httpx's default client, publish the result (acks=all, awaited), commit
the message's offset. No journal, no lanes per MSISDN, no Status Inquiry: a timeout is reported as
``failed`` (the money may have moved: this is the bug the real worker exists to avoid). Concurrency is
therefore the number of partitions with work in the batch, at most ``ECASH_TOPIC_PARTITIONS``.

Each result carries two headers for the benchmark: ``event_id`` (as the worker's) and ``bench_started_ms``
(when this process started working on the command), so the benchmark can compute service latency.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from datetime import UTC, datetime

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError

from worker.contracts import Command, CommandType, Outcome, ResolvedBy, Result, event_id_for
from worker.ecash import wire
from worker.ecash.credentials import CredentialsProvider
from worker.ecash.models import ChargeRequest, CreditRequest, LoginRequest, WireRequest
from worker.settings import Settings, SettingsError, load_settings


class NaiveApi:
    """One token, httpx's default pool, one re-login on TOKEN_EXPIRED."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self._settings = settings
        self._http = http
        self._credentials = CredentialsProvider.from_settings(settings)
        self._token: str | None = None

    async def login(self) -> None:
        headers = {
            wire.HEADER_API_KEY: self._settings.api_key.get_secret_value(),
            wire.HEADER_CREDENTIALS: self._credentials.header_value().get_secret_value(),
        }
        form = LoginRequest(username=self._settings.api_username).form()
        response = await self._http.post(wire.PATHS[wire.Operation.LOGIN], data=form, headers=headers)
        token = response.json().get("token")
        if not isinstance(token, str):
            raise RuntimeError(f"login refused: {response.text[:200]}")
        self._token = token

    async def money(self, request: WireRequest) -> str:
        """The answered status, or raises the transport's exception."""
        for _ in range(2):
            if self._token is None:
                await self.login()
            assert self._token is not None
            form = {**request.fields(), wire.F_TOKEN: self._token}
            headers = {wire.HEADER_API_KEY: self._settings.api_key.get_secret_value()}
            response = await self._http.post(wire.PATHS[request.operation], data=form, headers=headers)
            status = str(response.json().get("status", ""))
            if status != "TOKEN_EXPIRED":
                return status
            self._token = None
        return "TOKEN_EXPIRED"


def _request(command: Command) -> WireRequest:
    if command.type is CommandType.CHARGE:
        return ChargeRequest(
            msisdn=command.msisdn,
            amount=command.amount,
            trace_number=command.trace_number,
            transfer_type_id=command.transfer_type_id,
            description=command.description,
        )
    return CreditRequest(
        msisdn=command.msisdn,
        amount=command.amount,
        trace_number=command.trace_number,
        transfer_type_id=command.transfer_type_id,
    )


async def process(api: NaiveApi, value: bytes, partition: int, offset: int) -> Result | None:
    """The command's result; None for a message that is not a command (skipped, as a first cut would)."""
    try:
        command = Command.model_validate_json(value)
    except ValidationError:
        return None
    outcome, code, detail = Outcome.FAILED, None, ""
    try:
        code = await api.money(_request(command))
    except (httpx.HTTPError, ValueError) as exc:
        detail = f"call failed: {type(exc).__name__}"
    else:
        outcome = Outcome.SUCCEEDED if code == "PROCESSED" else Outcome.DECLINED
        detail = f"answered {code}"
    return Result(
        event_id=event_id_for(command.trace_number, partition, offset),
        trace_number=command.trace_number,
        type=command.type,
        msisdn=command.msisdn,
        amount=command.amount,
        outcome=outcome,
        response_code=code,
        resolved_by=ResolvedBy.RESPONSE,
        attempts=1,
        detail=detail,
        completed_at=datetime.now(UTC),
        metadata=command.metadata,
    )


class Baseline:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stop = asyncio.Event()
        self._consumer = AIOKafkaConsumer(
            settings.commands_topic,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True
        )

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        timeout = httpx.Timeout(self._settings.request_timeout_s, connect=self._settings.connect_timeout_s)
        async with httpx.AsyncClient(base_url=self._settings.api_base_url, timeout=timeout) as http:
            api = NaiveApi(self._settings, http)
            await api.login()
            await self._producer.start()
            await self._consumer.start()
            try:
                while not self._stop.is_set():
                    batch = await self._consumer.getmany(timeout_ms=200)
                    await asyncio.gather(*(self._partition(api, tp, ms) for tp, ms in batch.items()))
            finally:
                await self._consumer.stop()
                await self._producer.stop()

    async def _partition(self, api: NaiveApi, tp: TopicPartition, messages: list[object]) -> None:
        for message in messages:
            started_ms = int(time.time() * 1000)
            value, offset, key = message.value, message.offset, message.key  # type: ignore[attr-defined]
            result = await process(api, value, tp.partition, offset)
            if result is not None:
                await self._producer.send_and_wait(
                    self._settings.results_topic,
                    value=orjson.dumps(result.model_dump(mode="json")),
                    key=key,
                    headers=[
                        ("event_id", result.event_id.encode()),
                        ("bench_started_ms", str(started_ms).encode()),
                    ],
                )
            await self._consumer.commit({tp: offset + 1})


async def main_async(settings: Settings) -> int:
    baseline = Baseline(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, baseline.stop)
    await baseline.run()
    return 0


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"bench.baseline: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(main_async(settings))


if __name__ == "__main__":
    sys.exit(main())
