"""The API's network settings (proxy, CA file, mTLS pair) and Kafka's OAUTHBEARER token file: their
validation, the masking of the proxy's password, the TLS context and the aiokafka keyword arguments."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
import trustme

from worker.ecash.transport import (
    AiohttpTransport,
    api_network,
    describe_transport_error,
    make_transport,
    split_proxy_url,
    without_passwords,
)
from worker.kafka.admin import FileTokenProvider, kafka_client_kwargs
from worker.preflight import check_api_tls, check_kafka_oauth_token
from worker.settings import SettingsError, TransportKind, load_settings, masked_url

HTTPS = "https://bank.test/eCashHost"
SECRET = "pr0xy-s3cret"


def _refused(**values: object) -> list[str]:
    with pytest.raises(SettingsError) as info:
        load_settings(**values)
    return info.value.lines


@pytest.mark.parametrize(
    ("values", "line"),
    [
        (
            {"api_base_url": HTTPS, "api_client_cert_file": "/c.pem"},
            "ECASH_API_CLIENT_CERT_FILE: set without ECASH_API_CLIENT_KEY_FILE (mutual TLS needs both)",
        ),
        (
            {"api_base_url": HTTPS, "api_client_key_file": "/k.pem"},
            "ECASH_API_CLIENT_KEY_FILE: set without ECASH_API_CLIENT_CERT_FILE (mutual TLS needs both)",
        ),
        (
            {"api_client_cert_file": "/c.pem", "api_client_key_file": "/k.pem"},
            "ECASH_API_CLIENT_CERT_FILE: set, but not used with an http:// ECASH_API_BASE_URL",
        ),
        ({"api_ca_file": "/ca.pem"}, "ECASH_API_CA_FILE: set, but not used"),
        (
            {"api_proxy_url": f"socks5://u:{SECRET}@proxy.test:1080"},
            "ECASH_API_PROXY_URL: must start with http:// or https://",
        ),
        ({"api_proxy_url": f"http://u:{SECRET}@proxy.test:99999"}, "ECASH_API_PROXY_URL: not a URL"),
        ({"api_proxy_url": "http://:3128"}, "ECASH_API_PROXY_URL: has no host"),
        ({"api_proxy_url": f"http://u:{SECRET}@proxy.test:3128/x"}, "ECASH_API_PROXY_URL: must be scheme"),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "OAUTHBEARER"},
            "ECASH_KAFKA_OAUTH_TOKEN_FILE: required with ECASH_KAFKA_SECURITY_PROTOCOL=SASL_SSL",
        ),
        (
            {
                "kafka_security_protocol": "SASL_SSL",
                "kafka_sasl_mechanism": "OAUTHBEARER",
                "kafka_oauth_token_file": "/token",
                "kafka_sasl_username": "u",
            },
            "ECASH_KAFKA_SASL_USERNAME: set, but not used with ECASH_KAFKA_SASL_MECHANISM=OAUTHBEARER",
        ),
        (
            {
                "kafka_security_protocol": "SASL_SSL",
                "kafka_sasl_mechanism": "PLAIN",
                "kafka_sasl_username": "u",
                "kafka_sasl_password": "p",
                "kafka_oauth_token_file": "/token",
            },
            "ECASH_KAFKA_OAUTH_TOKEN_FILE: set, but not used without ECASH_KAFKA_SASL_MECHANISM=OAUTHBEARER",
        ),
        (
            {"kafka_oauth_token_file": "/token"},
            "ECASH_KAFKA_OAUTH_TOKEN_FILE: set, but not used without",
        ),
    ],
)
def test_network_settings_must_go_together(values: dict[str, str], line: str) -> None:
    lines = _refused(**values)
    assert len(lines) == 1
    assert lines[0].startswith(line), lines[0]
    assert SECRET not in lines[0]


def test_good_network_settings_load_and_empty_means_unset() -> None:
    settings = load_settings(
        api_base_url=HTTPS,
        api_proxy_url=f"http://egress:{SECRET}@proxy.test:3128",
        api_ca_file="/ca.pem",
        api_client_cert_file="/c.pem",
        api_client_key_file="/k.pem",
    )
    assert settings.api_ca_file == Path("/ca.pem")
    assert SECRET not in repr(settings) + str(settings.model_dump())
    # an https:// proxy alone makes the CA file useful (the proxy's own certificate)
    assert load_settings(api_proxy_url="https://proxy.test:3128", api_ca_file="/ca.pem").api_ca_file
    blank = load_settings(api_proxy_url="", api_ca_file="", api_client_cert_file="", api_client_key_file="")
    assert (blank.api_proxy_url, blank.api_ca_file, blank.api_client_cert_file) == (None, None, None)


def test_the_proxy_password_is_masked_and_moved_to_a_header() -> None:
    assert masked_url(f"http://egress:{SECRET}@proxy.test:3128") == "http://egress:***@proxy.test:3128"
    assert masked_url("http://proxy.test:3128") == "http://proxy.test:3128"
    bare, authorization = split_proxy_url("http://eg%40ress:p%3Ass@proxy.test:3128")
    assert bare == "http://proxy.test:3128"
    assert authorization == "Basic " + __import__("base64").b64encode(b"eg@ress:p:ss").decode()
    assert split_proxy_url("https://[::1]:8443") == ("https://[::1]:8443", None)
    text = f"could not reach http://egress:{SECRET}@proxy.test:3128/ (refused)"
    assert without_passwords(text) == "could not reach http://egress:***@proxy.test:3128/ (refused)"
    network = api_network(load_settings(api_proxy_url=f"http://egress:{SECRET}@proxy.test:3128"))
    assert network.proxy_url == "http://proxy.test:3128"
    assert SECRET not in repr(network)


def test_a_refused_tunnel_names_the_proxy_setting_and_hides_the_password() -> None:
    request = httpx.Request("POST", "https://bank.test/eCashHost/x")
    exc = httpx.ProxyError(f"407 Proxy Authentication Required http://u:{SECRET}@p:1", request=request)
    described = describe_transport_error(exc)
    assert "ECASH_API_PROXY_URL" in described
    assert "407" in described
    assert "the request was not sent" in described
    assert SECRET not in described


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    client = ca.issue_cert("ecash-worker.test")
    other = trustme.CA().issue_cert("x.test")
    paths = {name: folder / name for name in ("ca.pem", "c.pem", "c.key", "o.key", "garbage.pem")}
    ca.cert_pem.write_to_path(str(paths["ca.pem"]))
    client.cert_chain_pems[0].write_to_path(str(paths["c.pem"]))
    client.private_key_pem.write_to_path(str(paths["c.key"]))
    other.private_key_pem.write_to_path(str(paths["o.key"]))
    paths["garbage.pem"].write_text("-----BEGIN CERTIFICATE-----\nnope\n")
    return paths


def test_the_ca_file_is_added_to_the_system_trust_not_put_in_its_place(pki: dict[str, Path]) -> None:
    system = ssl.create_default_context()
    settings = load_settings(
        api_base_url=HTTPS,
        api_ca_file=pki["ca.pem"],
        api_client_cert_file=pki["c.pem"],
        api_client_key_file=pki["c.key"],
    )
    context = api_network(settings).ssl_context
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == system.cert_store_stats()["x509_ca"] + 1
    assert check_api_tls(settings) is None


async def test_every_transport_gets_the_one_context_and_the_proxy(pki: dict[str, Path]) -> None:
    settings = load_settings(
        api_base_url=HTTPS, api_ca_file=pki["ca.pem"], api_proxy_url=f"http://u:{SECRET}@proxy.test:3128"
    )
    network = api_network(settings)
    aio = make_transport(TransportKind.AIOHTTP, 4, 1.0, network=network)
    assert isinstance(aio, AiohttpTransport)
    assert aio._ssl is network.ssl_context
    assert aio._proxy == "http://proxy.test:3128"
    assert aio._proxy_headers == {"Proxy-Authorization": network.proxy_authorization}
    plain = make_transport(TransportKind.HTTPX, 4, 1.0, network=network)
    assert isinstance(plain, httpx.AsyncHTTPTransport)
    pool = plain._pool
    assert pool._ssl_context is network.ssl_context
    assert pool._proxy_url.host == b"proxy.test"  # type: ignore[attr-defined]
    assert pool._proxy_url.port == 3128  # type: ignore[attr-defined]
    await aio.aclose()
    await plain.aclose()


@pytest.mark.parametrize(
    ("files", "line"),
    [
        ({"api_ca_file": "absent.pem"}, "ECASH_API_CA_FILE: no such file {dir}/absent.pem"),
        ({"api_ca_file": "garbage.pem"}, "ECASH_API_CA_FILE: {dir}/garbage.pem holds no usable CA"),
        (
            {"api_client_cert_file": "c.pem", "api_client_key_file": "o.key"},
            "ECASH_API_CLIENT_CERT_FILE: {dir}/c.pem and ECASH_API_CLIENT_KEY_FILE {dir}/o.key do not load",
        ),
        (
            {"api_client_cert_file": "c.pem", "api_client_key_file": "absent.key"},
            "ECASH_API_CLIENT_KEY_FILE: no such file {dir}/absent.key",
        ),
    ],
)
def test_unusable_api_tls_files_are_named(pki: dict[str, Path], files: dict[str, str], line: str) -> None:
    folder = pki["ca.pem"].parent
    settings = load_settings(api_base_url=HTTPS, **{k: folder / v for k, v in files.items()})
    problem = check_api_tls(settings)
    assert problem is not None
    assert problem.startswith(line.format(dir=folder)), problem


def _oauth(token_file: Path) -> dict[str, object]:
    return {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "OAUTHBEARER",
        "kafka_oauth_token_file": token_file,
    }


async def test_oauthbearer_kwargs_carry_a_provider_that_reads_the_files_current_token(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("eyJ.first.token\n")
    settings = load_settings(**_oauth(token_file))
    kwargs = kafka_client_kwargs(settings)
    assert kwargs["sasl_mechanism"] == "OAUTHBEARER"
    assert "sasl_plain_username" not in kwargs
    assert "sasl_plain_password" not in kwargs
    provider = kwargs["sasl_oauth_token_provider"]
    assert isinstance(provider, FileTokenProvider)
    assert await provider.token() == "eyJ.first.token"
    token_file.write_text("eyJ.rotated.token")  # the platform rotates the projected token in place
    assert await provider.token() == "eyJ.rotated.token"
    assert "eyJ" not in repr(kwargs)


def test_the_token_file_is_checked_at_start(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    assert check_kafka_oauth_token(load_settings(**_oauth(token_file))) == (
        f"ECASH_KAFKA_OAUTH_TOKEN_FILE: no such file {token_file}"
    )
    token_file.write_text("  \n")
    assert check_kafka_oauth_token(load_settings(**_oauth(token_file))) == (
        f"ECASH_KAFKA_OAUTH_TOKEN_FILE: {token_file} is empty (no token)"
    )
    token_file.write_text("eyJ.token")
    assert check_kafka_oauth_token(load_settings(**_oauth(token_file))) is None
