"""The log stream of a real worker against the real test broker, at DEBUG: no ERROR at a normal start, and no
full MSISDN anywhere in it, aiokafka's DEBUG lines (which print record keys) included."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from ecash_dev.sandbox.server import RunningSandbox, serve_sandbox
from ecash_dev.sandbox.state import SandboxConfig, WalletSpec
from tests.integration.harness import (
    command,
    create_topics,
    fast_settings,
    produce,
    running_worker,
    wait_results,
)
from worker.observability.logs import RedactionFilter, configure_logging

pytestmark = pytest.mark.kafka

MSISDN = "0815000077771"
OTHER = "628150000888"


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    config = SandboxConfig(
        wallets=[WalletSpec(msisdn=MSISDN, balance=Decimal("1000000"))], auto_create_wallets=True
    )
    async with serve_sandbox(config) as running:
        yield running


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        for handler in handlers:
            handler.filters = [f for f in handler.filters if not isinstance(f, RedactionFilter)]
        root.setLevel(level)


async def test_a_debug_run_logs_no_error_at_start_and_no_full_msisdn(
    kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path, restored_logging: None
) -> None:
    settings = fast_settings(
        kafka_bootstrap,
        sandbox.base_url,
        f"l{uuid.uuid4().hex[:8]}",
        tmp_path,
        log_level="DEBUG",
        log_format="json",
    )
    stream = io.StringIO()
    configure_logging(settings, stream=stream)
    await create_topics(settings)
    await produce(settings, [command("L1", MSISDN, 100), command("L2", OTHER, 100)])
    async with running_worker(settings):
        await wait_results(settings, {"L1", "L2"}, timeout_s=60)
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert any(line["logger"].startswith("aiokafka") and line["level"] == "debug" for line in lines)
    errors = [line for line in lines if line["level"] in {"error", "critical"}]
    assert errors == []
    text = stream.getvalue()
    assert MSISDN not in text
    assert OTHER not in text
    assert MSISDN[-4:] in text  # masked, not dropped: the last four digits are there to match a complaint
