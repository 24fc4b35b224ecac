"""The producer examples (examples/README.md), built and run as a producer team would run them.

The Go example (franz-go, pinned in examples/go/go.sum) is built with ``go build`` (``-mod=readonly``: the
modules come from go.sum, downloaded by scripts/ensure-example-tools.sh into the default module cache), the
TypeScript one (kafkajs, pinned in examples/typescript/package-lock.json, ``npm ci`` by the same script)
with ``tsc``. Each sends one charge against the real broker and the sandbox, with a worker running, and
must print the command's final result (exit 0), its record keyed by the MSISDN on the partition Kafka's
Java default partitioner picks (chosen MSISDNs where librdkafka's default, CRC32, would pick another), the
money moved once; with no worker it must give up with exit 1. Nothing is skipped: a missing tool fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import uuid
import zlib
from pathlib import Path

import pytest

from ecash_dev.sandbox.server import serve_sandbox
from ecash_dev.sandbox.state import SandboxConfig
from ecash_dev.stack import read_to_end
from tests.integration.harness import create_topics, fast_settings, running_worker
from worker.pipeline.key_rule import java_partition

pytestmark = pytest.mark.kafka

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
INSTALL = "bash scripts/ensure-example-tools.sh (make test runs it)"
PARTITIONS = 4  # fast_settings' topics
# language -> (MSISDN, amount as the example is given it, its --timeout for "wait 30 s", for "wait 2 s")
CASES = {
    "go": ("08131234567", "100000", ("--timeout=30s", "--timeout=2s")),
    "typescript": ("081377770001", "1500.50", ("--timeout=30", "--timeout=2")),
}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: {INSTALL} checks for it and says what to install")
    return path


def _build(argv: list[str], cwd: Path) -> None:
    env = {**os.environ, "GOFLAGS": "-mod=readonly", "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300, env=env, check=False)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(argv)} failed ({done.returncode}), {INSTALL}?\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """language -> the command line of its built example."""
    go, node = _tool("go"), _tool("node")
    typescript = EXAMPLES / "typescript"
    if not (typescript / "node_modules" / ".ecash-lock-sha256").exists():
        pytest.fail(
            f"the TypeScript example's packages are not installed in {typescript}/node_modules: {INSTALL}"
        )
    binary = tmp_path_factory.mktemp("examples") / "ecash-send"
    _build([go, "build", "-o", str(binary), "."], EXAMPLES / "go")
    _build([node, str(typescript / "node_modules" / "typescript" / "bin" / "tsc"), "-p", "."], typescript)
    return {"go": [str(binary)], "typescript": [node, str(typescript / "dist" / "main.js")]}


async def _run(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"{argv} did not exit within 60 s")
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def test_the_msisdns_tell_javas_partitioner_from_librdkafkas_default() -> None:
    for msisdn, _, _ in CASES.values():
        key = msisdn.encode()
        assert java_partition(key, PARTITIONS) not in (0, zlib.crc32(key) % PARTITIONS)


@pytest.mark.parametrize("language", sorted(CASES))
async def test_example_sends_a_command_and_prints_its_final_result(
    language: str, built: dict[str, list[str]], kafka_bootstrap: str, tmp_path: Path
) -> None:
    msisdn, amount, (wait, give_up) = CASES[language]
    async with serve_sandbox(SandboxConfig(auto_create_wallets=True)) as sandbox:
        settings = fast_settings(kafka_bootstrap, sandbox.base_url, f"ex{uuid.uuid4().hex[:10]}", tmp_path)
        assert settings.topic_partitions == PARTITIONS
        await create_topics(settings)
        env = {
            **os.environ,
            "ECASH_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "ECASH_COMMANDS_TOPIC": settings.commands_topic,
            "ECASH_RESULTS_TOPIC": settings.results_topic,
        }
        argv = [*built[language], "--type", "charge", "--msisdn", msisdn, "--amount", amount]
        async with running_worker(settings):
            code, out, err = await _run([*argv, wait], env)
        assert code == 0, f"exit {code}\nstdout: {out}\nstderr: {err}"
        printed = [json.loads(line) for line in out.splitlines()]
        assert printed, f"no result printed\nstderr: {err}"
        result = printed[-1]
        trace = result["trace_number"]
        assert re.fullmatch(r"[0-9A-Za-z]{1,32}", trace)
        assert (result["outcome"], result["type"], result["msisdn"]) == ("succeeded", "charge", msisdn)
        assert (result["amount"], result["schema_version"]) == (amount, 1)
        assert f"sent {trace} to {settings.commands_topic} partition" in err

        (record,) = await read_to_end(kafka_bootstrap, settings.commands_topic)
        assert record.key == msisdn.encode()
        assert record.json() == {
            "schema_version": 1,
            "type": "charge",
            "trace_number": trace,
            "msisdn": msisdn,
            "amount": amount,
        }
        assert record.partition == java_partition(msisdn.encode(), PARTITIONS)
        assert [e.trace_number for e in sandbox.state.ledger.executions] == [trace]

        # No worker now: the example waits for its timeout and says so.
        code, out, err = await _run([*argv, give_up], env)
        assert (code, out) == (1, ""), f"exit {code}\nstdout: {out}\nstderr: {err}"
        assert "no final result for" in err
