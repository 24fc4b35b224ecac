"""Everything the worker writes to Kafka goes through one idempotent producer (acks=all)."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

from worker.contracts import DeadLetter, Result, ReviewRecord
from worker.settings import Settings


class Publisher:
    def __init__(self, settings: Settings, client_kwargs: dict[str, Any]) -> None:
        self._settings = settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            max_batch_size=256 * 1024,
            request_timeout_ms=30_000,
            client_id="ecash-worker",
            **client_kwargs,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send_journal(self, partition: int, key: bytes, value: bytes) -> int:
        meta = await self._producer.send_and_wait(
            self._settings.journal_topic, value=value, key=key, partition=partition
        )
        return int(meta.offset)

    async def publish_result(self, result: Result) -> None:
        key = (result.msisdn or result.trace_number).encode()
        await self._producer.send_and_wait(
            self._settings.results_topic,
            value=result.model_dump_json().encode(),
            key=key,
            headers=[("event_id", result.event_id.encode()), ("outcome", result.outcome.value.encode())],
        )

    async def publish_dead_letter(self, letter: DeadLetter, key: bytes | None) -> None:
        await self._producer.send_and_wait(
            self._settings.dlq_topic,
            value=letter.model_dump_json().encode(),
            key=key,
            headers=[("reason", letter.reason.encode()[:200])],
        )

    async def publish_review(self, record: ReviewRecord) -> None:
        await self._producer.send_and_wait(
            self._settings.review_topic,
            value=record.model_dump_json().encode(),
            key=record.trace_number.encode(),
        )
