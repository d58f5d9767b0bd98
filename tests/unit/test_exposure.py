"""Exposure settings and checks without a network: the ``auth`` / ``tls`` config keys, where the bearer
token comes from, the token comparison, the loopback test behind the start-up warning, and the
HTTP receiver's 401 answer (decided from the headers, before the path)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import orjson
import pytest
from google.rpc.status_pb2 import Status

from kpiloop.collector.adapters import EventAdapter
from kpiloop.collector.ingest import EventQueue, Ingest
from kpiloop.collector.otlp_http import HttpSettings, OtlpHttpReceiver, _Request, unauthenticated_reply
from kpiloop.config import AuthConfig, KpiloopConfig, parse_config, resolve_bearer_token
from kpiloop.errors import ConfigError
from kpiloop.exposure import bearer_token_ok, exposure_warnings, is_loopback, read_pem, server_ssl_context
from kpiloop.pipeline import Endpoints, receiver_settings
from kpiloop.types import AgentType

TOKEN = "0123456789abcdef-token"


def otlp_config(yaml_body: str, environ: dict[str, str] | None = None) -> KpiloopConfig:
    return parse_config("receivers:\n  otlp:\n" + yaml_body, environ or {})


# --- config -----------------------------------------------------------------------------------


def test_defaults_are_no_token_and_no_tls() -> None:
    otlp = KpiloopConfig().receivers.otlp
    assert otlp.auth == AuthConfig()
    assert otlp.protocols.grpc.tls is None and otlp.protocols.http.tls is None
    assert resolve_bearer_token(otlp.auth, {}) is None


def test_auth_and_tls_keys_in_the_collector_shape(tmp_path: Path) -> None:
    config = otlp_config(
        f"    auth:\n      bearer_token: ${{env:TOKEN}}\n"
        "    protocols:\n      grpc:\n        endpoint: 127.0.0.1:4317\n        tls:\n"
        f"          cert_file: {tmp_path}/c.pem\n          key_file: {tmp_path}/k.pem\n"
        f"          client_ca_file: {tmp_path}/ca.pem\n",
        {"TOKEN": TOKEN},
    )
    tls = config.receivers.otlp.protocols.grpc.tls
    assert tls is not None and (tls.cert_file, tls.client_ca_file) == (tmp_path / "c.pem", tmp_path / "ca.pem")
    assert resolve_bearer_token(config.receivers.otlp.auth, {}) == TOKEN


def test_an_unset_env_token_means_no_token() -> None:
    config = otlp_config("    auth:\n      bearer_token: ${env:UNSET_TOKEN}\n")
    assert config.receivers.otlp.auth.bearer_token is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("    auth:\n      bearer_token: short\n", "receivers.otlp.auth.bearer_token: Value error, bearer_token must"),
        ("    auth:\n      bearer_token: has spaces in it and more\n", "at least 16 characters of A-Z"),
        (
            f"    auth:\n      bearer_token: {TOKEN}\n      bearer_token_file: /t\n",
            "receivers.otlp.auth: Value error, give bearer_token or bearer_token_file, not both",
        ),
        ("    auth:\n      token: x\n", "receivers.otlp.auth.token: Extra inputs are not permitted"),
        (
            "    protocols:\n      http:\n        endpoint: 127.0.0.1:4318\n        tls:\n          cert_file: c.pem\n",
            "receivers.otlp.protocols.http.tls.key_file: Field required",
        ),
    ],
)
def test_invalid_auth_and_tls_name_the_key(body: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        otlp_config(body)
    assert message in str(raised.value)


def test_an_invalid_token_is_not_echoed() -> None:
    secret = "not a valid token but secret"
    with pytest.raises(ConfigError) as raised:
        otlp_config(f"    auth:\n      bearer_token: {secret}\n")
    assert secret not in str(raised.value)
    assert TOKEN not in repr(otlp_config(f"    auth:\n      bearer_token: {TOKEN}\n"))


def test_token_sources_in_order(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}-file\n")
    env = {"KPILOOP_BEARER_TOKEN": f"{TOKEN}-env"}
    assert resolve_bearer_token(AuthConfig(bearer_token=TOKEN), env) == TOKEN
    assert resolve_bearer_token(AuthConfig(bearer_token_file=token_file), env) == f"{TOKEN}-file"
    assert resolve_bearer_token(AuthConfig(), env) == f"{TOKEN}-env"
    assert resolve_bearer_token(AuthConfig(), {"KPILOOP_BEARER_TOKEN": "  "}) is None


def test_unusable_token_sources_stop_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"bearer_token_file: cannot read .*missing: No such file"):
        resolve_bearer_token(AuthConfig(bearer_token_file=tmp_path / "missing"), {})
    (tmp_path / "short").write_text("abc\n")
    with pytest.raises(ConfigError, match=r"^receivers\.otlp\.auth\.bearer_token_file must be at least 16"):
        resolve_bearer_token(AuthConfig(bearer_token_file=tmp_path / "short"), {})
    (tmp_path / "binary").write_bytes(b"\xff\xfe" * 20)
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        resolve_bearer_token(AuthConfig(bearer_token_file=tmp_path / "binary"), {})
    with pytest.raises(ConfigError, match=r"^\$KPILOOP_BEARER_TOKEN must be at least 16"):
        resolve_bearer_token(AuthConfig(), {"KPILOOP_BEARER_TOKEN": "bad token"})


# --- token comparison and loopback ------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),
        (f"BEARER   {TOKEN}  ", True),
        (f"Bearer {TOKEN}".encode(), True),
        (None, False),
        ("", False),
        ("Bearer", False),
        ("Bearer ", False),
        (TOKEN, False),
        (f"Basic {TOKEN}", False),
        (f"Bearer {TOKEN}x", False),
        (f"Bearer {TOKEN[:-1]}", False),
        (f"Bearer {TOKEN.upper()}", False),
        ("Bearer \u00e9\u00e9\u00e9", False),
        (b"Bearer \xff\xfe", False),
    ],
)
def test_bearer_token_ok(header: str | bytes | None, ok: bool) -> None:
    assert bearer_token_ok(header, TOKEN) is ok


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.168.1.10", False),
        ("kpiloop.internal", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped: Python does not call it loopback, so it warns
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_exposure_warnings() -> None:
    assert exposure_warnings("otlp-http", "127.0.0.1", 4318, authenticated=False, tls=False) == []
    (bare,) = exposure_warnings("otlp-http", "0.0.0.0", 4318, authenticated=False, tls=True)
    assert bare.startswith("otlp-http listens on 0.0.0.0:4318, beyond loopback, without a bearer token")
    (clear,) = exposure_warnings("otlp-grpc", "10.0.0.5", 4317, authenticated=True, tls=False)
    assert "without TLS" in clear
    assert exposure_warnings("otlp-grpc", "10.0.0.5", 4317, authenticated=True, tls=True) == []


# --- TLS files --------------------------------------------------------------------------------


def test_tls_files_that_are_missing_or_not_pem_name_their_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^x\.tls\.cert_file: cannot read .*nope\.pem: No such file"):
        server_ssl_context(tmp_path / "nope.pem", tmp_path / "k.pem", None, "x.tls")
    (tmp_path / "c.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"^x\.tls\.cert_file: .*c\.pem is not a PEM file"):
        server_ssl_context(tmp_path / "c.pem", tmp_path / "k.pem", None, "x.tls")
    (tmp_path / "bad.pem").write_text("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match=r"^x\.tls: cert_file and key_file do not form a usable pair"):
        server_ssl_context(tmp_path / "bad.pem", tmp_path / "bad.pem", None, "x.tls")
    assert read_pem(tmp_path / "bad.pem", "k").startswith(b"-----BEGIN ")


# --- the HTTP receiver's 401 ------------------------------------------------------------------


class Refusals:
    """SelfMetrics that keeps the (signal, reason) of every refusal."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []

    def received(self, receiver: str, signal: str, count: int) -> None:
        """Accepted items are not looked at here."""

    def refused(self, receiver: str, signal: str, reason: str, count: int) -> None:
        self.log.append((signal, reason))


