"""The sandbox as a process (ecash_dev.stack): started, steered through its admin API, stopped."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from ecash_dev.stack import SandboxProcess, StackError


async def test_a_sandbox_process_answers_its_admin_api_and_stops_cleanly(tmp_path: Path) -> None:
    sandbox = SandboxProcess(
        options=["--seed-wallets", "3", "--random-seed", "5"], log_path=tmp_path / "sb.log"
    )
    async with sandbox:
        wallets = await sandbox.admin.seed_wallets([{"msisdn": "0811000000001", "balance": "500"}])
        assert wallets[0]["balance"] == "500.00"
        faults = await sandbox.admin.set_faults(["charge:hang_after_commit:trace=T1"])
        assert faults["random_seed"] == 5
        assert [rule["kind"] for rule in faults["faults"]] == ["hang_after_commit"]
        assert (await sandbox.admin.config())["demo_wallets"] == 3
        async with httpx.AsyncClient(base_url=sandbox.base_url, trust_env=False) as api:
            login = await api.post("/SessionManager/Login", headers={"APIKey": "wrong"})
        assert login.json()["status"] == "INVALID_CREDENTIAL"
        assert (await sandbox.admin.stats())["calls"]["login"] == 1
        assert await sandbox.admin.ledger() == []
    assert sandbox.returncode == 0  # SIGTERM: a clean exit
    assert "E-Cash sandbox" in (tmp_path / "sb.log").read_text()


async def test_a_sandbox_that_cannot_listen_says_why(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        sandbox = SandboxProcess(port=taken.getsockname()[1], log_path=tmp_path / "sb.log")
        with pytest.raises(StackError, match="cannot listen"):
            await sandbox.start()
    assert not sandbox.running
