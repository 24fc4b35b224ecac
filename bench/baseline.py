"""The naive design, for comparison: what a team writes first. Benchmark-only; never run it against money.

    python -m bench.baseline          # same ECASH_* environment as ``ecash-worker run``

An aiokafka consumer in a group, and one loop per assigned partition: the partitions run side by side,
and inside a partition the messages run one after another: parse the command, call Charge/Credit with
httpx's default client, publish the result (acks=all, awaited), commit the message's offset. No journal,
no lanes per MSISDN, no Status Inquiry: a timeout is reported as ``failed`` (the money may have moved:
this is the bug the real worker exists to avoid). Concurrency is therefore the number of partitions, at
most ``ECASH_TOPIC_PARTITIONS`` (12) calls in flight.

(Its first version fetched one batch for all partitions and ran the batch's partitions with
``asyncio.gather``: the slowest partition held back the next fetch, and a 100,000-message backlog made one
batch outlast ``max.poll.interval.ms``, so the group threw the consumer out. This version is the fairer,
faster baseline.)

Each result carries two headers for the benchmark: ``event_id`` (as the worker's) and ``bench_started_ms``
(when this process started working on the command), so the benchmark can compute service latency.
"""

from __future__ import annotations

import asyncio
import contextlib
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
            loops: dict[TopicPartition, asyncio.Task[None]] = {}
            try:
                while not self._stop.is_set():
                    self._follow_assignment(api, loops)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), 0.5)
            finally:
                for task in loops.values():
                    task.cancel()
                await asyncio.gather(*loops.values(), return_exceptions=True)
                await self._consumer.stop()
                await self._producer.stop()

    def _follow_assignment(self, api: NaiveApi, loops: dict[TopicPartition, asyncio.Task[None]]) -> None:
        """One loop per assigned partition (the group assigns them in the background)."""
        assigned = self._consumer.assignment()
        for tp in assigned - loops.keys():
            loops[tp] = asyncio.create_task(self._partition(api, tp), name=f"partition-{tp.partition}")
        for tp in loops.keys() - assigned:
            loops.pop(tp).cancel()

    async def _partition(self, api: NaiveApi, tp: TopicPartition) -> None:
        """This partition's messages, one after another: call the API, publish the result, commit."""
        while True:
            batch = await self._consumer.getmany(tp, timeout_ms=200, max_records=100)
            for message in batch.get(tp, []):
                started_ms = int(time.time() * 1000)
                result = await process(api, message.value, tp.partition, message.offset)
                if result is not None:
                    await self._producer.send_and_wait(
                        self._settings.results_topic,
                        value=orjson.dumps(result.model_dump(mode="json")),
                        key=message.key,
                        headers=[
                            ("event_id", result.event_id.encode()),
                            ("bench_started_ms", str(started_ms).encode()),
                        ],
                    )
                await self._consumer.commit({tp: message.offset + 1})


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