def receiver(token: str | None) -> tuple[OtlpHttpReceiver, Refusals]:
    metrics = Refusals()
    ingest = Ingest("otlp_http", EventAdapter(AgentType("default")), EventQueue(10), metrics)
    return OtlpHttpReceiver(HttpSettings("127.0.0.1", 0, 1024, bearer_token=token), ingest), metrics


def request(url: bytes, **headers: bytes) -> _Request:
    built = _Request()
    built.url = url
    built.headers = {name.replace("_", "-").encode(): value for name, value in headers.items()}
    return built


def test_401_comes_before_any_other_answer_and_is_counted() -> None:
    http, metrics = receiver(TOKEN)
    for url, method in ((b"/v1/logs", b"POST"), (b"/nowhere", b"POST"), (b"/v1/traces", b"GET")):
        reply = http.check_headers(method, request(url, content_type=b"application/json"))
        assert reply is not None and reply.status == 401
    assert metrics.log == [("logs", "unauthenticated"), ("unknown", "unauthenticated"), ("traces", "unauthenticated")]
    good = request(b"/v1/logs", content_type=b"application/json", authorization=f"Bearer {TOKEN}".encode())
    assert http.check_headers(b"POST", good) is None


def test_without_a_token_nothing_is_required() -> None:
    http, metrics = receiver(None)
    assert http.check_headers(b"POST", request(b"/v1/logs", content_type=b"application/x-protobuf")) is None
    assert metrics.log == []


