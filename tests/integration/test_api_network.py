"""The bank through real networks: the sandbox served over TLS with a CA made here (trustme), behind a
real HTTP CONNECT proxy (proxy.py, in its own process, with Basic authentication), and with mutual TLS.

Each test runs with both transports (aiohttp and httpx): ``ECASH_API_PROXY_URL``, ``ECASH_API_CA_FILE``
and the client certificate must work, or fail clearly, the same way through either.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
import trustme

from ecash_dev.sandbox.server import RunningSandbox, SandboxTls, serve_sandbox
from ecash_dev.sandbox.state import SandboxConfig, WalletSpec
from worker.ecash.client import EcashClient
from worker.ecash.codes import CallClass
from worker.ecash.errors import FatalConfigError
from worker.settings import Settings, TransportKind, load_settings

MEMBER = "08131234567"
PROXY_USER, PROXY_PASSWORD = "egress", "pr0xy-s3cret"
_PROXY_START_S = 20.0


@dataclass(frozen=True)
class Pki:
    ca_file: Path  # the test CA (what ECASH_API_CA_FILE names)
    server_cert: Path
    server_key: Path
    client_cert: Path  # signed by the same CA, for mutual TLS
    client_key: Path
    other_cert: Path  # signed by another CA: the sandbox must refuse it
    other_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca, other_ca = trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("ecash-worker.test")
    other = other_ca.issue_cert("ecash-worker.test")
    paths = Pki(
        *(folder / name for name in ("ca.pem", "srv.pem", "srv.key", "c.pem", "c.key", "o.pem", "o.key"))
    )
    ca.cert_pem.write_to_path(str(paths.ca_file))
    server.cert_chain_pems[0].write_to_path(str(paths.server_cert))
    for blob in server.cert_chain_pems[1:]:
        blob.write_to_path(str(paths.server_cert), append=True)
    server.private_key_pem.write_to_path(str(paths.server_key))
    client.cert_chain_pems[0].write_to_path(str(paths.client_cert))
    client.private_key_pem.write_to_path(str(paths.client_key))
    other.cert_chain_pems[0].write_to_path(str(paths.other_cert))
    other.private_key_pem.write_to_path(str(paths.other_key))
    return paths


@dataclass(frozen=True)
class Proxy:
    port: int
    log_file: Path
    scheme: str = "http"

    def url(self, password: str = PROXY_PASSWORD) -> str:
        return f"{self.scheme}://{PROXY_USER}:{password}@127.0.0.1:{self.port}"

    def connects(self) -> list[str]:
        """The CONNECT lines of the proxy's access log."""
        text = self.log_file.read_text(encoding="utf-8", errors="replace")
        return [line for line in text.splitlines() if "CONNECT" in line]


@contextlib.contextmanager
def _run_proxy(folder: Path, *options: str, scheme: str = "http") -> Iterator[Proxy]:
    """proxy.py on a free port (its own process), stopped by its pid at the end."""
    port_file, log_file = folder / "port", folder / "proxy.log"
    command = [
        sys.executable,
        "-m",
        "proxy",
        "--hostname",
        "127.0.0.1",
        "--port",
        "0",
        "--port-file",
        str(port_file),
        "--num-acceptors",
        "1",
        "--num-workers",
        "1",
        "--log-file",
        str(log_file),
        "--log-level",
        "INFO",
        *options,
    ]
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + _PROXY_START_S
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"proxy.py did not start (exit code {process.poll()})")
            time.sleep(0.05)
        yield Proxy(int(port_file.read_text().split()[0]), log_file, scheme)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """An http:// proxy requiring Basic authentication."""
    with _run_proxy(
        tmp_path_factory.mktemp("proxy"), "--basic-auth", f"{PROXY_USER}:{PROXY_PASSWORD}"
    ) as run:
        yield run


@pytest.fixture(scope="module")
def tls_proxy(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Proxy]:
    """An https:// proxy (TLS between the worker and the proxy too), its certificate from the test CA."""
    folder = tmp_path_factory.mktemp("tls-proxy")
    options = ("--cert-file", str(pki.server_cert), "--key-file", str(pki.server_key))
    with _run_proxy(folder, *options, scheme="https") as run:
        yield run


def _config() -> SandboxConfig:
    return SandboxConfig(wallets=[WalletSpec(msisdn=MEMBER, balance=Decimal("500000.00"), name="Allyssa")])


@contextlib.asynccontextmanager
async def _tls_sandbox(pki: Pki, *, require_client_cert: bool = False) -> AsyncIterator[RunningSandbox]:
    tls = SandboxTls(
        str(pki.server_cert), str(pki.server_key), str(pki.ca_file) if require_client_cert else None
    )
    async with serve_sandbox(_config(), tls=tls) as running:
        yield running


def _settings(sandbox: RunningSandbox, kind: TransportKind, **network: object) -> Settings:
    return load_settings(
        api_base_url=sandbox.base_url,
        http_transport=kind,
        not_sent_retry_attempts=1,  # a failure here is asserted, not waited out
        **network,
    )


