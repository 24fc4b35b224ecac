import logging

import pytest

from tests.integration.harness import read_topic
from tests.integration.test_ops_cli import *  # noqa


@pytest.mark.kafka
async def test_dbg(settings: Settings) -> None:
    logging.basicConfig(level=logging.INFO)
    async with running_worker(settings) as w:
        code, out, err = await cli(
            send,
            "send",
            "charge",
            "--msisdn",
            RICH,
            "--amount",
            "1000",
            "--trace-number",
            "SEND1",
            "--wait-s",
            "10",
        )
        print("CLI", code, out, err)
        res = await read_topic(
            settings.kafka_bootstrap_servers, settings.results_topic, until=1, timeout_s=20
        )
        print("RESULTS", res)
        cmds = await read_topic(
            settings.kafka_bootstrap_servers, settings.commands_topic, until=1, timeout_s=5
        )
        print("CMDS", cmds)
