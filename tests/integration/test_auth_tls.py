"""Exposure of a real ``kpiloop serve`` pipeline: a bearer token on both OTLP receivers, TLS and mTLS
with certificates made here with the ``openssl`` CLI, the OpenTelemetry SDK's own exporters as the
senders that get in, and plain urllib / grpc clients as the ones that must not."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import orjson
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util.types import AttributeValue
from prometheus_client.parser import text_string_to_metric_families

from kpiloop.config import KpiloopConfig, parse_config
from kpiloop.errors import ConfigError
from kpiloop.pipeline import Endpoints, Server, build_server
from kpiloop.types import SystemClock

TOKEN = "kpiloop-test-token-0123456789abcdef"
LOOPBACK = Endpoints("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
S = 1_000_000_000
T0 = 1_770_000_000 * S
TRACE_SERVICE = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


@dataclass(frozen=True)
class Pki:
    """A CA, a server certificate for 127.0.0.1/localhost it signed, and a client certificate it signed."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def make_pki(folder: Path) -> Pki:
    """Self-signed CA plus two leaf certificates (EC P-256: fast to make)."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", folder / "ca.key", "-out", folder / "ca.pem", "-days", "2",
            "-subj", "/CN=kpiloop test CA")  # fmt: skip
    leaves = {"server": "subjectAltName=IP:127.0.0.1,DNS:localhost", "client": "extendedKeyUsage=clientAuth"}
    for name, extension in leaves.items():
        openssl("req", "-new", *ec, "-keyout", folder / f"{name}.key", "-out", folder / f"{name}.csr",
                "-subj", f"/CN=kpiloop test {name}", "-addext", extension)  # fmt: skip
        openssl("x509", "-req", "-in", folder / f"{name}.csr", "-CA", folder / "ca.pem",
                "-CAkey", folder / "ca.key", "-CAcreateserial", "-days", "2", "-copy_extensions", "copyall",
                "-out", folder / f"{name}.pem")  # fmt: skip
    return Pki(
        folder / "ca.pem", folder / "server.pem", folder / "server.key", folder / "client.pem", folder / "client.key"
    )


@pytest.fixture(autouse=True)
def _sdk_uses_its_certificate_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests prefers ``$REQUESTS_CA_BUNDLE`` / ``$CURL_CA_BUNDLE`` to a session's own ``verify``, so
    with either set the SDK's ``certificate_file`` would be ignored (psf/requests#3829)."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_block(pki: Pki, mutual: bool) -> dict[str, str]:
    block = {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}
    return {**block, "client_ca_file": str(pki.ca)} if mutual else block


def config(pki: Pki | None = None, mutual: bool = False, **auth: str) -> KpiloopConfig:
    """Loopback receivers with ``auth`` (``bearer_token=...`` / ``bearer_token_file=...``) and TLS from ``pki``."""
    tls = {"tls": tls_block(pki, mutual)} if pki is not None else {}
    protocols = {"grpc": {"endpoint": "127.0.0.1:4317", **tls}, "http": {"endpoint": "127.0.0.1:4318", **tls}}
    return parse_config(json.dumps({"receivers": {"otlp": {"auth": auth, "protocols": protocols}}}), {})


@contextlib.contextmanager
def running(server_config: KpiloopConfig, data_dir: Path) -> Iterator[Server]:
    server = build_server(server_config, data_dir, SystemClock(), LOOPBACK, environ={})
    server.start()
    try:
        yield server
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def secured(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Bearer token and TLS on both receivers."""
    with running(config(pki, bearer_token=TOKEN), tmp_path_factory.mktemp("secured")) as server:
        yield server


@pytest.fixture(scope="module")
def mutual(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """mTLS on both receivers: clients need a certificate the test CA signed; no token."""
    with running(config(pki, mutual=True), tmp_path_factory.mktemp("mutual")) as server:
        yield server


# --- senders ----------------------------------------------------------------------------------


def session_spans(session: str) -> Sequence[ReadableSpan]:
    """One API call and the session's end, as the SDK would hand them to an exporter."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "tls-test", "agent.type": "secure-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    tokens: dict[str, AttributeValue] = {
        "tokens.input": 100,
        "tokens.output": 20,
        "tokens.model": "claude-sonnet-4-5",
        "session.id": session,
    }
    tracer.start_span("hook:token-metrics-extraction", start_time=T0, attributes=tokens).end(end_time=T0 + 5 * S)
    tracer.start_span("session.end", start_time=T0 + 9 * S, attributes={"session.id": session}).end(end_time=T0 + 9 * S)
    provider.shutdown()
    return memory.get_finished_spans()


def assert_recorded(exporter: SpanExporter, server: Server, session: str) -> None:
    """The exporter's export succeeds and the session reaches the history."""
    try:
        assert exporter.export(session_spans(session)) == SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    path = server.data_dir / "history" / "kpis.jsonl"
    deadline = time.monotonic() + 15
    while not (path.exists() and session.encode() in path.read_bytes()):
        assert time.monotonic() < deadline, f"session {session} not in the history after 15 s"
        time.sleep(0.05)


def https_context(pki: Pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca))