async def _charge(settings: Settings, trace: str) -> CallClass:
    async with EcashClient(settings) as client:
        result = await client.charge(msisdn=MEMBER, amount=Decimal("1000"), trace_number=trace)
        assert result.call_class is CallClass.SUCCEEDED, result.evidence
        return result.call_class


@pytest.mark.parametrize("kind", list(TransportKind))
async def test_a_charge_through_the_proxy_to_the_tls_sandbox_succeeds_with_the_ca_setting(
    pki: Pki, proxy: Proxy, kind: TransportKind
) -> None:
    before = len(proxy.connects())
    async with _tls_sandbox(pki) as sandbox:
        assert sandbox.base_url.startswith("https://")
        settings = _settings(sandbox, kind, api_proxy_url=proxy.url(), api_ca_file=pki.ca_file)
        await _charge(settings, "20161201000001" if kind is TransportKind.AIOHTTP else "20161201000002")
        assert sandbox.state.ledger.executions, "the charge did not reach the sandbox"
    tunnels = proxy.connects()[before:]
    assert any(f"127.0.0.1:{sandbox.port}" in line for line in tunnels), tunnels


@pytest.mark.parametrize("kind", list(TransportKind))
async def test_a_charge_through_an_https_proxy_trusts_the_proxy_with_the_same_ca_file(
    pki: Pki, tls_proxy: Proxy, kind: TransportKind
) -> None:
    before = len(tls_proxy.connects())
    async with _tls_sandbox(pki) as sandbox:
        url = f"https://127.0.0.1:{tls_proxy.port}"
        settings = _settings(sandbox, kind, api_proxy_url=url, api_ca_file=pki.ca_file)
        await _charge(settings, "20161201000011" if kind is TransportKind.AIOHTTP else "20161201000012")
        assert sandbox.state.ledger.executions
    assert len(tls_proxy.connects()) > before


@pytest.mark.parametrize("kind", list(TransportKind))
async def test_without_the_ca_setting_the_certificate_does_not_verify(
    pki: Pki, proxy: Proxy, kind: TransportKind
) -> None:
    async with _tls_sandbox(pki) as sandbox:
        settings = _settings(sandbox, kind, api_proxy_url=proxy.url())
        async with EcashClient(settings) as client:
            with pytest.raises(FatalConfigError, match="certificate verify failed") as raised:
                await client.charge(msisdn=MEMBER, amount=Decimal("1000"), trace_number="20161201000003")
        assert "ECASH_API_CA_FILE" in str(raised.value)
        assert PROXY_PASSWORD not in str(raised.value)
        assert not sandbox.state.ledger.executions


@pytest.mark.parametrize("kind", list(TransportKind))
async def test_a_proxy_refusing_the_credentials_is_not_sent_and_the_password_stays_hidden(
    pki: Pki, proxy: Proxy, kind: TransportKind, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wr0ng-pr0xy-passw0rd"
    async with _tls_sandbox(pki) as sandbox:
        settings = _settings(sandbox, kind, api_proxy_url=proxy.url(wrong), api_ca_file=pki.ca_file)
        async with EcashClient(settings) as client:
            result = await client.charge(msisdn=MEMBER, amount=Decimal("1000"), trace_number="20161201000004")
        assert result.call_class is CallClass.NOT_SENT
        assert "407" in result.evidence, result.evidence
        assert "ECASH_API_PROXY_URL" in result.evidence, result.evidence
        assert not sandbox.state.ledger.executions
    for text in (result.evidence, repr(settings), caplog.text):
        assert wrong not in text
        assert PROXY_PASSWORD not in text


@pytest.mark.parametrize("kind", list(TransportKind))
async def test_mutual_tls_admits_the_client_certificate_and_refuses_a_client_without_one(
    pki: Pki, kind: TransportKind
) -> None:
    async with _tls_sandbox(pki, require_client_cert=True) as sandbox:
        with_cert = _settings(
            sandbox,
            kind,
            api_ca_file=pki.ca_file,
            api_client_cert_file=pki.client_cert,
            api_client_key_file=pki.client_key,
        )
        await _charge(with_cert, "20161201000005" if kind is TransportKind.AIOHTTP else "20161201000006")
        charged = len(sandbox.state.ledger.executions)
        for network in (
            {},  # no client certificate at all
            {"api_client_cert_file": pki.other_cert, "api_client_key_file": pki.other_key},  # another CA's
        ):
            settings = _settings(sandbox, kind, api_ca_file=pki.ca_file, **network)
            async with EcashClient(settings) as client:
                # TLS 1.3: the client's handshake completes before the server checks the certificate, so
                # the refusal arrives as a reset (or an alert) while the Login waits for its answer: the
                # Login fails and the Charge is never sent. (TLS 1.2 fails in the handshake: fatal.)
                try:
                    result = await client.charge(
                        msisdn=MEMBER, amount=Decimal("1000"), trace_number="20161201000007"
                    )
                except FatalConfigError as exc:
                    fatal: str | None = str(exc)
                else:
                    fatal = None
                if fatal is not None:
                    assert "TLS" in fatal
                else:
                    assert result.call_class is CallClass.NOT_SENT, result.evidence
                    assert "login failed" in result.evidence, result.evidence
                    assert result.sends == 0
        assert len(sandbox.state.ledger.executions) == charged
