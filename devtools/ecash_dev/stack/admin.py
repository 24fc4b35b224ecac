"""The sandbox's admin API (docs/sandbox.md) as an httpx client: seed, steer faults, read the ledger."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson

from ecash_dev.stack.base import StackError


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