def post(url: str, context: ssl.SSLContext | None, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """POST an empty OTLP/JSON traces request; status, headers and body."""
    request = urllib.request.Request(url + "/v1/traces", data=b"{}", method="POST", headers=headers)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as answer:
            return int(answer.status), dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code), dict(error.headers), error.read()


def grpc_export(channel: grpc.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> ExportTraceServiceResponse:
    """A raw TraceService/Export call with an empty request."""
    call = channel.unary_unary(
        TRACE_SERVICE,
        request_serializer=ExportTraceServiceRequest.SerializeToString,
        response_deserializer=ExportTraceServiceResponse.FromString,
    )
    with channel:
        response: ExportTraceServiceResponse = call(ExportTraceServiceRequest(), timeout=5, metadata=metadata)
    return response


def refused(server: Server, receiver: str) -> float:
    """``kpiloop_refused_items_total{reason="unauthenticated"}`` of ``receiver`` on the live /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.prometheus.port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "kpiloop_refused_items_total" and labels.get("reason") == "unauthenticated":
                total += sample.value if labels.get("receiver") == receiver else 0.0
    return total


# --- bearer token + TLS -----------------------------------------------------------------------


def test_the_sdk_http_exporter_with_token_and_ca_gets_in(secured: Server, pki: Pki) -> None:
    url = f"https://127.0.0.1:{secured.http.port}/v1/traces"
    exporter = HttpSpanExporter(url, certificate_file=str(pki.ca), headers={"authorization": f"Bearer {TOKEN}"})
    assert_recorded(exporter, secured, "tls-http-session")


def test_the_sdk_grpc_exporter_with_token_and_ca_gets_in(secured: Server, pki: Pki) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
    exporter = GrpcSpanExporter(
        f"127.0.0.1:{secured.grpc.port}", credentials=credentials, headers={"authorization": f"Bearer {TOKEN}"}
    )
    assert_recorded(exporter, secured, "tls-grpc-session")


@pytest.mark.parametrize(
    ("headers", "challenge"),
    [
        ({}, 'Bearer realm="kpiloop"'),
        ({"Authorization": "Bearer wrong-token-0123456789"}, 'Bearer realm="kpiloop", error="invalid_token"'),
        ({"Authorization": f"Basic {TOKEN}"}, 'Bearer realm="kpiloop", error="invalid_token"'),
        ({"Authorization": TOKEN}, 'Bearer realm="kpiloop", error="invalid_token"'),
    ],
    ids=["missing", "wrong", "other-scheme", "no-scheme"],
)
def test_http_without_the_token_gets_401(secured: Server, pki: Pki, headers: dict[str, str], challenge: str) -> None:
    before = refused(secured, "otlp_http")
    status, answer_headers, body = post(f"https://127.0.0.1:{secured.http.port}", https_context(pki), headers)
    assert status == 401
    assert answer_headers["WWW-Authenticate"] == challenge
    assert orjson.loads(body)["code"] == 16  # google.rpc.Code UNAUTHENTICATED
    assert refused(secured, "otlp_http") == before + 1


def test_http_401_body_follows_the_request_encoding(secured: Server, pki: Pki) -> None:
    headers = {"Content-Type": "application/x-protobuf"}
    request = urllib.request.Request(
        f"https://127.0.0.1:{secured.http.port}/v1/logs", data=b"", method="POST", headers=headers
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=10, context=https_context(pki))
    with raised.value as error:
        assert error.code == 401
        assert error.headers["Content-Type"] == "application/x-protobuf"
        assert Status.FromString(error.read()).code == 16


def test_http_with_the_token_is_served(secured: Server, pki: Pki) -> None:
    status, _, body = post(
        f"https://127.0.0.1:{secured.http.port}", https_context(pki), {"Authorization": f"bearer {TOKEN}"}
    )
    assert (status, orjson.loads(body)) == (200, {})


@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Bearer wrong-token-0123456789"),), (("authorization", TOKEN),)],
    ids=["missing", "wrong", "no-scheme"],
)
def test_grpc_without_the_token_is_unauthenticated(
    secured: Server, pki: Pki, metadata: tuple[tuple[str, str], ...]
) -> None:
    before = refused(secured, "otlp_grpc")
    credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
    with pytest.raises(grpc.RpcError) as raised:
        grpc_export(grpc.secure_channel(f"127.0.0.1:{secured.grpc.port}", credentials), metadata)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused(secured, "otlp_grpc") == before + 1


def test_grpc_with_the_token_is_served(secured: Server, pki: Pki) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
    channel = grpc.secure_channel(f"127.0.0.1:{secured.grpc.port}", credentials)
    assert grpc_export(channel, (("authorization", f"Bearer {TOKEN}"),)) == ExportTraceServiceResponse()


def test_plaintext_clients_cannot_talk_to_tls_receivers(secured: Server) -> None:
    with pytest.raises((OSError, http.client.HTTPException)):
        post(f"http://127.0.0.1:{secured.http.port}", None, {"Authorization": f"Bearer {TOKEN}"})
    with pytest.raises(grpc.RpcError) as raised:
        grpc_export(grpc.insecure_channel(f"127.0.0.1:{secured.grpc.port}"), (("authorization", f"Bearer {TOKEN}"),))
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


def test_clients_that_do_not_trust_the_certificate_are_refused(secured: Server) -> None:
    with pytest.raises(urllib.error.URLError) as raised:
        post(f"https://127.0.0.1:{secured.http.port}", ssl.create_default_context(), {})
    assert isinstance(raised.value.reason, ssl.SSLCertVerificationError)


# --- mTLS -------------------------------------------------------------------------------------


def test_mtls_lets_in_the_sdk_exporters_with_a_client_certificate(mutual: Server, pki: Pki) -> None:
    http_exporter = HttpSpanExporter(
        f"https://127.0.0.1:{mutual.http.port}/v1/traces",
        certificate_file=str(pki.ca),
        client_certificate_file=str(pki.client_cert),
        client_key_file=str(pki.client_key),
    )
    assert_recorded(http_exporter, mutual, "mtls-http-session")
    credentials = grpc.ssl_channel_credentials(
        pki.ca.read_bytes(), private_key=pki.client_key.read_bytes(), certificate_chain=pki.client_cert.read_bytes()
    )
    assert_recorded(GrpcSpanExporter(f"127.0.0.1:{mutual.grpc.port}", credentials=credentials), mutual, "mtls-grpc")


def test_mtls_refuses_clients_without_a_certificate(mutual: Server, pki: Pki) -> None:
    with pytest.raises((OSError, http.client.HTTPException)):
        post(f"https://127.0.0.1:{mutual.http.port}", https_context(pki), {})
    credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
    with pytest.raises(grpc.RpcError) as raised:
        grpc_export(grpc.secure_channel(f"127.0.0.1:{mutual.grpc.port}", credentials))
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


# --- token from a file, plaintext -------------------------------------------------------------


def test_a_token_file_protects_plaintext_receivers(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"  {TOKEN}\n")
    with running(config(bearer_token_file=str(token_file)), tmp_path / "data") as server:
        header = {"authorization": f"Bearer {TOKEN}"}
        http_url = f"http://127.0.0.1:{server.http.port}/v1/traces"
        assert_recorded(HttpSpanExporter(http_url, headers=header), server, "file-token-http")
        grpc_exporter = GrpcSpanExporter(f"127.0.0.1:{server.grpc.port}", insecure=True, headers=header)
        assert_recorded(grpc_exporter, server, "file-token-grpc")
        assert post(f"http://127.0.0.1:{server.http.port}", None, {})[0] == 401
        with pytest.raises(grpc.RpcError) as raised:
            grpc_export(grpc.insecure_channel(f"127.0.0.1:{server.grpc.port}"))
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_token_can_come_from_the_environment(tmp_path: Path) -> None:
    server = build_server(KpiloopConfig(), tmp_path, SystemClock(), LOOPBACK, {"KPILOOP_BEARER_TOKEN": TOKEN})
    assert server.http.settings.bearer_token == server.grpc.settings.bearer_token == TOKEN
    assert TOKEN not in repr(server.http.settings) + repr(server.grpc.settings)


# --- start-up checks --------------------------------------------------------------------------


def test_a_receiver_beyond_loopback_without_a_token_warns_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kpiloop.pipeline")
    exposed = Endpoints("0.0.0.0:0", "0.0.0.0:0", "127.0.0.1:0")
    server = build_server(KpiloopConfig(), tmp_path, SystemClock(), exposed, environ={})
    server.start()
    try:
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 2
        for name, warning in zip(("otlp-grpc", "otlp-http"), warnings, strict=True):
            assert warning.startswith(f"{name} listens on 0.0.0.0:0, beyond loopback, without a bearer token")
            assert "receivers.otlp.auth.bearer_token_file" in warning
    finally:
        server.shutdown()


def test_exposed_with_a_token_warns_only_without_tls(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kpiloop.pipeline")
    exposed = Endpoints("0.0.0.0:0", "[::]:0", "127.0.0.1:0")
    build_server(config(bearer_token=TOKEN), tmp_path, SystemClock(), exposed, environ={})
    assert [r.getMessage() for r in caplog.records] == [
        "otlp-grpc listens on 0.0.0.0:0, beyond loopback without TLS: the bearer token and the telemetry cross "
        "the network in clear text",
        "otlp-http listens on :::0, beyond loopback without TLS: the bearer token and the telemetry cross "
        "the network in clear text",
    ]
    caplog.clear()
    build_server(config(pki, bearer_token=TOKEN), tmp_path, SystemClock(), exposed, environ={})
    build_server(KpiloopConfig(), tmp_path, SystemClock(), LOOPBACK, environ={})
    assert caplog.records == []


def test_unusable_tls_files_stop_start_up_naming_the_key(pki: Pki, tmp_path: Path) -> None:
    broken = parse_config(
        json.dumps(
            {"receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0", "tls": {
                "cert_file": str(tmp_path / "nope.pem"), "key_file": str(pki.server_key)}}}}}}
        ),
        {},
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"receivers\.otlp\.protocols\.grpc\.tls\.cert_file: cannot read"):
        build_server(broken, tmp_path, SystemClock(), LOOPBACK, environ={})
    mismatched = parse_config(
        json.dumps(
            {"receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:0", "tls": {
                "cert_file": str(pki.server_cert), "key_file": str(pki.client_key)}}}}}}
        ),
        {},
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"receivers\.otlp\.protocols\.http\.tls: cert_file and key_file do not"):
        build_server(mismatched, tmp_path, SystemClock(), LOOPBACK, environ={})


# --- the hook commands ------------------------------------------------------------------------


def run_hook(session: str, data_dir: Path, env: dict[str, str]) -> bool:
    """``kpiloop hook session-end`` as Claude Code runs it; True when the record reached the server
    (nothing was left under ``pending/``)."""
    payload = json.dumps({"session_id": session, "hook_event_name": "SessionEnd", "reason": "exit"}).encode()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KPILOOP_")} | env
    command = [sys.executable, "-m", "kpiloop", "hook", "session-end", "--data-dir", str(data_dir)]
    done = subprocess.run(command, input=payload, capture_output=True, env=environ, timeout=30, check=False)
    assert done.returncode == 0 and done.stdout == b"" and done.stderr == b""
    pending = data_dir / "pending" / "hook-records.jsonl"
    delivered = not pending.exists()
    pending.unlink(missing_ok=True)
    return delivered


def test_the_hooks_send_the_token_over_tls(secured: Server, pki: Pki, tmp_path: Path) -> None:
    """The hook gives the server 70 ms; on a loaded machine a try can run out, so up to 5 tries."""
    env = {"KPILOOP_ENDPOINT": f"https://127.0.0.1:{secured.http.port}", "KPILOOP_CA_FILE": str(pki.ca)}
    before = refused(secured, "otlp_http")
    assert any(run_hook("hook-tls", tmp_path, env | {"KPILOOP_BEARER_TOKEN": TOKEN}) for _ in range(5))
    assert refused(secured, "otlp_http") == before
    assert not any(run_hook("hook-no-token", tmp_path, env) for _ in range(2))
    assert not any(
        run_hook("hook-bad-token", tmp_path, env | {"KPILOOP_BEARER_TOKEN": "x\r\nX-Evil: 1"}) for _ in range(2)
    )
    assert refused(secured, "otlp_http") > before