def test_the_401_reply() -> None:
    missing = unauthenticated_reply(presented=False, json=True)
    assert (missing.status, missing.content_type) == (401, b"application/json")
    assert missing.extra == ((b"WWW-Authenticate", b'Bearer realm="kpiloop"'),)
    assert orjson.loads(missing.body)["code"] == 16
    wrong = unauthenticated_reply(presented=True, json=False)
    assert wrong.extra == ((b"WWW-Authenticate", b'Bearer realm="kpiloop", error="invalid_token"'),)
    assert Status.FromString(wrong.body) == Status(code=16, message="invalid bearer token")
    assert wrong.encode(keep_alive=False).startswith(b"HTTP/1.1 401 Unauthorized\r\n")


# --- a token per transport (DESIGN.md section 7: receivers.otlp.protocols.{grpc,http}.auth) -----------

SHARED = "shared-token-0123456789"
HTTP_ONLY = "http-only-token-0123456789"


def settings_of(otlp: Mapping[str, object]) -> tuple[str | None, str | None]:
    config = parse_config(orjson.dumps({"receivers": {"otlp": otlp}}).decode(), {})
    grpc, http = receiver_settings(config, Endpoints(), {})
    return grpc.bearer_token, http.bearer_token


def protocol(port: int, **auth: object) -> dict[str, object]:
    return {"endpoint": f"127.0.0.1:{port}", "auth": auth}


def test_a_transport_can_have_its_own_token_or_none_while_the_other_uses_the_shared_one() -> None:
    http_only = {"protocols": {"http": protocol(4318, bearer_token=HTTP_ONLY)}}
    assert settings_of(http_only) == (None, HTTP_ONLY)
    assert settings_of(http_only | {"auth": {"bearer_token": SHARED}}) == (SHARED, HTTP_ONLY)
    assert settings_of({"auth": {"bearer_token": SHARED}}) == (SHARED, SHARED)


def test_an_unreadable_per_transport_token_file_is_named_by_its_key(tmp_path: Path) -> None:
    otlp = {"protocols": {"grpc": protocol(4317, bearer_token_file=str(tmp_path / "no-such-token"))}}
    with pytest.raises(ConfigError, match=r"receivers\.otlp\.protocols\.grpc\.auth\.bearer_token_file"):
        settings_of(otlp)
